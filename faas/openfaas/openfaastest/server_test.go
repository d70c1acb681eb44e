package openfaastest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"
)

// The answers each emulation gives, request by request, as the cited
// sources write them.
func TestAnswers(t *testing.T) {
	t.Parallel()
	dep := types.FunctionDeployment{Service: "fn", Image: "img:1"}
	depNS := types.FunctionDeployment{Service: "fn", Image: "img:1", Namespace: "other"}
	missing := types.FunctionDeployment{Service: "nope", Image: "img:1"}
	type step struct {
		method, path string
		body         any
		status       int
		bodyHas      string
	}
	for _, c := range []struct {
		name  string
		o     Options
		steps []step
	}{
		{"faas-netes", Options{Provider: FaasNetes}, []step{
			{"GET", "/system/function/fn", nil, 404, ""},
			{"PUT", "/system/functions", missing, 404, `unable update Deployment: nope.openfaas-fn, error: deployments.apps "nope" not found`},
			{"POST", "/system/functions", dep, 202, ""},
			{"POST", "/system/functions", dep, 500, `unable create Deployment: deployments.apps "fn" already exists`},
			{"POST", "/system/functions", depNS, 400, "namespace must be: openfaas-fn"},
			{"GET", "/system/functions?namespace=other", nil, 400, "namespace must be: openfaas-fn"},
			{"PUT", "/system/functions", dep, 202, ""},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{ServiceName: "fn", Replicas: 0}, 400, "replicas cannot be set to 0 in OpenFaaS CE"},
			{"POST", "/system/scale-function/nope", types.ScaleServiceRequest{ServiceName: "nope", Replicas: 0}, 400, "replicas cannot be set to 0"},
			{"POST", "/system/scale-function/nope", types.ScaleServiceRequest{ServiceName: "nope", Replicas: 1}, 500, "Unable to lookup function deployment nope"},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{Replicas: 9}, 202, ""},
			{"GET", "/system/function/fn", nil, 200, `"replicas":5`},
			{"DELETE", "/system/functions", types.DeleteFunctionRequest{FunctionName: "nope"}, 404, `deployments.apps "nope" not found`},
			{"DELETE", "/system/functions", types.DeleteFunctionRequest{FunctionName: "fn", Namespace: "other"}, 202, ""},
		}},
		{"faasd", Options{Provider: Faasd}, []step{
			{"GET", "/system/function/fn", nil, 404, ""},
			{"PUT", "/system/functions", missing, 404, "function: nope.openfaas-fn not found"},
			{"POST", "/system/functions", dep, 200, ""},
			{"POST", "/system/functions", dep, 400, `unable to create container: fn, error: container "fn": already exists`},
			{"POST", "/system/functions", depNS, 400, "namespace not valid"},
			{"GET", "/system/functions?namespace=other", nil, 400, "namespace not valid"},
			{"POST", "/system/scale-function/nope", types.ScaleServiceRequest{ServiceName: "nope", Replicas: 0}, 404, "function: nope.openfaas-fn not found"},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{ServiceName: "fn", Replicas: 0}, 400, "replicas must > 0 for faasd CE"},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{ServiceName: "fn", Replicas: 3}, 200, ""},
			{"GET", "/system/function/fn", nil, 200, `"replicas":1`},
			{"DELETE", "/system/functions?namespace=other", types.DeleteFunctionRequest{FunctionName: "fn", Namespace: "other"}, 400, "namespace not valid"},
			{"DELETE", "/system/functions", types.DeleteFunctionRequest{FunctionName: "nope"}, 404, "function nope.openfaas-fn not found"},
			{"DELETE", "/system/functions", types.DeleteFunctionRequest{FunctionName: "fn"}, 200, ""},
		}},
		{"CE gateway", Options{Provider: FaasNetes, Gateway: true, Password: "pw"}, []step{
			{"POST", "/system/functions", dep, 202, ""},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{ServiceName: "fn", Replicas: 0}, 202, ""},
			{"GET", "/system/function/fn", nil, 200, `"replicas":1`},
			{"POST", "/system/scale-function/fn", "not json", 400, "Error unmarshalling request body"},
		}},
		{"pro", Options{Provider: FaasNetes, Gateway: true, Pro: true}, []step{
			{"POST", "/system/functions", dep, 202, ""},
			{"POST", "/system/scale-function/fn", types.ScaleServiceRequest{ServiceName: "fn", Replicas: 0}, 202, ""},
			{"GET", "/system/function/fn", nil, 200, `"name":"fn"`}, // replicas 0 is omitted
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, c.o)
			for _, st := range c.steps {
				b, _ := json.Marshal(st.body)
				req, _ := http.NewRequest(st.method, s.URL+st.path, bytes.NewReader(b))
				if c.o.Password != "" {
					req.SetBasicAuth("admin", c.o.Password)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != st.status || !strings.Contains(string(got), st.bodyHas) {
					t.Fatalf("%s %s = %d %q; want %d %q", st.method, st.path, resp.StatusCode, got, st.status, st.bodyHas)
				}
				if st.status == 404 && st.method == "GET" && len(got) != 0 {
					t.Fatalf("%s %s: 404 with body %q; both providers send none", st.method, st.path, got)
				}
			}
			if st, ok := s.Status("", "fn"); c.o.Pro && (!ok || st.Replicas != 0) {
				t.Fatalf("pro: stored %+v; want zero replicas", st)
			}
			if c.o.Password != "" {
				resp, err := http.Get(s.URL + "/system/functions")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Fatalf("no credentials: %d", resp.StatusCode)
				}
			}
		})
	}
}

//go:build unix

package localfaas

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/faas/openfaas"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

const testPassword = "s3cret"

func newGateway(t testing.TB, rt *Runtime) *httptest.Server {
	srv := httptest.NewServer(rt.GatewayHandler(testPassword))
	t.Cleanup(srv.Close)
	return srv
}

func gatewayClient(t testing.TB, rt *Runtime) *openfaas.Client {
	c, err := openfaas.New(newGateway(t, rt).URL, &openfaas.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The openfaas client over the localfaas gateway passes the same suite.
func TestConformanceOverGateway(t *testing.T) {
	t.Parallel()
	previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
		New: func(t *testing.T) preview.FunctionRuntime {
			return gatewayClient(t, newRuntime(t, t.TempDir(), nil))
		},
		Image: func(t *testing.T) string { return echoImage(t, "conformance") },
	})
}

// The client opened by URL, as `glimpse up` does, end to end.
func TestOpenFaaSClientEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	srv := newGateway(t, rt)
	env := map[string]string{"OPENFAAS_PASSWORD": testPassword}
	c, err := preview.Runtimes.Open(ctx, "openfaas://"+strings.TrimPrefix(srv.URL, "http://")+"?namespace="+GatewayNamespace,
		&preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	fn := testFunction("e2e-pr-7", echoImage(t, "a"), 7)
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	pid := rt.pid(fn.Name)
	if err := c.Apply(ctx, fn); err != nil || rt.pid(fn.Name) != pid {
		t.Fatalf("unchanged Apply: %v; pid %d -> %d", err, pid, rt.pid(fn.Name))
	}
	st, err := c.Get(ctx, fn.Name)
	if err != nil || st.Replicas != 1 || st.AvailableReplicas != 1 || st.Env["GLIMPSE_PR"] != "7" ||
		!st.Labels.Matches(fn.Labels) || st.Annotations[openfaas.SpecHashAnnotation] != "" || st.Annotations["glimpse.dev/routes"] != "/graphql" {
		t.Fatalf("Get = %+v, %v", st, err)
	}
	// Above one replica the gateway clamps: Scale says 1, ScaleExact why.
	exact, err := openfaas.New(srv.URL, &openfaas.Options{Password: testPassword, ScaleSettle: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := exact.Scale(ctx, fn.Name, 5); err != nil || n != 1 {
		t.Fatalf("Scale(5) = %d, %v; want the clamped 1", n, err)
	}
	if n, err := exact.ScaleExact(ctx, fn.Name, 5); n != 1 || preview.CodeOf(err) != preview.FailedPrecondition || errors.Is(err, openfaas.ErrZeroRefused) {
		t.Fatalf("ScaleExact(5) = %d, %v; want 1 and a clamp that is not about zero", n, err)
	}
	if n, err := exact.ScaleExact(ctx, fn.Name, 0); err != nil || n != 0 || exact.RefusesZero() {
		t.Fatalf("ScaleExact(0) = %d, %v; localfaas scales to zero", n, err)
	}
	if !processGone(pid) {
		t.Fatalf("process %d runs at zero replicas", pid)
	}
	// The first request through /function wakes it.
	e := getEcho(t, srv.URL+"/function/"+fn.Name+"/graphql?q=1")
	if e.Path != "/graphql" || e.Query != "q=1" || e.Env["GLIMPSE_PR"] != "7" {
		t.Fatalf("proxied request: %+v", e)
	}
	if st, _ := c.Get(ctx, fn.Name); st.Replicas != 1 || st.InvocationCount != 1 {
		t.Fatalf("after a request at zero: %+v; want 1 replica, 1 invocation", st)
	}
	if l, err := c.List(ctx, preview.Selector("test", "hello", 7)); err != nil || len(l) != 1 {
		t.Fatalf("List = %+v, %v", l, err)
	}
	if err := c.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, fn.Name); err != nil {
		t.Fatalf("Remove of a removed function: %v", err)
	}
	if _, err := c.Scale(ctx, fn.Name, 1); !preview.IsNotFound(err) {
		t.Fatalf("Scale of a removed function: %v", err)
	}

	bad, _ := openfaas.New(srv.URL, &openfaas.Options{Password: "wrong"})
	if _, err := bad.List(ctx, nil); preview.CodeOf(err) != preview.PermissionDenied {
		t.Fatalf("wrong password: %v", err)
	}
	other, _ := openfaas.New(srv.URL, &openfaas.Options{Password: testPassword, Namespace: "elsewhere"})
	if _, err := other.List(ctx, nil); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("unknown namespace: %v", err)
	}
}

// faasCall sends a request shaped as faas-cli's proxy package sends it
// (github.com/openfaas/faas-cli/proxy: deploy.go, delete.go, list.go,
// scale.go, describe.go, version.go, namespaces.go).
func faasCall(t *testing.T, method, url string, body any, auth bool) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "faas-cli/0.17.0")
	if auth {
		req.SetBasicAuth("admin", testPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestGatewayFaasCLIShapes(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir(), nil)
	srv := newGateway(t, rt)
	u := srv.URL
	img := echoImage(t, "a")

	// faas-cli deploy: a PUT first; on 404 a POST. Labels and annotations
	// are pointers to maps that may be nil (JSON null).
	var nilLabels, nilAnn map[string]string
	dep := types.FunctionDeployment{Service: "cli-fn", Image: img, EnvVars: map[string]string{"A": "1"}, Labels: &nilLabels, Annotations: &nilAnn, EnvProcess: "./handler"}
	for _, c := range []struct {
		method, path string
		body         any
		auth         bool
		want         int
		wantBody     string
	}{
		{"GET", "/system/functions", nil, false, 401, ""},
		{"PUT", "/system/functions", dep, true, 404, ""},
		{"POST", "/system/functions", dep, true, 202, ""},
		{"POST", "/system/functions", dep, true, 409, "already exists"},
		{"PUT", "/system/functions", dep, true, 202, ""},
		{"GET", "/system/functions?namespace=other", nil, true, 400, "namespace"},
		{"GET", "/system/function/nope?namespace=openfaas-fn&usage=1", nil, true, 404, ""},
		{"POST", "/system/scale-function/nope", types.ScaleServiceRequest{ServiceName: "nope", Replicas: 1}, true, 404, ""},
		{"POST", "/system/scale-function/cli-fn", types.ScaleServiceRequest{ServiceName: "other", Replicas: 1}, true, 400, ""},
		{"POST", "/system/functions", types.FunctionDeployment{Service: "Bad_Name", Image: img}, true, 400, ""},
		{"POST", "/system/functions", "not an object", true, 400, ""},
		{"GET", "/function/nope", nil, false, 404, ""},
		{"GET", "/function/cli-fn.elsewhere", nil, false, 404, ""},
	} {
		code, b := faasCall(t, c.method, u+c.path, c.body, c.auth)
		if code != c.want || !strings.Contains(string(b), c.wantBody) {
			t.Fatalf("%s %s = %d %q; want %d %q", c.method, c.path, code, b, c.want, c.wantBody)
		}
	}

	// faas-cli list -n openfaas-fn.
	code, b := faasCall(t, "GET", u+"/system/functions?namespace=openfaas-fn", nil, true)
	var list []types.FunctionStatus
	if code != 200 || json.Unmarshal(b, &list) != nil || len(list) != 1 {
		t.Fatalf("list = %d %s", code, b)
	}
	if s := list[0]; s.Name != "cli-fn" || s.Namespace != GatewayNamespace || s.Replicas != 1 || s.AvailableReplicas != 1 ||
		s.EnvProcess != "./handler" || s.EnvVars["A"] != "1" || s.CreatedAt.IsZero() {
		t.Fatalf("list entry %+v", s)
	}

	// faas-cli scale --replicas 0, then describe.
	if code, b := faasCall(t, "POST", u+"/system/scale-function/cli-fn", types.ScaleServiceRequest{ServiceName: "cli-fn", Replicas: 0}, true); code != 202 {
		t.Fatalf("scale = %d %s", code, b)
	}
	code, b = faasCall(t, "GET", u+"/system/function/cli-fn?namespace=openfaas-fn&usage=1", nil, true)
	var st types.FunctionStatus
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Replicas != 0 || st.AvailableReplicas != 0 {
		t.Fatalf("describe = %d %s", code, b)
	}

	// faas-cli invoke: /function/name.namespace wakes the function; the
	// path below the name and an escaped slash survive.
	e := getEcho(t, u+"/function/cli-fn."+GatewayNamespace+"/a%2Fb/c?x=y")
	if e.Path != "/a/b/c" || e.RawPath != "/a%2Fb/c" || e.Query != "x=y" || e.Env["fprocess"] != "./handler" {
		t.Fatalf("invoke: %+v", e)
	}
	if e := getEcho(t, u+"/function/cli-fn"); e.Path != "/" {
		t.Fatalf("invoke without path: %+v", e)
	}

	// faas-cli version, namespaces.
	code, b = faasCall(t, "GET", u+"/system/info", nil, true)
	var info struct {
		Provider *types.ProviderInfo `json:"provider"`
		Version  *types.VersionInfo  `json:"version"`
		Arch     string              `json:"arch"`
	}
	if code != 200 || json.Unmarshal(b, &info) != nil || info.Provider == nil || info.Provider.Name != "localfaas" || info.Arch == "" {
		t.Fatalf("info = %d %s", code, b)
	}
	code, b = faasCall(t, "GET", u+"/system/namespaces", nil, true)
	if code != 200 || strings.TrimSpace(string(b)) != `["openfaas-fn"]` {
		t.Fatalf("namespaces = %d %s", code, b)
	}

	// faas-cli ready: GET /healthz without credentials.
	if code, b := faasCall(t, "GET", u+"/healthz", nil, false); code != 200 {
		t.Fatalf("healthz = %d %s", code, b)
	}

	// faas-cli deploy -f stack.yml with every field a stack can set
	// (faas-cli proxy/deploy.go): limits, requests, secrets, constraints,
	// read-only root, the namespace only in the body; then faas-cli scale
	// -n openfaas-fn, which sends the namespace only in the body too
	// (proxy/scale.go).
	labels := map[string]string{"com.openfaas.scale.min": "1"}
	ann := map[string]string{"topic": "cron"}
	full := types.FunctionDeployment{
		Service: "cli-full", Image: img, Namespace: GatewayNamespace, EnvProcess: "./handler",
		EnvVars: map[string]string{"B": "2"}, Constraints: []string{"node.platform.os == linux"},
		Secrets: []string{}, Labels: &labels, Annotations: &ann, ReadOnlyRootFilesystem: true,
		Limits:   &types.FunctionResources{Memory: "128Mi", CPU: "100m"},
		Requests: &types.FunctionResources{Memory: "64Mi"},
	}
	if code, b := faasCall(t, "PUT", u+"/system/functions", full, true); code != 404 {
		t.Fatalf("update of a new function = %d %s", code, b)
	}
	if code, b := faasCall(t, "POST", u+"/system/functions", full, true); code != 202 {
		t.Fatalf("full deploy = %d %s", code, b)
	}
	code, b = faasCall(t, "GET", u+"/system/function/cli-full", nil, true)
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Labels == nil || (*st.Labels)["com.openfaas.scale.min"] != "1" ||
		st.Annotations == nil || (*st.Annotations)["topic"] != "cron" || st.EnvVars["B"] != "2" {
		t.Fatalf("describe full = %d %s", code, b)
	}
	if code, b := faasCall(t, "POST", u+"/system/scale-function/cli-full", types.ScaleServiceRequest{ServiceName: "cli-full", Replicas: 0, Namespace: GatewayNamespace}, true); code != 202 {
		t.Fatalf("scale with the namespace in the body = %d %s", code, b)
	}
	if code, _ := faasCall(t, "POST", u+"/system/scale-function/cli-full", types.ScaleServiceRequest{ServiceName: "cli-full", Replicas: 1, Namespace: "other"}, true); code != 400 {
		t.Fatalf("scale in another namespace = %d; want 400", code)
	}
	if code, b := faasCall(t, "DELETE", u+"/system/functions", types.DeleteFunctionRequest{FunctionName: "cli-full", Namespace: GatewayNamespace}, true); code != 202 {
		t.Fatalf("delete with the namespace in the body = %d %s", code, b)
	}

	// faas-cli remove: DELETE with a body; a second one is 404.
	pid := rt.pid("cli-fn")
	del := types.DeleteFunctionRequest{FunctionName: "cli-fn"}
	if code, b := faasCall(t, "DELETE", u+"/system/functions", del, true); code != 202 {
		t.Fatalf("delete = %d %s", code, b)
	}
	if !processGone(pid) {
		t.Fatalf("process %d survives delete", pid)
	}
	if code, _ := faasCall(t, "DELETE", u+"/system/functions", del, true); code != 404 {
		t.Fatalf("second delete = %d; want 404", code)
	}
}

func TestGatewayEmptyPasswordRefuses(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir(), nil)
	srv := httptest.NewServer(rt.GatewayHandler(""))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/system/functions", nil)
	req.SetBasicAuth("admin", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("empty password: %s; want 401", resp.Status)
	}
}

func TestLoadOrCreatePassword(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], errs[i] = LoadOrCreatePassword(home) }()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] || len(got[0]) != 64 {
			t.Fatalf("call %d: %q, %v; first %q", i, got[i], errs[i], got[0])
		}
	}
	fi, err := os.Stat(filepath.Join(home, PasswordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v", fi, err)
	}
	if des, _ := os.ReadDir(home); len(des) != 1 {
		t.Fatalf("leftover files in home: %v", des)
	}
	if err := os.WriteFile(filepath.Join(home, PasswordFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreatePassword(home); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("empty password file: %v", err)
	}
}

// Clients racing to create the same function: the losers' POST answers 409
// and the client recovers with a PUT.
func TestOpenFaaSClientConcurrentCreate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	img := echoImage(t, "a")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		c := gatewayClient(t, rt)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Apply(ctx, testFunction("race-pr-1", img, 1))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Apply: %v", err)
		}
	}
	if _, err := rt.Endpoint("race-pr-1"); err != nil {
		t.Fatal(err)
	}
}

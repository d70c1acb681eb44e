package openfaas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

const emuPassword = "s3cret"

// emulations are the gateways the client must handle, each reproducing
// its source (see package openfaastest).
var emulations = []struct {
	name   string
	o      openfaastest.Options
	clamps bool // the Community Edition keeps one replica when asked for zero
	settle time.Duration
}{
	// faas-netes never reports envVars (see TestFaasNetesStatusShape); its
	// runs tell the suite so with NoEnvReadback.
	{"faas-netes behind the CE gateway", openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true}, true, 0},
	{"faas-netes direct", openfaastest.Options{Provider: openfaastest.FaasNetes}, true, 0},
	{"faasd behind the CE gateway", openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true}, true, 0},
	{"faasd direct", openfaastest.Options{Provider: openfaastest.Faasd}, true, 0},
	// Standard/Pro accept zero; faas-netes's informer cache lags.
	{"faas-netes pro, lagging reads", openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Pro: true, StaleReads: 3}, false, 20 * time.Second},
	{"faasd pro", openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true, Pro: true}, false, 0},
}

func emulate(t testing.TB, o openfaastest.Options) *openfaastest.Server {
	if o.Password == "" {
		o.Password = emuPassword
	}
	return openfaastest.NewServer(t, o)
}

func clientFor(t testing.TB, s *openfaastest.Server, o *Options) *Client {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	if o.Password == "" {
		o.Password = emuPassword
	}
	if o.ScaleSettle == 0 {
		// Long enough for lagging reads to catch up (the loop stops as
		// soon as they do); a silent clamp waits it out once.
		o.ScaleSettle = 300 * time.Millisecond
	}
	c, err := New(s.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffBase = time.Millisecond
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testFn(name string) preview.Function {
	return preview.Function{
		Name:        name,
		Image:       "registry.example/hello@sha256:" + strings.Repeat("a", 64),
		Env:         map[string]string{"GLIMPSE_PR": "7"},
		Labels:      preview.OwnerLabels("test", preview.Target{App: "hello", PR: 7, Commit: "c0ffee1"}),
		Annotations: map[string]string{"glimpse.dev/routes": "/graphql"},
	}
}

// The conformance suite against every emulation.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, e := range emulations {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			servers := map[preview.FunctionRuntime]*openfaastest.Server{}
			server := func(rt preview.FunctionRuntime) *openfaastest.Server {
				mu.Lock()
				defer mu.Unlock()
				return servers[rt]
			}
			previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
				New: func(t *testing.T) preview.FunctionRuntime {
					s := emulate(t, e.o)
					c := clientFor(t, s, &Options{ScaleSettle: e.settle})
					mu.Lock()
					servers[c] = s
					mu.Unlock()
					return c
				},
				Image:         func(t *testing.T) string { return "registry.example/conformance:1" },
				ClampsZero:    e.clamps,
				NoEnvReadback: e.o.Provider == openfaastest.FaasNetes,
				// What the provider would mount in the function.
				Secret: func(t *testing.T, rt preview.FunctionRuntime, fn, name string) (string, bool) {
					return server(rt).Secret("", fn, name)
				},
				CreateSecret: func(t *testing.T, rt preview.FunctionRuntime, name, value string) {
					server(rt).PutSecret("", name, value)
				},
			})
		})
	}
}

// A concurrent create wins between the client's PUT (404) and its POST:
// faas-netes answers the POST 500 and faasd 400, both saying "already
// exists"; the client updates instead.
func TestApplyRecoversFromAlreadyExists(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p          openfaastest.Provider
		postStatus int
		putStatus  int
	}{
		{openfaastest.FaasNetes, 500, 202}, // pkg/handlers/deploy.go, update.go
		{openfaastest.Faasd, 400, 200},     // pkg/provider/handlers/deploy.go, update.go
	} {
		t.Run(c.p.String(), func(t *testing.T) {
			t.Parallel()
			var s *openfaastest.Server
			var raced atomic.Bool
			s = emulate(t, openfaastest.Options{Provider: c.p, Gateway: true, Hook: func(r *http.Request) {
				if r.Method == "POST" && r.URL.Path == "/system/functions" && raced.CompareAndSwap(false, true) {
					s.Put(types.FunctionDeployment{Service: "race-pr-1", Image: "other:1"})
				}
			}})
			cl := clientFor(t, s, nil)
			fn := testFn("race-pr-1")
			if err := cl.Apply(ctxT(t), fn); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			var got []string
			for _, call := range s.Calls() {
				got = append(got, call.Method+" "+http.StatusText(call.Status))
			}
			want := []string{"GET Not Found", "PUT Not Found", "POST " + http.StatusText(c.postStatus), "PUT " + http.StatusText(c.putStatus)}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Fatalf("calls = %v; want %v", got, want)
			}
			if st, ok := s.Status("", fn.Name); !ok || st.Image != fn.Image {
				t.Fatalf("stored %+v; want image %s", st, fn.Image)
			}
		})
	}
}

// 404 shapes: faas-netes and faasd answer a missing function's status with
// an empty 404, its delete with 404 and a provider message (Kubernetes's
// "deployments.apps ... not found", faasd's "function NAME.NS not
// found"), its scale with 500 (faas-netes, replica_updater.go) or 404
// (faasd, scale.go). Get and Scale say NotFound, Remove succeeds.
func TestMissingFunction(t *testing.T) {
	t.Parallel()
	for _, e := range emulations {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			s := emulate(t, e.o)
			cl := clientFor(t, s, &Options{ScaleSettle: e.settle})
			ctx := ctxT(t)
			if _, err := cl.Get(ctx, "nope-pr-1"); !preview.IsNotFound(err) {
				t.Fatalf("Get: %v", err)
			}
			if err := cl.Remove(ctx, "nope-pr-1"); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if _, err := cl.Scale(ctx, "nope-pr-1", 1); !preview.IsNotFound(err) {
				t.Fatalf("Scale: %v", err)
			}
			last := s.Calls()[len(s.Calls())-1]
			if last.Method != "GET" {
				t.Fatalf("Scale of a missing function sent %s; want only the status read", last.Method)
			}

		})
	}
}

// A scale request racing a delete: faas-netes answers 500 "Unable to lookup
// function deployment" (pkg/handlers/replica_updater.go); the client reads
// the status again and says NotFound.
func TestScaleRacingDelete(t *testing.T) {
	t.Parallel()
	for _, p := range []openfaastest.Provider{openfaastest.FaasNetes, openfaastest.Faasd} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			var s *openfaastest.Server
			s = emulate(t, openfaastest.Options{Provider: p, Hook: func(r *http.Request) {
				if r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/system/scale-function/") {
					s.Delete("", "gone-pr-1")
				}
			}})
			cl := clientFor(t, s, nil)
			ctx := ctxT(t)
			if err := cl.Apply(ctx, testFn("gone-pr-1")); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Scale(ctx, "gone-pr-1", 2); !preview.IsNotFound(err) {
				t.Fatalf("Scale: %v; want NotFound", err)
			}
		})
	}
}

// The client sends the namespace in the query and in the body of every
// call, since faas-netes reads the query for list, status, scale and
// delete and faasd the body for deploy, update, scale and delete.
func TestNamespaceQueryAndBody(t *testing.T) {
	t.Parallel()
	for _, e := range emulations {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			s := emulate(t, e.o)
			cl := clientFor(t, s, &Options{Namespace: "openfaas-fn", ScaleSettle: e.settle})
			ctx := ctxT(t)
			fn := testFn("ns-pr-1")
			if err := cl.Apply(ctx, fn); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Scale(ctx, fn.Name, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := cl.List(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := cl.Remove(ctx, fn.Name); err != nil {
				t.Fatal(err)
			}
			for _, c := range s.Calls() {
				if c.QueryNamespace != "openfaas-fn" || (c.Method != "GET" && c.BodyNamespace != "openfaas-fn") {
					t.Fatalf("%s %s carried namespace query %q body %q", c.Method, c.Path, c.QueryNamespace, c.BodyNamespace)
				}
			}
		})
	}
}

// faasd serves further namespaces, read from the body for writes and from
// the query for reads: only a client that sends both finds its function
// again. faas-netes CE serves one namespace and refuses others.
func TestOtherNamespace(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true, Namespaces: []string{"openfaas-fn", "previews"}})
	cl := clientFor(t, s, &Options{Namespace: "previews"})
	fn := testFn("ns-pr-2")
	if err := cl.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Status("previews", fn.Name); !ok {
		t.Fatal("the function is not in namespace previews")
	}
	if _, ok := s.Status("openfaas-fn", fn.Name); ok {
		t.Fatal("the function landed in the default namespace")
	}
	if st, err := cl.Get(ctx, fn.Name); err != nil || st.Name != fn.Name {
		t.Fatalf("Get = %+v, %v", st, err)
	}
	if l, err := cl.List(ctx, fn.Labels); err != nil || len(l) != 1 {
		t.Fatalf("List = %+v, %v", l, err)
	}
	// A delete with the namespace only in the query misses (faasd reads
	// the body: pkg/provider/handlers/delete.go).
	req, _ := http.NewRequest("DELETE", s.URL+"/system/functions?namespace=previews", strings.NewReader(`{"functionName":"ns-pr-2"}`))
	req.SetBasicAuth("admin", emuPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("query-only delete = %d; want faasd's 404 from the default namespace", resp.StatusCode)
	}
	if err := cl.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Status("previews", fn.Name); ok {
		t.Fatal("Remove left the function")
	}

	netes := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true})
	other := clientFor(t, netes, &Options{Namespace: "previews"})
	err = other.Apply(ctx, fn)
	if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "namespace must be: openfaas-fn") {
		t.Fatalf("faas-netes CE in another namespace: %v", err)
	}
	unknown := clientFor(t, s, &Options{Namespace: "staging"})
	if _, err := unknown.List(ctx, nil); preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "namespace not valid") {
		t.Fatalf("faasd with an unknown namespace: %v", err)
	}
}

// The Community Edition keeps one replica when asked for zero: silently
// through the gateway, with 400 from the providers. Scale returns 1 and no
// error (the FunctionRuntime contract); ScaleExact says why.
func TestScaleZeroClamp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		o       openfaastest.Options
		refusal string // the provider's words; empty when the gateway rewrote the request
	}{
		{"faas-netes behind the CE gateway", openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true}, ""},
		{"faasd behind the CE gateway", openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true}, ""},
		{"faas-netes direct", openfaastest.Options{Provider: openfaastest.FaasNetes}, "replicas cannot be set to 0 in OpenFaaS CE"},
		{"faasd direct", openfaastest.Options{Provider: openfaastest.Faasd}, "replicas must > 0 for faasd CE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := emulate(t, c.o)
			cl := clientFor(t, s, nil)
			ctx := ctxT(t)
			fn := testFn("zero-pr-1")
			if err := cl.Apply(ctx, fn); err != nil {
				t.Fatal(err)
			}
			if cl.RefusesZero() {
				t.Fatal("RefusesZero before any scale")
			}
			n, err := cl.ScaleExact(ctx, fn.Name, 0)
			var ce *ClampedError
			if n != 1 || preview.CodeOf(err) != preview.FailedPrecondition || !errors.Is(err, ErrZeroRefused) || !errors.As(err, &ce) {
				t.Fatalf("ScaleExact(0) = %d, %v; want 1 and a FailedPrecondition ClampedError", n, err)
			}
			if ce.Requested != 0 || ce.Accepted != 1 || ce.Refusal != c.refusal || !strings.Contains(err.Error(), "does not scale to zero") {
				t.Fatalf("ClampedError = %+v (%v)", ce, err)
			}
			if !cl.RefusesZero() {
				t.Fatal("RefusesZero after a clamp")
			}
			// Scale keeps the FunctionRuntime contract, and no longer
			// waits for the count to settle.
			before := len(s.Calls())
			if n, err := cl.Scale(ctx, fn.Name, 0); n != 1 || err != nil {
				t.Fatalf("Scale(0) = %d, %v; want 1, nil", n, err)
			}
			if reads := len(s.Calls()) - before; reads != 3 {
				t.Fatalf("second Scale(0) sent %d requests; want read, scale, read", reads)
			}
			if st, _ := s.Status("", fn.Name); st.Replicas != 1 {
				t.Fatalf("stored replicas %d", st.Replicas)
			}
		})
	}
}

// Clamps above: the CE gateway and faas-netes allow at most 5 replicas,
// faasd runs one. A clamp that is not about zero is not ErrZeroRefused.
func TestScaleUpClamp(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	for _, c := range []struct {
		p    openfaastest.Provider
		want int
	}{{openfaastest.FaasNetes, 5}, {openfaastest.Faasd, 1}} {
		cl := clientFor(t, emulate(t, openfaastest.Options{Provider: c.p, Gateway: true}), &Options{ScaleSettle: -1})
		if err := cl.Apply(ctx, testFn("up-pr-1")); err != nil {
			t.Fatal(err)
		}
		n, err := cl.ScaleExact(ctx, "up-pr-1", 7)
		if n != c.want || preview.CodeOf(err) != preview.FailedPrecondition || errors.Is(err, ErrZeroRefused) {
			t.Fatalf("%s: ScaleExact(7) = %d, %v; want %d and a clamp", c.p, n, err, c.want)
		}
		if n, err := cl.Scale(ctx, "up-pr-1", 7); n != c.want || err != nil {
			t.Fatalf("%s: Scale(7) = %d, %v", c.p, n, err)
		}
	}
}

// OpenFaaS Pro scales to zero; faas-netes's lagging reads are waited out
// rather than reported as a clamp.
func TestScaleZeroPro(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Pro: true, StaleReads: 3})
	cl := clientFor(t, s, &Options{ScaleSettle: 20 * time.Second})
	fn := testFn("pro-pr-1")
	if err := cl.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	start := len(s.Calls())
	n, err := cl.ScaleExact(ctx, fn.Name, 0)
	if n != 0 || err != nil || cl.RefusesZero() {
		t.Fatalf("ScaleExact(0) = %d, %v", n, err)
	}
	// read, scale, then 3 stale reads and the fresh one.
	if got := len(s.Calls()) - start; got != 6 {
		t.Fatalf("%d requests; want 6", got)
	}
	// faasd Pro restarts a function on update; Apply puts it back to zero.
	fd := emulate(t, openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true, Pro: true})
	cd := clientFor(t, fd, nil)
	if err := cd.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if n, err := cd.Scale(ctx, fn.Name, 0); n != 0 || err != nil {
		t.Fatalf("faasd pro Scale(0) = %d, %v", n, err)
	}
	fn.Env = map[string]string{"CHANGED": "1"}
	if err := cd.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if st, _ := fd.Status("", fn.Name); st.Replicas != 0 || st.EnvVars["CHANGED"] != "1" {
		t.Fatalf("after updating a function at zero on faasd: %+v", st)
	}
}

// faas-netes reports no environment and adds labels and an annotation of
// its own; the spec hash still makes an unchanged Apply send nothing, and
// ownership selectors still match.
func TestFaasNetesStatusShape(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true})
	cl := clientFor(t, s, nil)
	fn := testFn("shape-pr-1")
	fn.Env["fprocess"] = "./handler"
	if err := cl.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Get(ctx, fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Env) != 1 || st.Env["fprocess"] != "./handler" {
		t.Fatalf("Env = %v; faas-netes reports only fprocess", st.Env)
	}
	if st.Labels["faas_function"] != fn.Name || st.Annotations["prometheus.io.scrape"] != "false" || st.Annotations[SpecHashAnnotation] != "" {
		t.Fatalf("labels %v annotations %v", st.Labels, st.Annotations)
	}
	stored, _ := s.Status("", fn.Name)
	if stored.EnvProcess != "./handler" {
		t.Fatalf("fprocess not sent as envProcess: %+v", stored)
	}
	before := len(s.Calls())
	if err := cl.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Calls()) - before; got != 1 {
		t.Fatalf("unchanged Apply sent %d requests; want the one read", got)
	}
	fn.Env["A"] = "1"
	if err := cl.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	l, err := cl.List(ctx, preview.Selector("test", "hello", 7))
	if err != nil || len(l) != 1 || l[0].Labels["uid"] == "" {
		t.Fatalf("List after an update = %+v, %v; want the function with faas-netes's uid label", l, err)
	}
}

// The gateway adds invocation counts to the list (gateway/metrics); the
// status read has none. faasd's list has no availableReplicas.
func TestInvocationCount(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	for _, p := range []openfaastest.Provider{openfaastest.FaasNetes, openfaastest.Faasd} {
		s := emulate(t, openfaastest.Options{Provider: p, Gateway: true})
		cl := clientFor(t, s, nil)
		fn := testFn("count-pr-1")
		if err := cl.Apply(ctx, fn); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			resp, err := http.Post(s.URL+"/function/"+fn.Name, "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		l, err := cl.List(ctx, fn.Labels)
		if err != nil || len(l) != 1 || l[0].InvocationCount != 2 || l[0].Replicas != 1 {
			t.Fatalf("%s: List = %+v, %v", p, l, err)
		}
		if want := map[openfaastest.Provider]int{openfaastest.FaasNetes: 1, openfaastest.Faasd: 0}[p]; l[0].AvailableReplicas != want {
			t.Fatalf("%s: listed availableReplicas %d; want %d", p, l[0].AvailableReplicas, want)
		}
		if st, err := cl.Get(ctx, fn.Name); err != nil || st.InvocationCount != 0 || st.AvailableReplicas != 1 {
			t.Fatalf("%s: Get = %+v, %v", p, st, err)
		}
	}
}

// CE allows 15 functions: the 16th create is FailedPrecondition with the
// gateway's words.
func TestFunctionLimit(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	for _, c := range []struct {
		p    openfaastest.Provider
		word string
	}{{openfaastest.FaasNetes, "maximum: 2"}, {openfaastest.Faasd, "EULA allows 2/3"}} {
		cl := clientFor(t, emulate(t, openfaastest.Options{Provider: c.p, Gateway: true, MaxFunctions: 2}), nil)
		for _, name := range []string{"a-pr-1", "a-pr-2"} {
			if err := cl.Apply(ctx, testFn(name)); err != nil {
				t.Fatal(err)
			}
		}
		err := cl.Apply(ctx, testFn("a-pr-3"))
		if preview.CodeOf(err) != preview.FailedPrecondition || !strings.Contains(err.Error(), c.word) {
			t.Fatalf("%s: third Apply: %v", c.p, err)
		}
		// Updating an existing function is still allowed.
		f := testFn("a-pr-1")
		f.Env["X"] = "1"
		if err := cl.Apply(ctx, f); err != nil {
			t.Fatalf("%s: update at the limit: %v", c.p, err)
		}
	}

	// A concurrent create fills the last place between the client's PUT
	// and POST: faas-netes answers the POST with the limit, not "already
	// exists"; the client's update still lands.
	var s *openfaastest.Server
	var raced atomic.Bool
	s = emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, MaxFunctions: 1, Hook: func(r *http.Request) {
		if r.Method == "POST" && raced.CompareAndSwap(false, true) {
			s.Put(types.FunctionDeployment{Service: "last-pr-1", Image: "other:1"})
		}
	}})
	fn := testFn("last-pr-1")
	if err := clientFor(t, s, nil).Apply(ctx, fn); err != nil {
		t.Fatalf("Apply racing at the limit: %v", err)
	}
	if st, _ := s.Status("", fn.Name); st.Image != fn.Image {
		t.Fatalf("stored image %q", st.Image)
	}
}

// GET, PUT and DELETE are repeated while the gateway is unavailable (503
// here); POST never is.
func TestRetries(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true})
	var (
		mu     sync.Mutex
		failOn string
		fails  int
		seen   int
	)
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		fail := r.Method == failOn && fails > 0
		if fail {
			fails--
		}
		mu.Unlock()
		if fail {
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		proxyTo(w, r, s.URL)
	})
	cl, err := New(newLocalServer(t, front), &Options{Password: emuPassword, ScaleSettle: -1})
	if err != nil {
		t.Fatal(err)
	}
	cl.backoffBase = time.Millisecond
	for _, c := range []struct {
		name   string
		method string
		fails  int
		call   func() error
		want   int
		ok     bool
	}{
		{"GET after two 503s", "GET", 2, func() error { _, err := cl.List(ctx, nil); return err }, 3, true},
		{"GET beyond the retries", "GET", 10, func() error { _, err := cl.List(ctx, nil); return err }, 1 + DefaultMaxRetries, false},
		{"PUT (Apply: read, update twice, create)", "PUT", 1, func() error { return cl.Apply(ctx, testFn("retry-pr-1")) }, 4, true},
		{"POST scale never repeated (read, scale)", "POST", 1, func() error { _, err := cl.Scale(ctx, "retry-pr-1", 2); return err }, 2, false},
		{"DELETE (Remove: read its owned secrets, delete after two 503s)", "DELETE", 2, func() error { return cl.Remove(ctx, "retry-pr-1") }, 4, true},
	} {
		mu.Lock()
		failOn, fails, seen = c.method, c.fails, 0
		mu.Unlock()
		err := c.call()
		mu.Lock()
		n := seen
		mu.Unlock()
		if (err == nil) != c.ok || n != c.want {
			t.Fatalf("%s: %v after %d requests; want ok=%v after %d", c.name, err, n, c.ok, c.want)
		}
		if err != nil && preview.CodeOf(err) != preview.Unavailable {
			t.Fatalf("%s: code %v", c.name, preview.CodeOf(err))
		}
	}
	if st, ok := s.Status("", "retry-pr-1"); ok {
		t.Fatalf("function left after Remove: %+v", st)
	}
}

// TLS with a certificate authority from a file, as OPENFAAS_CA_FILE names.
func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(s.URL, "https://")
	env := map[string]string{"OPENFAAS_PASSWORD": emuPassword, "OPENFAAS_CA_FILE": ca, "HOME": t.TempDir()}
	o := &preview.OpenOptions{Getenv: func(k string) string { return env[k] }}
	rt, err := preview.Runtimes.Open(ctx, "openfaas://"+hostPort+"?tls=true", o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.List(ctx, nil); err != nil {
		t.Fatalf("List over TLS: %v", err)
	}
	delete(env, "OPENFAAS_CA_FILE")
	rt, err = preview.Runtimes.Open(ctx, "openfaas://"+hostPort+"?tls=true&timeout=10s", o)
	if err != nil {
		t.Fatal(err)
	}
	rt.(*Client).maxRetries = 0
	if _, err := rt.List(ctx, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("List without the CA: %v; want a certificate error", err)
	}
	env["OPENFAAS_CA_FILE"] = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := preview.Runtimes.Open(ctx, "openfaas://"+hostPort+"?tls=true", o); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("missing CA file: %v", err)
	}
}

// A gateway that does not answer within the timeout.
func TestTimeout(t *testing.T) {
	t.Parallel()
	block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	cl, err := New(newLocalServer(t, block), &Options{Timeout: 50 * time.Millisecond, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctxT(t), "slow-pr-1"); preview.CodeOf(err) != preview.DeadlineExceeded {
		t.Fatalf("Get: %v; want DeadlineExceeded", err)
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	s := emulate(t, openfaastest.Options{Provider: openfaastest.Faasd, Gateway: true})
	cl := clientFor(t, s, &Options{Password: "wrong"})
	if _, err := cl.List(ctxT(t), nil); preview.CodeOf(err) != preview.PermissionDenied {
		t.Fatalf("List: %v", err)
	}
}

// proxyTo forwards r to base, for a test front that injects failures.
func proxyTo(w http.ResponseWriter, r *http.Request, base string) {
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), &body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func newLocalServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

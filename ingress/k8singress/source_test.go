package k8singress_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// servedWithin bounds how long a route change may take to reach an edge
// through the informer in these tests: the benchmark's goal is 100 ms,
// this leaves room for a loaded CI machine.
const servedWithin = 2 * time.Second

// fnUpstream is every function of the test edges: an HTTP server that
// answers "fn PATH".
type fnUpstream string

func (f fnUpstream) Endpoint(string) (string, error) { return string(f), nil }

func upstream(t testing.TB) fnUpstream {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "fn %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return fnUpstream(strings.TrimPrefix(srv.URL, "http://"))
}

// clusterEdge returns an edge in cluster mode watching ns.
func clusterEdge(t testing.TB, c *kubetest.Cluster, ns string, up fnUpstream) *edge.Edge {
	src, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sourceEdge(t, src, up)
}

// sourceEdge returns an edge in cluster mode serving src's routes.
func sourceEdge(t testing.TB, src edge.RouteSource, up fnUpstream) *edge.Edge {
	e, err := edge.New(edge.Options{Source: src, Upstreams: up, DisableConnTakeover: true,
		Logger: slog.New(slog.DiscardHandler), SourceSyncTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func fnRoute(host string, pr int) preview.Route {
	return preview.Route{Host: host, Function: "fn", FunctionPaths: []string{"/api"},
		Labels: preview.OwnerLabels("", preview.Target{App: "src", PR: pr})}
}

// get sends GET host/api to e and returns the status and body.
func get(e *edge.Edge, host string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+"/api", nil)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// waitServed waits until e serves host (through its function) or, with
// want false, answers it 404, and fails the test after servedWithin.
func waitServed(t *testing.T, e *edge.Edge, host string, want bool) {
	t.Helper()
	deadline := time.Now().Add(servedWithin)
	for {
		code, body := get(e, host)
		if want && code == http.StatusOK && body == "fn /api" || !want && code == http.StatusNotFound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v: %d %q; want served=%v", host, servedWithin, code, body, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSourceServesWrites writes routes as `glimpse up` would from
// outside (a k8singress.Router of its own) and checks that an edge in
// cluster mode serves them, stops serving a tombstone and a deleted
// route, and ignores an Ingress that is not Glimpse's.
func TestSourceServesWrites(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	e := clusterEdge(t, c, ns, upstream(t))
	cli, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.src.example.com"
	stored, err := cli.SetRoute(ctx(t), fnRoute(host, 1))
	if err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, true)
	if got, err := e.Route(ctx(t), host); err != nil || got.Version != stored.Version {
		t.Errorf("edge Route = %+v, %v; want version %s", got, err, stored.Version)
	}

	ts := fnRoute(host, 1)
	ts.Deleted, ts.Version = true, stored.Version
	if stored, err = cli.SetRoute(ctx(t), ts); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, false)

	live := fnRoute(host, 1)
	live.Version = stored.Version
	if _, err := cli.SetRoute(ctx(t), live); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, true)
	if err := cli.DeleteRoute(ctx(t), host); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, false)

	// An Ingress without Glimpse's labels is never served, even with
	// Glimpse's annotations on it.
	foreign := "handmade.src.example.com"
	_, err = c.Client(t).NetworkingV1().Ingresses(ns).Create(ctx(t), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: foreign, Annotations: map[string]string{
			k8singress.AnnotationFunction: "fn", k8singress.AnnotationFunctionPaths: `["/api"]`}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: foreign}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A Glimpse route written after it is served, so the foreign one has
	// been seen by the informer if it ever would be.
	if _, err := cli.SetRoute(ctx(t), fnRoute("pr-2.src.example.com", 2)); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, "pr-2.src.example.com", true)
	if code, _ := get(e, foreign); code != http.StatusNotFound || e.HasHost(foreign) {
		t.Errorf("foreign ingress answered %d; want 404", code)
	}
}

// TestSourceInvalidIngress checks that a Glimpse Ingress whose
// annotations do not parse is not served and does not stop the others.
func TestSourceInvalidIngress(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	cli, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := "pr-1.bad.example.com", "pr-2.bad.example.com"
	if _, err := cli.SetRoute(ctx(t), fnRoute(bad, 1)); err != nil {
		t.Fatal(err)
	}
	api := c.Client(t).NetworkingV1().Ingresses(ns)
	ing, err := api.Get(ctx(t), bad, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[k8singress.AnnotationFunctionPaths] = "not json"
	if _, err := api.Update(ctx(t), ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := clusterEdge(t, c, ns, upstream(t))
	if _, err := cli.SetRoute(ctx(t), fnRoute(good, 2)); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, good, true)
	if e.HasHost(bad) {
		t.Errorf("%s with unparsable annotations is served", bad)
	}
}

// TestSourceEdgesAgree runs two edges on one namespace, writes through
// each edge's own preview.Router (delegated to the Ingresses) and through
// a third writer, and checks that both serve every route and list the
// same ones.
func TestSourceEdgesAgree(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	up := upstream(t)
	a, b := clusterEdge(t, c, ns, up), clusterEdge(t, c, ns, up)
	cli, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	writers := []preview.Router{a, b, cli}
	var hosts []string
	for i, w := range writers {
		host := fmt.Sprintf("pr-%d.agree.example.com", i+1)
		hosts = append(hosts, host)
		if _, err := w.SetRoute(ctx(t), fnRoute(host, i+1)); err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	for _, e := range []*edge.Edge{a, b} {
		for _, h := range hosts {
			waitServed(t, e, h, true)
		}
	}
	la, err := a.Routes(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Routes(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(la) != len(hosts) || fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Errorf("edge a lists %v\nedge b lists %v\nwant the same %d routes", la, lb, len(hosts))
	}
	// A delete through one edge stops both from serving.
	if err := a.DeleteRoute(ctx(t), hosts[2]); err != nil {
		t.Fatal(err)
	}
	waitServed(t, a, hosts[2], false)
	waitServed(t, b, hosts[2], false)
}

// TestSourceRestart checks that an edge started after the routes exist
// serves all of them as soon as New returns (New waits for the first
// list), tombstones excepted: a restart loses nothing.
func TestSourceRestart(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	cli, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			rt := fnRoute(fmt.Sprintf("pr-%d.restart.example.com", i), i+1)
			rt.Deleted = i == 0
			_, err := cli.SetRoute(ctx(t), rt)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	up := upstream(t)
	first := clusterEdge(t, c, ns, up)
	first.Close()
	e := clusterEdge(t, c, ns, up)
	for i := range n {
		host := fmt.Sprintf("pr-%d.restart.example.com", i)
		code, body := get(e, host)
		if i == 0 && code != http.StatusNotFound {
			t.Errorf("tombstone %s answered %d; want 404", host, code)
		}
		if i > 0 && (code != http.StatusOK || body != "fn /api") {
			t.Errorf("%s right after New: %d %q; want it served", host, code, body)
		}
	}
	if _, err := e.Route(ctx(t), "pr-0.restart.example.com"); err != nil {
		t.Errorf("Route of the tombstone: %v; want it stored", err)
	}
}

// TestSourceRouterConformance runs the Router suite against an edge in
// cluster mode: its preview.Router is the Ingresses'.
func TestSourceRouterConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			c := kubetest.Shared(t, kubetest.Options{})
			return clusterEdge(t, c, c.Namespace(t), upstream(t))
		},
		BaseDomain: "preview.example.com",
	})
}

// TestSourceOptions checks that New refuses a source together with a
// route store or state file, and that a source it cannot list fails New
// within SourceSyncTimeout.
func TestSourceOptions(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	src, err := k8singress.New(c.Client(t), c.Namespace(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := edge.New(edge.Options{Source: src, StateFile: t.TempDir() + "/routes.json"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("Source with StateFile: %v; want InvalidArgument", err)
	}
	// An API server that refuses the connection: nothing listens there.
	cfg := c.Config()
	cfg.Host = "https://127.0.0.1:1"
	down, err := k8singress.New(kubeClient(t, cfg), "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = edge.New(edge.Options{Source: down, SourceSyncTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	// client-go retries a refused connection inside its list call, so
	// the timeout may come before the first list error.
	if code := preview.CodeOf(err); code != preview.Unavailable && code != preview.DeadlineExceeded {
		t.Errorf("New with an unreachable source: %v (code %v); want Unavailable or DeadlineExceeded", err, code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("New with an unreachable source took %v; want about the 1s timeout", d)
	}
}

func kubeClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

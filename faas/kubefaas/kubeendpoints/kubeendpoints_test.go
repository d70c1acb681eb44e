package kubeendpoints_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/faas/kubefaas/kubeendpoints"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

const helloImage = "glimpse.test/hello:1"

// cluster returns the package's cluster (a real kubelet), with
// examples/hello's function built static and imported into the node as
// helloImage (nothing can be pulled here).
func cluster(tb testing.TB) *kubetest.Cluster {
	c := kubetest.Shared(tb, kubetest.Options{Node: true})
	c.ImportGo(tb, helloImage, "../../../examples/hello/function", ".")
	return c
}

// setup deploys the hello function named name in a fresh namespace and
// returns the kubefaas runtime and the same runtime ready for an edge
// (ForEdge: a Watcher there).
func setup(tb testing.TB, ctx context.Context, name string) (kubernetes.Interface, string, *kubefaas.Runtime, *kubeendpoints.Runtime) {
	tb.Helper()
	c := cluster(tb)
	ns := c.Namespace(tb)
	cs := c.Client(tb)
	rt, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: "Never"})
	if err != nil {
		tb.Fatal(err)
	}
	// As an edge composes it: the runtime with its watcher, which stops
	// with wctx.
	wctx, stop := context.WithCancel(ctx)
	tb.Cleanup(stop)
	w, err := kubeendpoints.ForEdge(wctx, rt)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Endpoint(name); preview.CodeOf(err) != preview.NotFound {
		tb.Fatalf("Endpoint before any deploy: %v, want NotFound", err)
	}
	fn := preview.Function{Name: name, Image: helloImage, Env: map[string]string{"GLIMPSE_APP": "hello", "GLIMPSE_PR": "3"},
		Labels: preview.OwnerLabels("", preview.Target{App: "hello", PR: 3, Commit: "c0ffee1"})}
	if err := rt.Apply(ctx, fn); err != nil {
		tb.Fatal(err)
	}
	return cs, ns, rt, w
}

// TestEndpoint: a deployed function is Unavailable (or ready) until its
// pod is ready, WaitEndpoint returns the pod's address, which answers;
// scaled to zero it is FailedPrecondition; after Scale(1) WaitEndpoint
// returns on the EndpointSlice event; a context that ends first is
// DeadlineExceeded, naming what it last saw.
func TestEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, _, rt, w := setup(t, ctx, "hello")
	if _, err := w.Endpoint("hello"); err != nil && preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Endpoint right after Apply: %v, want Unavailable (or an address)", err)
	}
	ep, err := w.WaitEndpoint(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	post := func(ep string) string {
		t.Helper()
		resp, err := http.Post("http://"+ep+"/graphql", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("POST to the pod at %s: %v", ep, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if body := post(ep); !strings.Contains(body, `"pr":3`) {
		t.Fatalf("the pod at %s answered %q", ep, body)
	}
	if !strings.HasSuffix(ep, ":8080") {
		t.Errorf("endpoint %s: want the pod's target port 8080", ep)
	}

	if _, err := rt.Scale(ctx, "hello", 0); err != nil {
		t.Fatal(err)
	}
	zctx, zcancel := context.WithTimeout(ctx, time.Minute)
	for {
		_, err := w.Endpoint("hello")
		if preview.CodeOf(err) == preview.FailedPrecondition {
			break
		}
		if zctx.Err() != nil {
			t.Fatalf("Endpoint a minute after Scale(0): %v, want FailedPrecondition", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	zcancel()
	short, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = w.WaitEndpoint(short, "hello")
	scancel()
	if preview.CodeOf(err) != preview.DeadlineExceeded || !strings.Contains(err.Error(), "scaled to zero") {
		t.Fatalf("WaitEndpoint on a function at zero: %v, want DeadlineExceeded naming the state", err)
	}
	if _, err := rt.Scale(ctx, "hello", 1); err != nil {
		t.Fatal(err)
	}
	if ep, err = w.WaitEndpoint(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if body := post(ep); !strings.Contains(body, `"pr":3`) {
		t.Fatalf("the woken pod at %s answered %q", ep, body)
	}
	if err := rt.Remove(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	for {
		_, err := w.Endpoint("hello")
		if preview.CodeOf(err) == preview.NotFound {
			break
		}
		if rctx.Err() != nil {
			t.Fatalf("Endpoint a minute after Remove: %v, want NotFound", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkWakeThroughEdge is the wake figure of issue 16: a request
// through the daemon's edge (edge.Edge over this Watcher and the kubefaas
// runtime, as `glimpse serve` composes them with runtime: kubefaas://)
// to a function at zero replicas, until its answer arrives, against the
// cluster's own floor measured in the same run on the same Deployment:
// UpdateScale(1) through client-go, then a watch on its EndpointSlices
// until one lists a ready endpoint. Iterations alternate floor and edge,
// each from zero with no pod left. The two medians (floor-ms, edge-ms)
// and their ratio carry the variance of pod start-ups (a readiness probe
// every second), so the edge's own cost is also measured within each of
// its wakes: added-ms is the median time from the moment an independent
// watch sees the EndpointSlice list the ready pod to the moment the
// answer has arrived through the edge:
//
//	go test -run '^$' -bench WakeThroughEdge -benchtime 8x ./faas/kubefaas/kubeendpoints/
func BenchmarkWakeThroughEdge(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs, ns, rt, w := setup(b, ctx, "wake")
	if _, err := w.WaitEndpoint(ctx, "wake"); err != nil {
		b.Fatal(err)
	}
	assets, err := fsassets.New(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := edge.New(edge.Options{Assets: assets, Upstreams: w, Waker: rt, StateFile: filepath.Join(b.TempDir(), "routes.json"), WakeTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	host := "pr-3.hello.localhost"
	if _, err := e.SetRoute(ctx, preview.Route{Host: host, Function: "wake", FunctionPaths: []string{"/graphql"}, AssetPrefix: "hello/pr-3/c0ffee1",
		Labels: preview.OwnerLabels("", preview.Target{App: "hello", PR: 3, Commit: "c0ffee1"})}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	client := srv.Client()

	toZero := func() {
		if _, err := rt.Scale(ctx, "wake", 0); err != nil {
			b.Fatal(err)
		}
		for {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubefaas.LabelFunction + "=wake"})
			if err != nil {
				b.Fatal(err)
			}
			_, eerr := w.Endpoint("wake")
			if len(pods.Items) == 0 && preview.CodeOf(eerr) == preview.FailedPrecondition {
				return
			}
			if ctx.Err() != nil {
				b.Fatalf("not at zero: %d pods, endpoint %v", len(pods.Items), eerr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// readyWatch starts a watch on the function's EndpointSlices (from the
	// list's version, so no event is missed and its set-up is not timed)
	// and returns a channel that gets the time the first ready endpoint
	// was seen.
	readyWatch := func() (<-chan time.Time, func()) {
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=wake"})
		if err != nil {
			b.Fatal(err)
		}
		wi, err := cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=wake", ResourceVersion: list.ResourceVersion})
		if err != nil {
			b.Fatal(err)
		}
		at := make(chan time.Time, 1)
		go func() {
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Error {
					return
				}
				if s, ok := ev.Object.(*discoveryv1.EndpointSlice); ok {
					for _, ep := range s.Endpoints {
						if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
							at <- time.Now()
							return
						}
					}
				}
			}
		}()
		return at, wi.Stop
	}
	floor := func() time.Duration {
		at, stop := readyWatch()
		defer stop()
		start := time.Now()
		if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "wake", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "wake", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 1},
		}, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		select {
		case t := <-at:
			return t.Sub(start)
		case <-ctx.Done():
			b.Fatal("no ready endpoint")
		}
		return 0
	}
	// throughEdge returns the time the request took and how much of it
	// came after the EndpointSlice listed the ready pod (what the edge
	// adds to the cluster's own wake, in the same wake).
	throughEdge := func() (total, after time.Duration) {
		at, stop := readyWatch()
		defer stop()
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/graphql", strings.NewReader("{}"))
		req.Host = host
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		end := time.Now()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"pr":3`) {
			b.Fatalf("POST through the edge after a wake = %d %q", resp.StatusCode, body)
		}
		select {
		case t := <-at:
			return end.Sub(start), end.Sub(t)
		case <-time.After(5 * time.Second):
			b.Fatal("the edge answered but no ready endpoint was seen")
		}
		return 0, 0
	}
	var floors, edges, afters []time.Duration
	edge := func() {
		total, after := throughEdge()
		edges, afters = append(edges, total), append(afters, after)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first, so that a drift in the machine's
		// load does not favour one.
		first, second := func() { floors = append(floors, floor()) }, edge
		if i%2 == 1 {
			first, second = second, first
		}
		b.StopTimer()
		toZero()
		b.StartTimer()
		first()
		b.StopTimer()
		toZero()
		b.StartTimer()
		second()
	}
	b.StopTimer()
	f, g := median(floors), median(edges)
	b.ReportMetric(ms(f), "floor-ms")
	b.ReportMetric(ms(g), "edge-ms")
	b.ReportMetric(float64(g)/float64(f), "edge/floor")
	b.ReportMetric(ms(median(afters)), "added-ms")
	b.ReportMetric(0, "ns/op")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

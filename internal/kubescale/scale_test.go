package kubescale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/idle"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/internal/kubescale"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
)

// One control plane with kwok's fake node for the package.
func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

func TestKind(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/apis/apps/v1/namespaces/fleet/deployments", "list"},
		{"GET", "/apis/apps/v1/namespaces/fleet/deployments?labelSelector=a%3Db", "list"},
		{"GET", "/apis/apps/v1/namespaces/fleet/deployments?watch=true", "watch"},
		{"GET", "/apis/apps/v1/namespaces/fleet/deployments/app-pr-1", "get"},
		{"GET", "/apis/apps/v1/namespaces/fleet/deployments/app-pr-1/scale", "get"},
		{"PUT", "/apis/apps/v1/namespaces/fleet/deployments/app-pr-1/scale", "write"},
		{"GET", "/api/v1/namespaces/fleet/pods", "list"},
		{"GET", "/api/v1/namespaces", "list"},
		{"GET", "/api/v1/namespaces/fleet", "get"},
		{"GET", "/api/v1/nodes/kwok-1", "get"},
		{"DELETE", "/api/v1/namespaces/fleet/services/app-pr-1", "write"},
		{"GET", "/apis", "other"},
		{"GET", "/readyz", "other"},
	} {
		req, err := http.NewRequest(tc.method, "https://127.0.0.1"+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := kubescale.Kind(req); got != tc.want {
			t.Errorf("Kind(%s %s) = %s, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

// previews is the fleet's size: the scale figure.
const previews = 1000

const fleetNS = "fleet"

var fleet struct {
	once sync.Once
	err  error
}

func name(i int) string { return fmt.Sprintf("app-pr-%d", i) }

// deployed returns the cluster once it holds the fleet: previews kubefaas
// functions, each a Deployment with one Running, Ready pod on kwok's node.
func deployed(b *testing.B) *kubetest.Cluster {
	c := kubetest.Shared(b, kubetest.Options{FakeNode: true, Timeout: 3 * time.Minute})
	fleet.once.Do(func() { fleet.err = deployFleet(c) })
	if fleet.err != nil {
		b.Fatal(fleet.err)
	}
	return c
}

func deployFleet(c *kubetest.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetNS}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rt, err := kubefaas.New(cs, fleetNS, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	work := make(chan int)
	errs := make(chan error, previews)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs <- rt.Apply(ctx, preview.Function{Name: name(i), Image: "glimpse.test/none:1",
					Labels: preview.OwnerLabels("", preview.Target{App: "app", PR: i, Commit: "c0ffee1"})})
			}
		}()
	}
	for i := 1; i <= previews; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	applied := time.Since(start)
	for {
		l, err := cs.AppsV1().Deployments(fleetNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, d := range l.Items {
			ready += int(d.Status.ReadyReplicas)
		}
		if ready == previews {
			fmt.Fprintf(os.Stderr, "kubescale: %d previews applied in %v, all Ready in %v\n", previews, applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d previews Ready: %w", ready, previews, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// activity is the edge's counts as the controller reads them, at the
// controller's clock (an hour after the fleet was deployed, so that the
// deploy no longer counts as activity): every function started a request
// then, except the idle ones, whose last request was an hour before.
type activity struct{ acts []preview.Activity }

func (a *activity) Activity(context.Context) ([]preview.Activity, error) { return a.acts, nil }

func newActivity(now time.Time, idleCount int) *activity {
	a := &activity{}
	for i := 1; i <= previews; i++ {
		last := now
		if i <= idleCount {
			last = now.Add(-time.Hour)
		}
		a.acts = append(a.acts, preview.Activity{Function: name(i), Started: 1, Finished: 1, LastActivity: last})
	}
	return a
}

// BenchmarkIdleCycle1000 measures one idle-controller cycle over 1,000
// kubefaas previews as the daemon runs it, counting the API calls it
// makes (goal: one list, writes only for what changed; checked), against the
// baseline of the single list that goal allows, measured in the same run:
//   - one-list: one List of the fleet's Deployments (the baseline);
//   - quiet: every preview active, nothing to put to sleep;
//   - 10-idle: ten previews idle for an hour, put to sleep (scaled back
//     to one replica between cycles, uncounted, and the cluster left to
//     settle: their pods Ready again).
//
// client-go already asks for protobuf for built-in types: the bytes are
// what the daemon would receive.
func BenchmarkIdleCycle1000(b *testing.B) {
	c := deployed(b)
	var counter kubescale.Counter
	cfg := c.Config()
	cfg.WrapTransport = counter.Wrap
	counted, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := kubefaas.New(counted, fleetNS, nil)
	if err != nil {
		b.Fatal(err)
	}
	admin, err := kubefaas.New(c.Client(b), fleetNS, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sel := preview.Selector(preview.AnyOwner, "", 0)
	report := func(b *testing.B, calls map[string]int, bytes int64) {
		total := 0
		for _, n := range calls {
			total += n
		}
		n := float64(b.N)
		b.ReportMetric(float64(total)/n, "calls/cycle")
		b.ReportMetric(float64(calls["list"])/n, "lists/cycle")
		b.ReportMetric(float64(calls["get"])/n, "gets/cycle")
		b.ReportMetric(float64(calls["write"])/n, "writes/cycle")
		b.ReportMetric(float64(bytes)/n/1024, "KiB/cycle")
	}

	b.Run("one-list", func(b *testing.B) {
		s, err := kubeapi.Selector(sel)
		if err != nil {
			b.Fatal(err)
		}
		counter.Take()
		for b.Loop() {
			l, err := counted.AppsV1().Deployments(fleetNS).List(ctx, metav1.ListOptions{LabelSelector: s})
			if err != nil || len(l.Items) != previews {
				b.Fatalf("list: %d items, %v", len(l.Items), err)
			}
		}
		calls, bytes := counter.Take()
		report(b, calls, bytes)
	})

	for _, tc := range []struct {
		name string
		rt   *kubefaas.Runtime
		idle int
	}{{"quiet", rt, 0}, {"10-idle", rt, 10}} {
		b.Run(tc.name, func(b *testing.B) {
			clock := time.Now().Add(time.Hour)
			ctl := &idle.Controller{Runtime: tc.rt, Activity: newActivity(clock, tc.idle), Policy: idle.Policy{},
				Now:    func() time.Time { return clock },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			calls, bytes := map[string]int{}, int64(0)
			for b.Loop() {
				b.StopTimer()
				for i := 1; i <= tc.idle; i++ {
					if _, err := admin.Scale(ctx, name(i), 1); err != nil {
						b.Fatal(err)
					}
				}
				settle(b, admin, tc.idle)
				counter.Take()
				b.StartTimer()
				res, err := ctl.Cycle(ctx)
				b.StopTimer()
				if err != nil || len(res.Errors) > 0 || res.Observed != previews || len(res.Slept) != tc.idle {
					b.Fatalf("cycle: observed %d, slept %d (want %d), clamped %v, skipped %q, errors %v, %v", res.Observed, len(res.Slept), tc.idle, res.Clamped, res.Skipped, res.Errors, err)
				}
				cs, n := counter.Take()
				for k, v := range cs {
					calls[k] += v
				}
				bytes += n
				b.StartTimer()
			}
			// The goal, checked: a quiet cycle is the one list and no
			// write; a cycle that puts previews to sleep writes once per
			// preview (its scale). A list of pods is made only when some
			// Deployment is short of ready replicas (kubefaas.List).
			if tc.idle == 0 && (calls["list"] != b.N || len(calls) != 1) {
				b.Errorf("quiet cycles made %v in %d cycles; want one list each and nothing else", calls, b.N)
			}
			if calls["write"] != tc.idle*b.N {
				b.Errorf("%d cycles made %d writes; want %d (one scale per idle preview)", b.N, calls["write"], tc.idle*b.N)
			}
			report(b, calls, bytes)
		})
	}
}

// settle waits until the first n previews have their replica Ready, so
// that the controller manager, scheduler and kwok are not still busy
// waking them while a cycle is timed.
func settle(b *testing.B, rt *kubefaas.Runtime, n int) {
	deadline := time.Now().Add(time.Minute)
	for i := 1; i <= n; i++ {
		for {
			st, err := rt.Get(context.Background(), name(i))
			if err != nil {
				b.Fatal(err)
			}
			if st.AvailableReplicas == 1 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not Ready again after a minute", name(i))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

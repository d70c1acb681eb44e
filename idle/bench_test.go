package idle_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/idle"
	"github.com/glimpse-dev/glimpse/preview"
)

func postGraphQL(b *testing.B, client *http.Client, srv *httptest.Server, host string) time.Duration {
	req, _ := http.NewRequest("POST", srv.URL+"/graphql", strings.NewReader(`{"query":"{ preview { pr } }"}`))
	req.Host = host
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return d
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkFirstRequestAfterSleep measures, for examples/hello's function
// on the local stack, the latency of the first request after the function
// was put to sleep (the edge holds it, wakes the function, forwards it)
// against a warm request measured in the same run, and reports both at
// p50 and p99 plus the added latency (cold p50 - warm p50) in ms.
func BenchmarkFirstRequestAfterSleep(b *testing.B) {
	st, srv := deployApp(b, "../examples/hello", 1)
	client := srv.Client()
	host := "pr-1.hello.localhost"
	var warm, cold []time.Duration
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		postGraphQL(b, client, srv, host)
		warm = append(warm, postGraphQL(b, client, srv, host))
		slept, err := st.Edge.Sleep(ctx, "hello-pr-1", time.Now(), func(ctx context.Context) error {
			_, err := st.Runtime.Scale(ctx, "hello-pr-1", 0)
			return err
		})
		if err != nil || !slept {
			b.Fatalf("Sleep = %v, %v", slept, err)
		}
		b.StartTimer()
		cold = append(cold, postGraphQL(b, client, srv, host))
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(percentile(warm, .5)), "warm-p50-ms")
	b.ReportMetric(ms(percentile(warm, .99)), "warm-p99-ms")
	b.ReportMetric(ms(percentile(cold, .5)), "cold-p50-ms")
	b.ReportMetric(ms(percentile(cold, .99)), "cold-p99-ms")
	b.ReportMetric(ms(percentile(cold, .5)-percentile(warm, .5)), "added-p50-ms")
	b.ReportMetric(ms(percentile(cold, .99)-percentile(warm, .99)), "added-p99-ms")
}

// listRuntime is a FunctionRuntime holding a fixed list of sleeping and
// awake functions in memory. It stands in for a runtime with 10,000
// previews so that the benchmark below measures the controller's own
// work; it counts List calls.
type listRuntime struct {
	fns   []preview.FunctionStatus
	lists int
}

func (r *listRuntime) Apply(context.Context, preview.Function) error { return nil }
func (r *listRuntime) Get(context.Context, string) (preview.FunctionStatus, error) {
	return preview.FunctionStatus{}, preview.Errorf(preview.NotFound, "no")
}
func (r *listRuntime) List(ctx context.Context, sel preview.Labels) ([]preview.FunctionStatus, error) {
	r.lists++
	out := make([]preview.FunctionStatus, 0, len(r.fns))
	for _, f := range r.fns {
		if preview.Labels(f.Labels).Matches(sel) {
			out = append(out, f)
		}
	}
	return out, nil
}
func (r *listRuntime) Scale(context.Context, string, int) (int, error) { return 0, nil }
func (r *listRuntime) Remove(context.Context, string) error            { return nil }

// BenchmarkControllerCycle10k measures one controller cycle over 10,000
// previews (half awake, a tenth of those idle) with one List call and the
// activity of all of them.
func BenchmarkControllerCycle10k(b *testing.B) {
	const n = 10000
	now := time.Now()
	rt := &listRuntime{}
	acts := make([]preview.Activity, n)
	for i := 0; i < n; i++ {
		tg := preview.Target{App: "app", PR: i + 1, Commit: "abc1234"}
		name := preview.FunctionName(tg.App, tg.PR)
		st := preview.FunctionStatus{Function: preview.Function{Name: name, Labels: preview.OwnerLabels("", tg),
			Annotations: map[string]string{preview.AnnotationIdleAfter: "15m"}}, Replicas: i % 2}
		rt.fns = append(rt.fns, st)
		last := now.Add(-time.Minute)
		if i%20 == 1 {
			last = now.Add(-time.Hour)
		}
		acts[i] = preview.Activity{Function: name, Started: 3, Finished: 3, LastActivity: last}
	}
	act := &activity{}
	act.set(nil, acts...)
	c := &idle.Controller{Runtime: rt, Activity: act, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var slept int
	for b.Loop() {
		res, err := c.Cycle(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		slept = len(res.Slept)
	}
	if want := n / 20; slept != want {
		b.Fatalf("slept %d functions per cycle, want %d", slept, want)
	}
	b.ReportMetric(float64(rt.lists)/float64(b.N), "lists/cycle")
}

// BenchmarkWakeTemplateWrapper compares the first request after sleep of
// an OpenFaaS golang-middleware function (Glimpse's generated main around
// Handle) with examples/hello's plain main on the same stack, alternating
// the two in every iteration, and reports both p50s and the wrapper's
// added p50 in ms.
func BenchmarkWakeTemplateWrapper(b *testing.B) {
	st, srv := deployApps(b, []string{"../examples/hello", "testdata/mwapp"}, 1)
	client := srv.Client()
	ctx := context.Background()
	cold := map[string][]time.Duration{}
	for b.Loop() {
		for _, app := range []string{"hello", "mw"} {
			fn, host := app+"-pr-1", "pr-1."+app+".localhost"
			postGraphQL(b, client, srv, host)
			slept, err := st.Edge.Sleep(ctx, fn, time.Now(), func(ctx context.Context) error {
				_, err := st.Runtime.Scale(ctx, fn, 0)
				return err
			})
			if err != nil || !slept {
				b.Fatalf("Sleep(%s) = %v, %v", fn, slept, err)
			}
			cold[app] = append(cold[app], postGraphQL(b, client, srv, host))
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(percentile(cold["hello"], .5)), "main-p50-ms")
	b.ReportMetric(ms(percentile(cold["mw"], .5)), "wrapper-p50-ms")
	b.ReportMetric(ms(percentile(cold["mw"], .5)-percentile(cold["hello"], .5)), "added-p50-ms")
}

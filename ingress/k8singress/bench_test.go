package k8singress_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
)

// BenchmarkSetRoute measures one compare-and-swap of a route (a read for
// the ownership and version check, then a server-side apply carrying the
// resourceVersion) against the real API server. BenchmarkRawUpdate is its baseline: one update of the
// same Ingress straight through client-go, the least any Ingress-backed
// router can do. Compare them from one run:
//
//	go test -run '^$' -bench . ./ingress/k8singress/
func BenchmarkSetRoute(b *testing.B) {
	c := kubetest.Shared(b, kubetest.Options{})
	ns := c.Namespace(b)
	r, err := k8singress.New(c.Client(b), ns, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rt, err := r.SetRoute(ctx, preview.Route{Host: "pr-1.bench.example.com", Labels: preview.OwnerLabels("", preview.Target{App: "bench", PR: 1})})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt.Generation++
		if rt, err = r.SetRoute(ctx, rt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawUpdate(b *testing.B) {
	c := kubetest.Shared(b, kubetest.Options{})
	ns := c.Namespace(b)
	r, err := k8singress.New(c.Client(b), ns, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	host := "pr-1.raw.example.com"
	if _, err := r.SetRoute(ctx, preview.Route{Host: host, Labels: preview.OwnerLabels("", preview.Target{App: "bench", PR: 1})}); err != nil {
		b.Fatal(err)
	}
	api := c.Client(b).NetworkingV1().Ingresses(ns)
	ing, err := api.Get(ctx, host, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ing.Annotations[k8singress.AnnotationGeneration] = string(rune('0' + i%10))
		if ing, err = api.Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSourceRouteChange measures, with 1,000 previews in the
// namespace, how long a route change takes to be served by an edge in
// cluster mode through the informer (edge.Options.Source): each
// iteration turns one preview's route into a tombstone or back with
// Router.SetRoute, as `glimpse up` would from outside, and waits until
// the edge's served table shows it (Edge.HasHost, what ServeHTTP
// consults). Its baseline, from the same iterations, is the change's API
// round trip (the SetRoute call: a read and a conditional update).
// Metrics: api-ms/op, served-ms/op (from the start of the SetRoute),
// served/api (their ratio), max-served-ms (the slowest iteration) and
// max-after-api-ms (the longest wait after SetRoute returned).
//
//	go test -run '^$' -bench SourceRouteChange ./ingress/k8singress/
func BenchmarkSourceRouteChange(b *testing.B) {
	const previews = 1000
	c := kubetest.Shared(b, kubetest.Options{})
	ns := c.Namespace(b)
	cli, err := k8singress.New(c.Client(b), ns, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	routes := make([]preview.Route, previews)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < previews; i += 8 {
				rt, err := cli.SetRoute(ctx, fnRoute(fmt.Sprintf("pr-%d.bench.example.com", i), i+1))
				if err != nil {
					errs <- err
					return
				}
				routes[i] = rt
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	e := clusterEdge(b, c, ns, "127.0.0.1:1")
	if !e.HasHost(routes[previews-1].Host) {
		b.Fatal("the edge does not serve the routes that existed when it started")
	}
	var api, served, worst, worstAfter time.Duration
	i := 0
	for b.Loop() {
		rt := &routes[i%previews]
		i++
		rt.Deleted = !rt.Deleted
		start := time.Now()
		if *rt, err = cli.SetRoute(ctx, *rt); err != nil {
			b.Fatal(err)
		}
		apiD := time.Since(start)
		api += apiD
		for e.HasHost(rt.Host) == rt.Deleted {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s not served 10s after the change", rt.Host)
			}
			time.Sleep(20 * time.Microsecond)
		}
		d := time.Since(start)
		served += d
		worst = max(worst, d)
		worstAfter = max(worstAfter, d-apiD)
	}
	n := float64(b.N)
	b.ReportMetric(api.Seconds()*1000/n, "api-ms/op")
	b.ReportMetric(served.Seconds()*1000/n, "served-ms/op")
	b.ReportMetric(served.Seconds()/api.Seconds(), "served/api")
	b.ReportMetric(worst.Seconds()*1000, "max-served-ms")
	b.ReportMetric(worstAfter.Seconds()*1000, "max-after-api-ms")
}

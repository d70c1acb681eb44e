package k8singress_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
)

// BenchmarkSetRoute measures one compare-and-swap of a route (a read for
// the ownership and version check, then a conditional update) against the
// real API server. BenchmarkRawUpdate is its baseline: one update of the
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

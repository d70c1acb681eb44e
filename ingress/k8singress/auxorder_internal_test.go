package k8singress

import (
	"context"
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
)

// An older SetRoute whose auxiliary Ingress write lands after a newer
// SetRoute's (the two interleave) does not leave the older function
// paths routed: it follows the stored route and writes the newest one's;
// after a tombstone, a late stale write is removed again.
func TestAuxFollowsTheNewestRoute(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	r, err := New(c.Client(t), ns, &Options{Direct: &Direct{Functions: "http://gateway.openfaas:8080", Origin: "http://cdn.example.com/sites"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := "pr-1.auxorder.example.com"
	rt := preview.Route{Host: host, AssetPrefix: "auxorder/pr-1/1-a", Function: "auxorder-pr-1", FunctionPaths: []string{"/old"},
		Labels: preview.OwnerLabels("", preview.Target{App: "auxorder", PR: 1})}
	v1, err := r.SetRoute(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	_, staleAux, err := r.render(v1) // what the older SetRoute was writing
	if err != nil {
		t.Fatal(err)
	}
	rt.FunctionPaths, rt.Version, rt.Generation = []string{"/new"}, v1.Version, 2
	v2, err := r.SetRoute(ctx, rt)
	if err != nil {
		t.Fatal(err)
	}
	auxPaths := func() []string {
		t.Helper()
		ing, err := c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx, AuxPrefix+host, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ingressPaths(ing)
	}
	want := auxPaths()
	// The older SetRoute's auxiliary write lands now, after the newer one.
	if err := r.syncAuxFollowing(ctx, host, staleAux, v1.Version); err != nil {
		t.Fatal(err)
	}
	if got := auxPaths(); !slices.Equal(got, want) {
		t.Fatalf("function Ingress paths after a late stale write: %v, want the newest route's %v", got, want)
	}
	// A tombstone has no function Ingress; a late stale write does not bring it back.
	tomb := v2
	tomb.Deleted, tomb.Generation = true, 3
	if _, err := r.SetRoute(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	if err := r.syncAuxFollowing(ctx, host, staleAux, v1.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx, AuxPrefix+host, metav1.GetOptions{}); err == nil {
		t.Fatal("the function Ingress of a tombstoned route came back")
	}
}

func ingressPaths(ing *networkingv1.Ingress) []string {
	var out []string
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			out = append(out, p.Path)
		}
	}
	return out
}

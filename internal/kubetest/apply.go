package kubetest

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// Apply server-side applies objs as the admin, in order, as `kubectl
// apply --server-side` does (field manager "kubectl", forced), and
// returns them as the API server stored them. Any kind the API server
// serves will do, a CRD's included; a failure fails tb.
func (c *Cluster) Apply(tb testing.TB, objs ...*unstructured.Unstructured) []*unstructured.Unstructured {
	tb.Helper()
	dyn, err := dynamic.NewForConfig(c.Config())
	if err != nil {
		tb.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config())
	if err != nil {
		tb.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			tb.Fatalf("%s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
		got, err := dyn.Resource(m.Resource).Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "kubectl", Force: true})
		if err != nil {
			tb.Fatalf("apply %s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
		out = append(out, got)
	}
	return out
}

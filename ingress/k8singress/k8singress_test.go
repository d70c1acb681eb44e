package k8singress_test

import (
	"context"
	"os"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// One control plane (etcd + kube-apiserver) for the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

func newRouter(t *testing.T) (*k8singress.Router, *kubetest.Cluster, string) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	r, err := k8singress.New(c.Client(t), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, c, ns
}

func TestConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			r, _, _ := newRouter(t)
			return r
		},
		BaseDomain: "preview.example.com",
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestIngressShape checks what the API server stored: ownership labels,
// the class, the edge backend for the host, the route in annotations, and
// a tombstone without paths.
func TestIngressShape(t *testing.T) {
	r, c, ns := newRouter(t)
	host := "pr-3.shape.example.com"
	labels := preview.OwnerLabels("team", preview.Target{App: "shape", PR: 3, Commit: "abc1234"})
	stored, err := r.SetRoute(ctx(t), preview.Route{Host: host, AssetPrefix: "shape/pr-3/abc1234", Function: "shape-pr-3",
		FunctionPaths: []string{"/graphql", "/api"}, Labels: labels, Generation: 4, ClaimedCommit: "abc1234", Served: 4})
	if err != nil {
		t.Fatal(err)
	}
	ing, err := c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ing.ResourceVersion != stored.Version {
		t.Errorf("Version %q, want the resourceVersion %q", stored.Version, ing.ResourceVersion)
	}
	for k, v := range labels {
		if ing.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, ing.Labels[k], v)
		}
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("ingressClassName = %v, want nginx", ing.Spec.IngressClassName)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != host || ing.Spec.Rules[0].HTTP == nil || len(ing.Spec.Rules[0].HTTP.Paths) != 1 {
		t.Fatalf("rules = %+v, want one rule for %s with one path", ing.Spec.Rules, host)
	}
	p := ing.Spec.Rules[0].HTTP.Paths[0]
	if p.Path != "/" || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix ||
		p.Backend.Service == nil || p.Backend.Service.Name != "glimpse-edge" || p.Backend.Service.Port.Number != 80 {
		t.Errorf("path = %+v, want / Prefix to glimpse-edge:80", p)
	}
	if got := ing.Annotations[k8singress.AnnotationFunctionPaths]; got != `["/graphql","/api"]` {
		t.Errorf("function paths annotation = %q", got)
	}
	if got := ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]; got != "120" {
		t.Errorf("proxy-read-timeout = %q, want 120", got)
	}
	if len(ing.ManagedFields) == 0 || ing.ManagedFields[0].Manager != "glimpse" {
		t.Errorf("managedFields = %+v, want manager glimpse", ing.ManagedFields)
	}

	// An annotation another field manager added (as `kubectl annotate`
	// does: an update under its own manager) survives Glimpse's next
	// write, a server-side apply; a label Glimpse set and no longer sets
	// is removed by it.
	ing.Annotations["cert-manager.io/cluster-issuer"] = "letsencrypt"
	ing, err = c.Client(t).NetworkingV1().Ingresses(ns).Update(ctx(t), ing, metav1.UpdateOptions{FieldManager: "kubectl-annotate"})
	if err != nil {
		t.Fatal(err)
	}
	fewer := labels.Clone()
	delete(fewer, preview.LabelCommit)
	ts := preview.Route{Host: host, Labels: fewer, Generation: 5, Served: 4, Deleted: true, Version: ing.ResourceVersion}
	if _, err := r.SetRoute(ctx(t), ts); err != nil {
		t.Fatal(err)
	}
	ing, err = c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].HTTP != nil || ing.Annotations[k8singress.AnnotationDeleted] != "true" ||
		ing.Annotations[k8singress.AnnotationFunction] != "" {
		t.Errorf("tombstone = rules %+v annotations %v; want the host's rule without paths", ing.Spec.Rules, ing.Annotations)
	}
	if ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" {
		t.Errorf("annotations after SetRoute = %v; want another manager's annotation kept", ing.Annotations)
	}
	if _, ok := ing.Labels[preview.LabelCommit]; ok {
		t.Errorf("labels after SetRoute = %v; want %s, which the route no longer has, removed", ing.Labels, preview.LabelCommit)
	}
	managers := map[string]metav1.ManagedFieldsOperationType{}
	for _, m := range ing.ManagedFields {
		managers[m.Manager] = m.Operation
	}
	if managers["glimpse"] != metav1.ManagedFieldsOperationApply || managers["kubectl-annotate"] != metav1.ManagedFieldsOperationUpdate || len(managers) != 2 {
		t.Errorf("managedFields managers = %v; want glimpse (Apply) and kubectl-annotate (Update)", managers)
	}
	// Glimpse's next apply leaves the other manager's entry alone.
	got, err := r.Route(ctx(t), host)
	if err != nil {
		t.Fatal(err)
	}
	got.Generation = 6
	if _, err := r.SetRoute(ctx(t), got); err != nil {
		t.Fatal(err)
	}
	ing, err = c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" || ing.Annotations[k8singress.AnnotationGeneration] != "6" {
		t.Errorf("annotations after a second apply = %v", ing.Annotations)
	}
}

// TestForeignIngress checks that an Ingress without Glimpse's labels is
// never read as a route, replaced, listed or deleted.
func TestForeignIngress(t *testing.T) {
	r, c, ns := newRouter(t)
	host := "handmade.example.com"
	api := c.Client(t).NetworkingV1().Ingresses(ns)
	foreign := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: host, Labels: map[string]string{"app": "handmade"}},
		Spec:       networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host}}},
	}
	created, err := api.Create(ctx(t), foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Route(ctx(t), host); !preview.IsNotFound(err) {
		t.Errorf("Route of a foreign ingress: %v, want NotFound", err)
	}
	rt := preview.Route{Host: host, AssetPrefix: "x/pr-1/c", Labels: preview.OwnerLabels("", preview.Target{App: "x", PR: 1, Commit: "c"})}
	if _, err := r.SetRoute(ctx(t), rt); preview.CodeOf(err) != preview.Aborted {
		t.Errorf("SetRoute create over a foreign ingress: %v, want Aborted", err)
	}
	rt.Version = created.ResourceVersion
	if _, err := r.SetRoute(ctx(t), rt); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("SetRoute update of a foreign ingress: %v, want FailedPrecondition", err)
	}
	if err := r.DeleteRoute(ctx(t), host); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("DeleteRoute of a foreign ingress: %v, want FailedPrecondition", err)
	}
	if list, err := r.Routes(ctx(t), nil); err != nil || len(list) != 0 {
		t.Errorf("Routes = %+v, %v; want none", list, err)
	}
	got, err := api.Get(ctx(t), host, metav1.GetOptions{})
	if err != nil || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("foreign ingress after the refused calls: %v, %v; want it unchanged", got, err)
	}
}

// TestInvalidLabel checks that a label Kubernetes cannot store is
// InvalidArgument before any write.
func TestInvalidLabel(t *testing.T) {
	r, _, _ := newRouter(t)
	rt := preview.Route{Host: "pr-1.bad.example.com", Labels: preview.Labels{preview.LabelApp: "not a label value"}}
	if _, err := r.SetRoute(ctx(t), rt); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("SetRoute with an invalid label: %v, want InvalidArgument", err)
	}
	if _, err := r.Routes(ctx(t), preview.Labels{"bad key!": "x"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Routes with an invalid selector: %v, want InvalidArgument", err)
	}
}

// TestOpenURL opens the router through preview.Routers with a kubeconfig
// from the environment, and checks the URL's parameters.
func TestOpenURL(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	env := func(k string) string {
		if k == "KUBECONFIG" {
			return c.Kubeconfig
		}
		return ""
	}
	o := &preview.OpenOptions{Getenv: env}
	r, err := preview.Routers.Open(ctx(t), "k8s-ingress://"+ns+"?class=traefik&service=edge&port=8080", o)
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.url.example.com"
	if _, err := r.SetRoute(ctx(t), preview.Route{Host: host, Labels: preview.OwnerLabels("", preview.Target{App: "url", PR: 1})}); err != nil {
		t.Fatal(err)
	}
	ing, err := c.Client(t).NetworkingV1().Ingresses(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	if *ing.Spec.IngressClassName != "traefik" || b.Name != "edge" || b.Port.Number != 8080 {
		t.Errorf("class %s backend %+v, want traefik and edge:8080", *ing.Spec.IngressClassName, b)
	}
	for _, bad := range []string{
		"k8s-ingress://" + ns + "?nope=1",
		"k8s-ingress://" + ns + "?port=http",
		"k8s-ingress://Bad_NS",
		"k8s-ingress://" + ns + "/extra",
	} {
		if _, err := preview.Routers.Open(ctx(t), bad, o); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): %v, want InvalidArgument", bad, err)
		}
	}
}

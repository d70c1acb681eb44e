package k8singress_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// gatewayCRDs are the Gateway API CRDs the tests install, from the
// sigs.k8s.io/gateway-api module's own config/crd/standard (the version
// go.mod requires), never hand-written.
var gatewayCRDs = []string{
	"gateway.networking.k8s.io_gatewayclasses.yaml",
	"gateway.networking.k8s.io_gateways.yaml",
	"gateway.networking.k8s.io_httproutes.yaml",
	"gateway.networking.k8s.io_backendtlspolicies.yaml",
}

var installCRDs struct {
	once sync.Once
	err  error
}

// gatewayCluster returns the package's cluster with the Gateway API CRDs
// installed and established, and a Gateway API client.
func gatewayCluster(t testing.TB) (*kubetest.Cluster, gateway.Interface) {
	t.Helper()
	c := kubetest.Shared(t, kubetest.Options{})
	installCRDs.once.Do(func() { installCRDs.err = installGatewayCRDs(c) })
	if installCRDs.err != nil {
		t.Fatalf("gateway API CRDs: %v", installCRDs.err)
	}
	gw, err := gateway.NewForConfig(c.Config())
	if err != nil {
		t.Fatal(err)
	}
	return c, gw
}

func installGatewayCRDs(c *kubetest.Cluster) error {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return err
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	dyn, err := dynamic.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for _, f := range gatewayCRDs {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		var obj unstructured.Unstructured
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&obj.Object); err != nil {
			return err
		}
		if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		names = append(names, obj.GetName())
	}
	for _, name := range names {
		for {
			obj, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			established := false
			for _, c := range conds {
				m, _ := c.(map[string]any)
				established = established || m["type"] == "Established" && m["status"] == "True"
			}
			if established {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func newGatewayRouter(t *testing.T) (*k8singress.Router, gateway.Interface, string) {
	_, gw := gatewayCluster(t)
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	r, err := k8singress.NewGateway(gw, nil, ns, k8singress.GatewayOptions{Gateway: "previews", GatewayNamespace: "infra", SectionName: "https"})
	if err != nil {
		t.Fatal(err)
	}
	return r, gw, ns
}

func TestGatewayConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			r, _, _ := newGatewayRouter(t)
			return r
		},
		BaseDomain: "preview.example.com",
	})
}

// TestHTTPRouteShape checks what the API server stored for a route and
// its tombstone: ownership labels, the parentRef, the hostname, the
// PathPrefix rule to the edge Service, Glimpse as the field manager, and
// another manager's annotation kept across Glimpse's apply.
func TestHTTPRouteShape(t *testing.T) {
	r, gw, ns := newGatewayRouter(t)
	host := "pr-7.gw.example.com"
	labels := preview.OwnerLabels("team", preview.Target{App: "gw", PR: 7, Commit: "abc1234"})
	stored, err := r.SetRoute(ctx(t), preview.Route{Host: host, AssetPrefix: "gw/pr-7/abc1234", Function: "gw-pr-7",
		FunctionPaths: []string{"/graphql"}, Labels: labels, Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	api := gw.GatewayV1().HTTPRoutes(ns)
	hr, err := api.Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hr.ResourceVersion != stored.Version {
		t.Errorf("Version %q, want the resourceVersion %q", stored.Version, hr.ResourceVersion)
	}
	for k, v := range labels {
		if hr.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, hr.Labels[k], v)
		}
	}
	if len(hr.Spec.ParentRefs) != 1 {
		t.Fatalf("parentRefs = %+v, want one", hr.Spec.ParentRefs)
	}
	p := hr.Spec.ParentRefs[0]
	if p.Name != "previews" || p.Namespace == nil || *p.Namespace != "infra" || p.SectionName == nil || *p.SectionName != "https" ||
		p.Kind == nil || *p.Kind != "Gateway" {
		t.Errorf("parentRef = %+v, want Gateway infra/previews section https", p)
	}
	if len(hr.Spec.Hostnames) != 1 || string(hr.Spec.Hostnames[0]) != host {
		t.Errorf("hostnames = %v, want [%s]", hr.Spec.Hostnames, host)
	}
	if len(hr.Spec.Rules) != 1 || len(hr.Spec.Rules[0].Matches) != 1 || len(hr.Spec.Rules[0].BackendRefs) != 1 {
		t.Fatalf("rules = %+v, want one rule with one match and one backend", hr.Spec.Rules)
	}
	m := hr.Spec.Rules[0].Matches[0].Path
	if m == nil || *m.Type != gatewayv1.PathMatchPathPrefix || *m.Value != "/" {
		t.Errorf("match = %+v, want PathPrefix /", m)
	}
	b := hr.Spec.Rules[0].BackendRefs[0]
	if b.Name != "glimpse-edge" || b.Port == nil || *b.Port != 80 || *b.Kind != "Service" {
		t.Errorf("backendRef = %+v, want Service glimpse-edge:80", b)
	}
	if len(hr.ManagedFields) == 0 || hr.ManagedFields[0].Manager != "glimpse" {
		t.Errorf("managedFields = %+v, want manager glimpse", hr.ManagedFields)
	}

	hr.Annotations["example.com/owner-team"] = "web"
	hr, err = api.Update(ctx(t), hr, metav1.UpdateOptions{FieldManager: "kubectl-annotate"})
	if err != nil {
		t.Fatal(err)
	}
	ts := preview.Route{Host: host, Labels: labels, Generation: 3, Deleted: true, Version: hr.ResourceVersion}
	if _, err := r.SetRoute(ctx(t), ts); err != nil {
		t.Fatal(err)
	}
	hr, err = api.Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hr.Spec.ParentRefs) != 0 || hr.Annotations[k8singress.AnnotationDeleted] != "true" || hr.Annotations[k8singress.AnnotationFunction] != "" {
		t.Errorf("tombstone = parentRefs %+v annotations %v; want it attached to no Gateway", hr.Spec.ParentRefs, hr.Annotations)
	}
	if hr.Annotations["example.com/owner-team"] != "web" {
		t.Errorf("annotations after SetRoute = %v; want another manager's annotation kept", hr.Annotations)
	}
	managers := map[string]metav1.ManagedFieldsOperationType{}
	for _, m := range hr.ManagedFields {
		managers[m.Manager] = m.Operation
	}
	if managers["glimpse"] != metav1.ManagedFieldsOperationApply || managers["kubectl-annotate"] != metav1.ManagedFieldsOperationUpdate {
		t.Errorf("managedFields managers = %v; want glimpse (Apply) and kubectl-annotate (Update)", managers)
	}
}

// TestGatewayOpenURL opens the HTTPRoute router through preview.Routers
// and checks its parameters.
func TestGatewayOpenURL(t *testing.T) {
	c, gw := gatewayCluster(t)
	ns := c.Namespace(t)
	o := &preview.OpenOptions{Getenv: func(k string) string {
		if k == "KUBECONFIG" {
			return c.Kubeconfig
		}
		return ""
	}}
	r, err := preview.Routers.Open(ctx(t), "k8s-gateway://"+ns+"?gateway=gw&service=edge&port=8080", o)
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.gwurl.example.com"
	if _, err := r.SetRoute(ctx(t), preview.Route{Host: host, Labels: preview.OwnerLabels("", preview.Target{App: "url", PR: 1})}); err != nil {
		t.Fatal(err)
	}
	hr, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := hr.Spec.Rules[0].BackendRefs[0]
	if hr.Spec.ParentRefs[0].Name != "gw" || hr.Spec.ParentRefs[0].Namespace != nil || b.Name != "edge" || *b.Port != 8080 {
		t.Errorf("parentRef %+v backend %+v, want gw and edge:8080", hr.Spec.ParentRefs[0], b)
	}
	for _, bad := range []string{
		"k8s-gateway://" + ns,
		"k8s-gateway://" + ns + "?gateway=gw&nope=1",
		"k8s-gateway://" + ns + "?gateway=Bad_Name",
		"k8s-gateway://" + ns + "?gateway=gw&gatewayNamespace=Bad_NS",
		"k8s-gateway://" + ns + "?gateway=gw&port=http",
		"k8s-gateway://" + ns + "/extra?gateway=gw",
	} {
		if _, err := preview.Routers.Open(ctx(t), bad, o); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): %v, want InvalidArgument", bad, err)
		}
	}
}

// TestGatewaySourceServesWrites checks that an edge watching HTTPRoutes
// (routes: k8s-gateway://NS) serves a route written from outside, stops
// on its tombstone, and runs the Router suite through the edge.
func TestGatewaySourceServesWrites(t *testing.T) {
	r, gw, ns := newGatewayRouter(t)
	src, err := k8singress.NewGateway(gw, nil, ns, k8singress.GatewayOptions{Gateway: "previews"})
	if err != nil {
		t.Fatal(err)
	}
	e := sourceEdge(t, src, upstream(t))
	host := "pr-1.gwsrc.example.com"
	stored, err := r.SetRoute(ctx(t), fnRoute(host, 1))
	if err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, true)
	ts := fnRoute(host, 1)
	ts.Deleted, ts.Version = true, stored.Version
	if _, err := r.SetRoute(ctx(t), ts); err != nil {
		t.Fatal(err)
	}
	waitServed(t, e, host, false)
}

func TestGatewaySourceRouterConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			r, _, _ := newGatewayRouter(t)
			return sourceEdge(t, r, upstream(t))
		},
		BaseDomain: "preview.example.com",
	})
}

var _ edge.RouteSource = (*k8singress.Router)(nil)

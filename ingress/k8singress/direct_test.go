package k8singress_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

var testDirect = &k8singress.Direct{
	Functions: "http://gateway.openfaas.svc.cluster.local:8080",
	Origin:    "https://cdn.example.com/assets/sites",
}

func directRoute(host string) preview.Route {
	return preview.Route{Host: host, AssetPrefix: "hello/pr-1/3-abc1234", Function: "hello-pr-1",
		FunctionPaths: []string{"/graphql", "/api/"}, Labels: preview.OwnerLabels("", preview.Target{App: "hello", PR: 1})}
}

func TestDirectConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			c := kubetest.Shared(t, kubetest.Options{})
			r, err := k8singress.New(c.Client(t), c.Namespace(t), &k8singress.Options{Direct: testDirect})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		BaseDomain: "preview.example.com",
	})
}

// checkServices checks the direct backend's ExternalName Services.
// checkServices checks the two ExternalName Services of the direct
// backend, the origin's on originPort.
func checkServices(t *testing.T, c *kubetest.Cluster, ns string, originPort int32) {
	t.Helper()
	for name, want := range map[string]struct {
		host string
		port int32
	}{"glimpse-functions": {"gateway.openfaas.svc.cluster.local", 8080}, "glimpse-origin": {"cdn.example.com", originPort}} {
		svc, err := c.Client(t).CoreV1().Services(ns).Get(ctx(t), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.Type != corev1.ServiceTypeExternalName || svc.Spec.ExternalName != want.host ||
			len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != want.port || svc.Labels[preview.LabelManagedBy] != preview.ManagedByValue {
			t.Errorf("service %s = %+v labels %v; want ExternalName %s:%d, Glimpse's", name, svc.Spec, svc.Labels, want.host, want.port)
		}
	}
}

// TestDirectIngresses checks the two Ingresses of a direct route: what
// ingress-nginx needs to send the static paths to the origin and the
// function paths to the OpenFaaS gateway (there is no ingress-nginx
// controller here, so no request goes through them; the path regex is
// checked with Go's regexp, which agrees with nginx's PCRE on it), that a
// tombstone drops the function Ingress, and that DeleteRoute removes both.
func TestDirectIngresses(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	r, err := k8singress.New(c.Client(t), ns, &k8singress.Options{Direct: testDirect})
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.direct.example.com"
	stored, err := r.SetRoute(ctx(t), directRoute(host))
	if err != nil {
		t.Fatal(err)
	}
	api := c.Client(t).NetworkingV1().Ingresses(ns)
	static, err := api.Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"nginx.ingress.kubernetes.io/use-regex":             "true",
		"nginx.ingress.kubernetes.io/rewrite-target":        "/assets/sites/hello/pr-1/3-abc1234/$1",
		"nginx.ingress.kubernetes.io/upstream-vhost":        "cdn.example.com",
		"nginx.ingress.kubernetes.io/backend-protocol":      "HTTPS",
		"nginx.ingress.kubernetes.io/proxy-ssl-server-name": "on",
		"nginx.ingress.kubernetes.io/proxy-ssl-name":        "cdn.example.com",
		k8singress.AnnotationFunction:                       "hello-pr-1",
	} {
		if static.Annotations[k] != v {
			t.Errorf("static ingress annotation %s = %q, want %q", k, static.Annotations[k], v)
		}
	}
	sp := static.Spec.Rules[0].HTTP.Paths[0]
	if sp.Path != "/(.*)" || *sp.PathType != networkingv1.PathTypeImplementationSpecific || sp.Backend.Service.Name != "glimpse-origin" || sp.Backend.Service.Port.Number != 443 {
		t.Errorf("static path = %+v, want /(.*) to glimpse-origin:443", sp)
	}
	fn, err := api.Get(ctx(t), "functions--"+host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fn.Labels[preview.LabelManagedBy] != preview.ManagedByValue || fn.Labels[preview.LabelApp] != "hello" || fn.Annotations[k8singress.AnnotationAuxOf] != host {
		t.Errorf("function ingress labels %v annotations %v; want Glimpse's labels and aux-of %s", fn.Labels, fn.Annotations, host)
	}
	target := fn.Annotations["nginx.ingress.kubernetes.io/rewrite-target"]
	if fn.Annotations["nginx.ingress.kubernetes.io/use-regex"] != "true" || target != "/function/hello-pr-1/$1" {
		t.Errorf("function ingress annotations = %v", fn.Annotations)
	}
	if len(fn.Spec.Rules) != 1 || fn.Spec.Rules[0].Host != host || len(fn.Spec.Rules[0].HTTP.Paths) != 2 {
		t.Fatalf("function ingress rules = %+v", fn.Spec.Rules)
	}
	// ingress-nginx makes each path a location regex anchored at the
	// start and rewrites with rewrite-target, $1 being the capture.
	rewrite := func(path string) string {
		for _, fp := range fn.Spec.Rules[0].HTTP.Paths {
			if fp.Backend.Service.Name != "glimpse-functions" || fp.Backend.Service.Port.Number != 8080 ||
				*fp.PathType != networkingv1.PathTypeImplementationSpecific {
				t.Errorf("function path = %+v, want a regex to glimpse-functions:8080", fp)
			}
			if m := regexp.MustCompile("^" + fp.Path).FindStringSubmatch(path); m != nil {
				return strings.ReplaceAll(target, "$1", m[1])
			}
		}
		return ""
	}
	for path, want := range map[string]string{
		"/graphql": "/function/hello-pr-1/graphql", "/graphql/x": "/function/hello-pr-1/graphql/x",
		"/api/v1": "/function/hello-pr-1/api/v1", "/graphqlx": "", "/api": "", "/index.html": "",
	} {
		if got := rewrite(path); got != want {
			t.Errorf("%s rewritten to %q, want %q", path, got, want)
		}
	}
	checkServices(t, c, ns, 443)
	if list, err := r.Routes(ctx(t), nil); err != nil || len(list) != 1 || list[0].Host != host {
		t.Errorf("Routes = %+v, %v; want the one route, not its function ingress", list, err)
	}

	ts := directRoute(host)
	ts.Deleted, ts.Version = true, stored.Version
	if stored, err = r.SetRoute(ctx(t), ts); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctx(t), "functions--"+host, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("function ingress of a tombstone: %v; want it deleted", err)
	}
	live := directRoute(host)
	live.Version = stored.Version
	if _, err := r.SetRoute(ctx(t), live); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctx(t), "functions--"+host, metav1.GetOptions{}); err != nil {
		t.Errorf("function ingress after the tombstone was revived: %v", err)
	}
	if err := r.DeleteRoute(ctx(t), host); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{host, "functions--" + host} {
		if _, err := api.Get(ctx(t), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ingress %s after DeleteRoute: %v; want it deleted", name, err)
		}
	}
}

// TestDirectHTTPRoute checks the direct backend's HTTPRoute: a
// PathPrefix rule per function path with a URLRewrite ReplacePrefixMatch
// filter to /function/<name><path>, and the "/" rule rewritten to the
// origin's path and hostname.
func TestDirectHTTPRoute(t *testing.T) {
	c, gw := gatewayCluster(t)
	ns := c.Namespace(t)
	testBackendTLS(t, c, gw)
	plain := &k8singress.Direct{Functions: testDirect.Functions, Origin: "http://cdn.example.com/assets/sites"}
	r, err := k8singress.NewGateway(gw, c.Client(t), ns, k8singress.GatewayOptions{Gateway: "previews", Direct: plain})
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.gwdirect.example.com"
	if _, err := r.SetRoute(ctx(t), directRoute(host)); err != nil {
		t.Fatal(err)
	}
	hr, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type rule struct{ match, replace, hostname, backend string }
	var got []rule
	for _, ru := range hr.Spec.Rules {
		var x rule
		if len(ru.Matches) == 1 && ru.Matches[0].Path != nil && *ru.Matches[0].Path.Type == gatewayv1.PathMatchPathPrefix {
			x.match = *ru.Matches[0].Path.Value
		}
		if len(ru.Filters) == 1 && ru.Filters[0].Type == gatewayv1.HTTPRouteFilterURLRewrite {
			f := ru.Filters[0].URLRewrite
			if f.Path != nil && f.Path.Type == gatewayv1.PrefixMatchHTTPPathModifier {
				x.replace = *f.Path.ReplacePrefixMatch
			}
			if f.Hostname != nil {
				x.hostname = string(*f.Hostname)
			}
		}
		if len(ru.BackendRefs) == 1 {
			x.backend = string(ru.BackendRefs[0].Name) + ":" + strconv.Itoa(int(*ru.BackendRefs[0].Port))
		}
		got = append(got, x)
	}
	want := []rule{
		{"/graphql", "/function/hello-pr-1/graphql", "", "glimpse-functions:8080"},
		{"/api/", "/function/hello-pr-1/api/", "", "glimpse-functions:8080"},
		{"/", "/assets/sites/hello/pr-1/3-abc1234/", "cdn.example.com", "glimpse-origin:80"},
	}
	if len(got) != len(want) {
		t.Fatalf("rules = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	checkServices(t, c, ns, 80)
	if err := r.DeleteRoute(ctx(t), host); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx(t), host, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("httproute after DeleteRoute: %v; want it deleted", err)
	}

	// 16 function paths and the static files are 17 rules, one more than
	// an HTTPRoute holds: one line, before anything is written.
	many := directRoute("pr-2.gwdirect.example.com")
	many.FunctionPaths = nil
	for i := range 16 {
		many.FunctionPaths = append(many.FunctionPaths, "/fn"+strconv.Itoa(i))
	}
	if _, err := r.SetRoute(ctx(t), many); preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "at most 15 function paths") {
		t.Fatalf("SetRoute with 16 function paths: %v, want InvalidArgument on one line naming the limit", err)
	}
	if _, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx(t), many.Host, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("httproute after the refused SetRoute: %v; want none", err)
	}
	many.FunctionPaths = many.FunctionPaths[:15]
	if _, err := r.SetRoute(ctx(t), many); err != nil {
		t.Fatalf("SetRoute with 15 function paths (16 rules): %v", err)
	}
}

// testBackendTLS: with an https origin the HTTPRoute's static rule goes
// to the origin Service's port 443, and a BackendTLSPolicy named as that
// Service, Glimpse's, makes the Gateway speak TLS to it, validating the
// origin's host name against the system's CAs; the plain-HTTP functions
// Service gets none. A policy of that name that is not Glimpse's fails
// the route (FailedPrecondition) and is left as it is.
func testBackendTLS(t *testing.T, c *kubetest.Cluster, gw gateway.Interface) {
	t.Helper()
	ns := c.Namespace(t)
	r, err := k8singress.NewGateway(gw, c.Client(t), ns, k8singress.GatewayOptions{Gateway: "previews", Direct: testDirect})
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-1.gwtls.example.com"
	if _, err := r.SetRoute(ctx(t), directRoute(host)); err != nil {
		t.Fatal(err)
	}
	hr, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx(t), host, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := hr.Spec.Rules[len(hr.Spec.Rules)-1]
	if len(last.BackendRefs) != 1 || last.BackendRefs[0].Name != "glimpse-origin" || *last.BackendRefs[0].Port != 443 {
		t.Errorf("static rule backend = %+v, want glimpse-origin:443", last.BackendRefs)
	}
	checkServices(t, c, ns, 443)
	pol, err := gw.GatewayV1().BackendTLSPolicies(ns).Get(ctx(t), "glimpse-origin", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the origin's BackendTLSPolicy: %v", err)
	}
	v := pol.Spec.Validation
	if len(pol.Spec.TargetRefs) != 1 || pol.Spec.TargetRefs[0].Kind != "Service" || pol.Spec.TargetRefs[0].Group != "" || pol.Spec.TargetRefs[0].Name != "glimpse-origin" ||
		v.Hostname != "cdn.example.com" || v.WellKnownCACertificates == nil || *v.WellKnownCACertificates != gatewayv1.WellKnownCACertificatesSystem ||
		pol.Labels[preview.LabelManagedBy] != preview.ManagedByValue {
		t.Errorf("BackendTLSPolicy = %+v labels %v; want Service glimpse-origin, hostname cdn.example.com, System CAs, Glimpse's", pol.Spec, pol.Labels)
	}
	if _, err := gw.GatewayV1().BackendTLSPolicies(ns).Get(ctx(t), "glimpse-functions", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("BackendTLSPolicy for the plain-HTTP functions Service: %v, want none", err)
	}

	other := c.Namespace(t)
	foreign := pol.DeepCopy()
	foreign.ObjectMeta = metav1.ObjectMeta{Name: "glimpse-origin", Namespace: other}
	if _, err := gw.GatewayV1().BackendTLSPolicies(other).Create(ctx(t), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r2, err := k8singress.NewGateway(gw, c.Client(t), other, k8singress.GatewayOptions{Gateway: "previews", Direct: testDirect})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.SetRoute(ctx(t), directRoute(host)); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("SetRoute beside a foreign BackendTLSPolicy: %v, want FailedPrecondition", err)
	}
	if got, err := gw.GatewayV1().BackendTLSPolicies(other).Get(ctx(t), "glimpse-origin", metav1.GetOptions{}); err != nil || len(got.Labels) != 0 {
		t.Errorf("the foreign BackendTLSPolicy was changed: %+v, %v", got, err)
	}
}

// TestDirectOptions checks the direct backend's parameters.
func TestDirectOptions(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	o := &preview.OpenOptions{Getenv: func(k string) string {
		if k == "KUBECONFIG" {
			return c.Kubeconfig
		}
		return ""
	}}
	good := "k8s-ingress://" + ns + "?backend=direct&functions=http://gateway.openfaas:8080&origin=https://cdn.example.com/sites"
	if _, err := preview.Routers.Open(ctx(t), good, o); err != nil {
		t.Errorf("Open(%s): %v", good, err)
	}
	for _, bad := range []string{
		"k8s-ingress://" + ns + "?backend=direct",
		"k8s-ingress://" + ns + "?backend=direct&functions=http://gateway.openfaas:8080",
		"k8s-ingress://" + ns + "?backend=direct&functions=ftp://gw&origin=https://cdn.example.com",
		"k8s-ingress://" + ns + "?backend=direct&functions=http://gw/x&origin=https://cdn.example.com",
		"k8s-ingress://" + ns + "?backend=direct&functions=http://gw:99999&origin=https://cdn.example.com",
		"k8s-ingress://" + ns + "?backend=other",
		"k8s-ingress://" + ns + "?origin=https://cdn.example.com",
		"k8s-gateway://" + ns + "?gateway=gw&backend=direct&functions=http://gw",
	} {
		if _, err := preview.Routers.Open(ctx(t), bad, o); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): %v, want InvalidArgument", bad, err)
		}
	}
}

// TestDirectForeignAux checks that an Ingress in the way of a direct
// route's function Ingress, not Glimpse's, is never replaced or deleted.
func TestDirectForeignAux(t *testing.T) {
	c := kubetest.Shared(t, kubetest.Options{})
	ns := c.Namespace(t)
	r, err := k8singress.New(c.Client(t), ns, &k8singress.Options{Direct: testDirect})
	if err != nil {
		t.Fatal(err)
	}
	host := "pr-2.direct.example.com"
	api := c.Client(t).NetworkingV1().Ingresses(ns)
	foreign, err := api.Create(ctx(t), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "functions--" + host, Labels: map[string]string{"app": "handmade"}},
		Spec:       networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetRoute(ctx(t), directRoute(host)); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("SetRoute with a foreign function ingress in the way: %v, want FailedPrecondition", err)
	}
	if err := r.DeleteRoute(ctx(t), host); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("DeleteRoute with a foreign function ingress: %v, want FailedPrecondition", err)
	}
	got, err := api.Get(ctx(t), foreign.Name, metav1.GetOptions{})
	if err != nil || got.ResourceVersion != foreign.ResourceVersion {
		t.Errorf("foreign ingress after the refused calls: %v, %v; want it unchanged", got, err)
	}
}

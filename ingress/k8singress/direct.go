package k8singress

import (
	"context"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Direct is the direct backend (URL: backend=direct&functions=URL&origin=URL):
// instead of the Glimpse edge, a preview's function paths go straight to
// the OpenFaaS gateway, rewritten to /function/<name><path>, and every
// other path to the asset origin, rewritten to <origin path>/<asset
// prefix><path>: the object layout of s3assets' layout=paths
// (<P>/sites/<prefix>/<path>) behind a CDN or an S3 website, so Origin
// is that base, https://cdn.example.com/P/sites. Without the edge
// nothing counts requests, wakes a function scaled to zero or serves the
// waiting page: functions must stay up.
//
// Both upstreams are reached through ExternalName Services the Router
// applies in its namespace (an Ingress backend, and an HTTPRoute
// backendRef without a ReferenceGrant, must be a Service of the route's
// namespace): DirectFunctionsService for Functions and
// DirectOriginService for Origin, labelled as Glimpse's and shared by
// every preview of the namespace, so deleting a route leaves them (they
// carry no preview labels and gc does not collect them). Gateway API
// implementations support ExternalName backends only optionally
// ("BackendObjectReference": implementation-specific).
type Direct struct {
	// Functions is the OpenFaaS gateway's URL in the cluster, such as
	// http://gateway.openfaas.svc.cluster.local:8080.
	Functions string
	// Origin is the asset origin's base URL, such as
	// https://cdn.example.com/assets/sites.
	Origin string
}

// Names of the ExternalName Services of the direct backend.
const (
	DirectFunctionsService = "glimpse-functions"
	DirectOriginService    = "glimpse-origin"
)

// ingress-nginx annotations of the direct backend, from
// https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/
// and https://kubernetes.github.io/ingress-nginx/examples/rewrite/:
// "Rewrite" (rewrite-target: the target URI, with the path regex's
// capture groups as $1...; use-regex: the paths are regular expressions,
// for every path of the host across its Ingresses), "Custom NGINX
// upstream vhost" (upstream-vhost: the Host header sent upstream, the
// CDN's name rather than the preview's) and "Backend Protocol"
// (backend-protocol: HTTPS for an https origin), and "Backend Certificate
// Authentication" (proxy-ssl-server-name: "on" and proxy-ssl-name: the
// origin's name, so nginx sends SNI, which CDNs need; it is off by
// default). These are per Ingress,
// and the two upstreams need different rewrite targets, so a route of
// the direct backend is two Ingresses: the route's own (named after the
// host; static paths to the origin; it holds the route) and an auxiliary
// one (named AuxPrefix + host, annotated AnnotationAuxOf; the function
// paths to the gateway), both with Glimpse's labels, written by SetRoute
// and removed by DeleteRoute. A tombstone, or a route without function,
// has no auxiliary Ingress.
const (
	nginxRewriteTarget   = "nginx.ingress.kubernetes.io/rewrite-target"
	nginxUseRegex        = "nginx.ingress.kubernetes.io/use-regex"
	nginxUpstreamVhost   = "nginx.ingress.kubernetes.io/upstream-vhost"
	nginxBackendProtocol = "nginx.ingress.kubernetes.io/backend-protocol"
	nginxProxySSLSNI     = "nginx.ingress.kubernetes.io/proxy-ssl-server-name"
	nginxProxySSLName    = "nginx.ingress.kubernetes.io/proxy-ssl-name"
)

// AuxPrefix starts the name of a direct route's auxiliary Ingress.
const AuxPrefix = "functions--"

// upstream is one parsed URL of Direct.
type upstream struct {
	host string // the ExternalName
	port int
	path string // without a trailing '/'
	tls  bool
}

// direct is Direct parsed, with the shared Services applied once.
type direct struct {
	functions, origin upstream
	client            kubernetes.Interface
	namespace         string
	// afterServices, when set, applies what the router's kind needs
	// besides the Services (k8s-gateway: the BackendTLSPolicy of an https
	// upstream), as part of ensureServices.
	afterServices func(context.Context) error
	mu            sync.Mutex
	applied       bool
}

func parseUpstream(what, raw string) (upstream, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.RawQuery != "" || u.User != nil {
		return upstream{}, preview.Errorf(preview.InvalidArgument, "%s %q: want an http:// or https:// URL with a host, without query or credentials", what, raw)
	}
	if errs := validation.IsDNS1123Subdomain(u.Hostname()); len(errs) > 0 {
		return upstream{}, preview.Errorf(preview.InvalidArgument, "%s %q: host: %s", what, raw, errs[0])
	}
	up := upstream{host: u.Hostname(), path: strings.TrimSuffix(u.Path, "/"), tls: u.Scheme == "https", port: 80}
	if up.tls {
		up.port = 443
	}
	if p := u.Port(); p != "" {
		if up.port, err = strconv.Atoi(p); err != nil || up.port < 1 || up.port > 65535 {
			return upstream{}, preview.Errorf(preview.InvalidArgument, "%s %q: bad port", what, raw)
		}
	}
	return up, nil
}

func newDirect(d *Direct, client kubernetes.Interface, namespace string) (*direct, error) {
	if d == nil {
		return nil, nil
	}
	if d.Functions == "" || d.Origin == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "backend=direct needs functions=URL (the OpenFaaS gateway) and origin=URL (the asset origin)")
	}
	fn, err := parseUpstream("functions", d.Functions)
	if err != nil {
		return nil, err
	}
	if fn.path != "" {
		return nil, preview.Errorf(preview.InvalidArgument, "functions %q: the gateway's URL has no path", d.Functions)
	}
	origin, err := parseUpstream("origin", d.Origin)
	if err != nil {
		return nil, err
	}
	return &direct{functions: fn, origin: origin, client: client, namespace: namespace}, nil
}

// directFromQuery reads backend, functions and origin from a provider URL.
func directFromQuery(q url.Values) (*Direct, error) {
	switch q.Get("backend") {
	case "", "edge":
		if q.Get("functions") != "" || q.Get("origin") != "" {
			return nil, preview.Errorf(preview.InvalidArgument, "functions and origin are for backend=direct")
		}
		return nil, nil
	case "direct":
		return &Direct{Functions: q.Get("functions"), Origin: q.Get("origin")}, nil
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "backend %q: want edge or direct", q.Get("backend"))
	}
}

// ensureServices applies the two ExternalName Services (and then
// afterServices), once per Router (again after a failure). A Service of
// that name that is not Glimpse's is FailedPrecondition and left alone.
func (d *direct) ensureServices(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.applied {
		return nil
	}
	api := d.client.CoreV1().Services(d.namespace)
	for name, up := range d.upstreams() {
		labels, _ := kubeapi.Labels(nil)
		portName := "http"
		if up.tls {
			portName = "https"
		}
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.namespace, Labels: labels},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: up.host,
				Ports: []corev1.ServicePort{{Name: portName, Port: int32(up.port)}}},
		}
		if err := applyShared(ctx, "service "+d.namespace+"/"+name, svc, api.Get, api.Patch); err != nil {
			return err
		}
	}
	if d.afterServices != nil {
		if err := d.afterServices(ctx); err != nil {
			return err
		}
	}
	d.applied = true
	return nil
}

// upstreams are the two upstreams by the name of their Service.
func (d *direct) upstreams() map[string]upstream {
	return map[string]upstream{DirectFunctionsService: d.functions, DirectOriginService: d.origin}
}

// functionPathRegex is the ingress-nginx path regex (an absolute path,
// as the API server requires) matching the function path p with the
// edge's rule (p itself, or p continued by '/'; everything below a p
// ending in '/'), capturing the path after its leading '/' as $1.
func functionPathRegex(p string) string {
	rest := regexp.QuoteMeta(strings.TrimPrefix(p, "/"))
	if strings.HasSuffix(p, "/") {
		return "/(" + rest + ".*)$"
	}
	return "/(" + rest + "(?:/.*)?)$"
}

// ingresses renders rt for the direct backend: the route's Ingress
// (static paths) and the auxiliary one (function paths), as the
// annotations' comment above describes.
func (d *direct) ingresses(rt preview.Route, meta metav1.ObjectMeta, class string) (object, []object) {
	ann := meta.Annotations
	ann[nginxUseRegex] = "true"
	ann[nginxRewriteTarget] = d.origin.path + "/" + rt.AssetPrefix + "/$1"
	ann[nginxUpstreamVhost] = d.origin.host
	if d.origin.tls {
		ann[nginxBackendProtocol] = "HTTPS"
		ann[nginxProxySSLSNI] = "on"
		ann[nginxProxySSLName] = d.origin.host
	}
	regexPath := networkingv1.PathTypeImplementationSpecific
	backend := func(svc string, port int) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: svc, Port: networkingv1.ServiceBackendPort{Number: int32(port)}}}
	}
	rule := networkingv1.IngressRule{Host: rt.Host}
	if !rt.Deleted && rt.AssetPrefix != "" {
		rule.HTTP = &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
			Path: "/(.*)", PathType: &regexPath, Backend: backend(DirectOriginService, d.origin.port)}}}
	}
	primary := &networkingv1.Ingress{TypeMeta: ingressType, ObjectMeta: meta,
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{rule}}}
	if rt.Deleted || rt.Function == "" || len(rt.FunctionPaths) == 0 {
		return primary, nil
	}
	auxMeta := metav1.ObjectMeta{Name: AuxPrefix + rt.Host, Namespace: meta.Namespace, Labels: meta.Labels, Annotations: map[string]string{
		AnnotationAuxOf:    rt.Host,
		nginxUseRegex:      "true",
		nginxRewriteTarget: "/function/" + rt.Function + "/$1",
	}}
	for k, v := range nginxAnnotations {
		auxMeta.Annotations[k] = v
	}
	paths := make([]networkingv1.HTTPIngressPath, len(rt.FunctionPaths))
	for i, p := range rt.FunctionPaths {
		paths[i] = networkingv1.HTTPIngressPath{Path: functionPathRegex(p), PathType: &regexPath,
			Backend: backend(DirectFunctionsService, d.functions.port)}
	}
	aux := &networkingv1.Ingress{TypeMeta: ingressType, ObjectMeta: auxMeta, Spec: networkingv1.IngressSpec{
		IngressClassName: &class,
		Rules: []networkingv1.IngressRule{{Host: rt.Host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}},
	}}
	return primary, []object{aux}
}

// httpRules renders rt's rules for the direct backend in one HTTPRoute:
// per function path a PathPrefix rule whose URLRewrite filter replaces
// the prefix with /function/<name><path> (ReplacePrefixMatch) to the
// functions Service, and a "/" rule rewritten to <origin path>/<asset
// prefix>/ with the origin's hostname to the origin Service. Gateway API
// picks the longest matching prefix, so the function paths win.
func (d *direct) httpRules(rt preview.Route) []gatewayv1.HTTPRouteRule {
	rewrite := func(prefix, host string) gatewayv1.HTTPRouteFilter {
		f := &gatewayv1.HTTPURLRewriteFilter{Path: &gatewayv1.HTTPPathModifier{
			Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr(prefix)}}
		if host != "" {
			f.Hostname = ptr(gatewayv1.PreciseHostname(host))
		}
		return gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: f}
	}
	var rules []gatewayv1.HTTPRouteRule
	if rt.Function != "" {
		for _, p := range rt.FunctionPaths {
			rules = append(rules, gatewayv1.HTTPRouteRule{
				Matches:     []gatewayv1.HTTPRouteMatch{pathPrefix(p)},
				Filters:     []gatewayv1.HTTPRouteFilter{rewrite("/function/"+rt.Function+p, "")},
				BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef(DirectFunctionsService, d.functions.port)},
			})
		}
	}
	if rt.AssetPrefix != "" {
		rules = append(rules, gatewayv1.HTTPRouteRule{
			Matches:     []gatewayv1.HTTPRouteMatch{pathPrefix("/")},
			Filters:     []gatewayv1.HTTPRouteFilter{rewrite(d.origin.path+"/"+rt.AssetPrefix+"/", d.origin.host)},
			BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef(DirectOriginService, d.origin.port)},
		})
	}
	return rules
}

package k8singress

import (
	"context"
	"net/url"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// GatewayScheme is the URL scheme of the HTTPRoute Router in
// preview.Routers:
//
//	k8s-gateway://NAMESPACE?gateway=NAME[&gatewayNamespace=NS][&sectionName=LISTENER][&service=glimpse-edge][&port=80]
const GatewayScheme = "k8s-gateway"

func init() {
	preview.Routers.Register(GatewayScheme, openGatewayURL)
}

// GatewayOptions configure a Router from NewGateway.
type GatewayOptions struct {
	// Gateway names the Gateway every HTTPRoute attaches to (its
	// parentRefs); required.
	Gateway string
	// GatewayNamespace is the Gateway's namespace; "" means the routes'
	// own. A Gateway in another namespace must allow routes from it
	// (its listeners' allowedRoutes.namespaces).
	GatewayNamespace string
	// SectionName, when set, attaches to that listener of the Gateway
	// only.
	SectionName string
	// Service and Port name the backend Service in the namespace, the
	// Glimpse daemon's edge; "" and 0 mean DefaultService and DefaultPort.
	Service string
	Port    int
	// Direct, when set, is the direct backend instead of the edge (see
	// Direct): one HTTPRoute per preview with URLRewrite filters.
	Direct *Direct
}

// NewGateway returns a Router writing Gateway API HTTPRoutes
// (gateway.networking.k8s.io/v1) to namespace through client; the
// package comment's ownership, compare-and-swap and server-side apply
// rules hold for them as for Ingresses. Each host has one HTTPRoute,
// named after the host, attached to the Gateway (spec.parentRefs), for
// spec.hostnames [host], with one rule: path prefix "/" to the edge
// Service (backendRefs). A tombstone keeps the object with no parentRefs:
// it is attached to no Gateway, which then answers the host with 404.
//
// Gateway API v1 spec, https://gateway-api.sigs.k8s.io/reference/spec/:
// "HTTPRouteSpec" (parentRefs, hostnames, rules), "HTTPPathMatch"
// (PathPrefix matches "a URL path prefix split by /", element by
// element, the Ingress Prefix rule and the edge's), "HTTPBackendRef"
// (a Service name and port in the route's namespace), and for the
// direct backend "HTTPURLRewriteFilter" with "HTTPPathModifier"
// ReplacePrefixMatch (Core support for path rewrites when the match is a
// PathPrefix); for an https upstream of the direct backend,
// "BackendTLSPolicy" (validation.hostname, wellKnownCACertificates
// System; the backendtlspolicies CRD, and get and patch on them).
//
// The namespace needs the HTTPRoute CRD (config/crd/standard of
// sigs.k8s.io/gateway-api); the Router needs get, list, create, patch and
// delete on httproutes.gateway.networking.k8s.io in it, and watch for
// Watch.
//
// core is used only by the direct backend, for its Services; it may be
// nil otherwise.
func NewGateway(client gateway.Interface, core kubernetes.Interface, namespace string, opts GatewayOptions) (*Router, error) {
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	if opts.Gateway == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "gateway: required (k8s-gateway://NAMESPACE?gateway=NAME)")
	}
	if errs := validation.IsDNS1123Subdomain(opts.Gateway); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "gateway %q: %s", opts.Gateway, errs[0])
	}
	if opts.GatewayNamespace != "" {
		if err := checkNamespace(opts.GatewayNamespace); err != nil {
			return nil, err
		}
	}
	if opts.SectionName != "" {
		if errs := validation.IsDNS1123Subdomain(opts.SectionName); len(errs) > 0 {
			return nil, preview.Errorf(preview.InvalidArgument, "sectionName %q: %s", opts.SectionName, errs[0])
		}
	}
	b := Options{Service: opts.Service, Port: opts.Port}
	if err := b.checkBackend(); err != nil {
		return nil, err
	}
	opts.Service, opts.Port = b.Service, b.Port
	if opts.Direct != nil && core == nil {
		return nil, preview.Errorf(preview.InvalidArgument, "backend=direct needs a Kubernetes client for its Services")
	}
	d, err := newDirect(opts.Direct, core, namespace)
	if err != nil {
		return nil, err
	}
	x := &httpRoutes{typedCalls: typedCalls[*gatewayv1.HTTPRoute, *gatewayv1.HTTPRouteList]{client.GatewayV1().HTTPRoutes(namespace)}, client: client, namespace: namespace, opts: opts, direct: d}
	if d != nil {
		d.afterServices = x.ensureBackendTLS
	}
	return &Router{objs: x, namespace: namespace, direct: d}, nil
}

// ensureBackendTLS applies, for each direct upstream reached over https,
// a BackendTLSPolicy named as its Service: a Gateway sends plain HTTP to
// a backend unless such a policy says otherwise. It validates the
// upstream's certificate for its host name against the system's CA
// certificates (WellKnownCACertificates: System; Gateway API's
// BackendTLSPolicy, gateway.networking.k8s.io/v1). It carries Glimpse's
// labels like the Services; one of that name that is not Glimpse's is
// FailedPrecondition and left alone. It needs get and patch on
// backendtlspolicies.
func (x *httpRoutes) ensureBackendTLS(ctx context.Context) error {
	api := x.client.GatewayV1().BackendTLSPolicies(x.namespace)
	for name, up := range x.direct.upstreams() {
		if !up.tls {
			continue
		}
		labels, _ := kubeapi.Labels(nil)
		pol := &gatewayv1.BackendTLSPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "BackendTLSPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: x.namespace, Labels: labels},
			Spec: gatewayv1.BackendTLSPolicySpec{
				TargetRefs: []gatewayv1.LocalPolicyTargetReferenceWithSectionName{{
					LocalPolicyTargetReference: gatewayv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: gatewayv1.ObjectName(name)},
				}},
				Validation: gatewayv1.BackendTLSPolicyValidation{
					Hostname:                gatewayv1.PreciseHostname(up.host),
					WellKnownCACertificates: ptr(gatewayv1.WellKnownCACertificatesSystem),
				},
			},
		}
		if err := applyShared(ctx, "backendtlspolicy "+x.namespace+"/"+name, pol, api.Get, api.Patch); err != nil {
			return err
		}
	}
	return nil
}

func openGatewayURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
	q, p, err := parseURL(u, o, "gateway", "gatewayNamespace", "sectionName")
	if err != nil {
		return nil, err
	}
	client, err := gateway.NewForConfig(p.cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	core, err := kubernetes.NewForConfig(p.cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return NewGateway(client, core, u.Host, GatewayOptions{Gateway: q.Get("gateway"), GatewayNamespace: q.Get("gatewayNamespace"),
		SectionName: q.Get("sectionName"), Service: q.Get("service"), Port: p.port, Direct: p.direct})
}

// httpRoutes keeps routes as gateway.networking.k8s.io/v1 HTTPRoutes.
type httpRoutes struct {
	typedCalls[*gatewayv1.HTTPRoute, *gatewayv1.HTTPRouteList]
	client    gateway.Interface
	namespace string
	opts      GatewayOptions
	direct    *direct
}

var httpRouteType = metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"}

func (x *httpRoutes) kind() string { return "httproute" }

func (x *httpRoutes) informer(sel string) (cache.SharedIndexInformer, func(<-chan struct{}), func()) {
	f := gatewayinformers.NewSharedInformerFactoryWithOptions(x.client, 0, gatewayinformers.WithNamespace(x.namespace),
		gatewayinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	return f.Gateway().V1().HTTPRoutes().Informer(), f.Start, f.Shutdown
}

func (x *httpRoutes) auxNames(string) []string { return nil }

// maxHTTPRouteRules is Gateway API's limit on an HTTPRoute's rules
// (HTTPRouteSpec.Rules, MaxItems=16).
const maxHTTPRouteRules = 16

// render returns the HTTPRoute of rt, as NewGateway describes it; a
// direct route needing more rules than an HTTPRoute may hold is
// InvalidArgument, before anything is written.
func (x *httpRoutes) render(rt preview.Route, meta metav1.ObjectMeta) (object, []object, error) {
	spec := gatewayv1.HTTPRouteSpec{Hostnames: []gatewayv1.Hostname{gatewayv1.Hostname(rt.Host)}}
	if !rt.Deleted {
		spec.ParentRefs = []gatewayv1.ParentReference{x.parentRef()}
		spec.Rules = []gatewayv1.HTTPRouteRule{{
			Matches:     []gatewayv1.HTTPRouteMatch{pathPrefix("/")},
			BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef(x.opts.Service, x.opts.Port)},
		}}
		if x.direct != nil {
			spec.Rules = x.direct.httpRules(rt)
			if len(spec.Rules) > maxHTTPRouteRules {
				return nil, nil, preview.Errorf(preview.InvalidArgument,
					"route %s: the direct backend writes one HTTPRoute rule per function path and one for the static files, %d here; Gateway API allows %d (at most %d function paths with static files)",
					rt.Host, len(spec.Rules), maxHTTPRouteRules, maxHTTPRouteRules-1)
			}
		}
	}
	return &gatewayv1.HTTPRoute{TypeMeta: httpRouteType, ObjectMeta: meta, Spec: spec}, nil, nil
}

func (x *httpRoutes) parentRef() gatewayv1.ParentReference {
	p := gatewayv1.ParentReference{
		Group: ptr(gatewayv1.Group(gatewayv1.GroupName)),
		Kind:  ptr(gatewayv1.Kind("Gateway")),
		Name:  gatewayv1.ObjectName(x.opts.Gateway),
	}
	if x.opts.GatewayNamespace != "" {
		p.Namespace = ptr(gatewayv1.Namespace(x.opts.GatewayNamespace))
	}
	if x.opts.SectionName != "" {
		p.SectionName = ptr(gatewayv1.SectionName(x.opts.SectionName))
	}
	return p
}

func pathPrefix(p string) gatewayv1.HTTPRouteMatch {
	return gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(p)}}
}

// serviceRef is a backendRef to a Service of the routes' namespace.
func serviceRef(name string, port int) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptr(gatewayv1.Group("")),
		Kind:  ptr(gatewayv1.Kind("Service")),
		Name:  gatewayv1.ObjectName(name),
		Port:  ptr(gatewayv1.PortNumber(port)),
	}}}
}

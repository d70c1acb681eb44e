// Package k8singress is a preview.Router that stores each preview's route
// as a networking.k8s.io/v1 Ingress in one namespace, for teams whose
// previews are served by a cluster's ingress controller (ingress-nginx by
// default).
//
// Each host has one Ingress, named after the host (a host is a valid
// object name), with one rule for the host whose every path ("/", Prefix)
// goes to the Glimpse daemon's edge Service (glimpse-edge:80 by default):
// the edge counts requests, wakes functions scaled to zero, forwards the
// function paths and serves the static files, so the route itself (asset
// prefix, function, function paths) and its ordering metadata
// (generation, claimed commit, served generation, tombstone) ride in
// annotations under glimpse.dev/ (the Annotation constants) for the edge
// to read. A tombstone keeps the host's rule without paths, which
// ingress-nginx answers with 404.
//
// Ownership: every Ingress carries Glimpse's ownership labels (the
// route's labels, plus managed-by and labels-version when missing). An
// Ingress without glimpse.dev/managed-by=glimpse is never changed or
// deleted: Route reports it NotFound, SetRoute and DeleteRoute refuse with
// FailedPrecondition.
//
// Compare-and-swap: a route's Version is the Ingress's resourceVersion
// (etcd's revision, never repeated). SetRoute with an empty Version is a
// create (AlreadyExists becomes Aborted); with a Version it is an update
// carrying that resourceVersion, which the API server refuses with a
// Conflict (Aborted) when another write came first, so concurrent
// SetRoutes of one version have exactly one winner without any lock here.
// Writes are recorded under the field manager "glimpse".
//
// URL (registered as k8s-ingress in preview.Routers):
//
//	k8s-ingress://NAMESPACE[?class=nginx][&service=glimpse-edge][&port=80]
//
// Route source: a Router is also an edge.RouteSource (Watch, watch.go),
// so an edge in the cluster (edge.Options.Source) serves the routes these
// Ingresses hold, whichever replica or CLI wrote them, through a client-go
// informer on the Glimpse-labelled Ingresses of the namespace.
//
// Credentials come from the kubeconfig named by KUBECONFIG, else the
// in-cluster service account, else ~/.kube/config (internal/kubeapi). It
// needs get, list, create, update and delete on ingresses in NAMESPACE,
// and watch for Watch.
// Unknown query parameters are errors.
package k8singress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.Routers.
const Scheme = "k8s-ingress"

// Defaults of Options.
const (
	DefaultClass   = "nginx"
	DefaultService = "glimpse-edge"
	DefaultPort    = 80
)

// Annotations holding the route on its Ingress.
const (
	AnnotationAssetPrefix   = preview.LabelPrefix + "route-asset-prefix"
	AnnotationFunction      = preview.LabelPrefix + "route-function"
	AnnotationFunctionPaths = preview.LabelPrefix + "route-function-paths" // a JSON array
	AnnotationGeneration    = preview.LabelPrefix + "route-generation"
	AnnotationClaimedCommit = preview.LabelPrefix + "route-claimed-commit"
	AnnotationServed        = preview.LabelPrefix + "route-served"
	AnnotationDeleted       = preview.LabelPrefix + "route-deleted" // "true" on a tombstone
)

// ingress-nginx annotations the Ingress carries, from
// https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/
// ("Custom timeouts", "Proxy buffering"): the edge holds a request while
// it wakes a function scaled to zero, so nginx must wait longer than its
// default 60 s for the answer, and streams it unbuffered. Besides these
// the Ingress relies only on the API's own fields (spec.ingressClassName,
// rules[].host, Prefix paths) and on ingress-nginx passing the request's
// Host header upstream, which it does by default; other controllers
// ignore the annotations.
var nginxAnnotations = map[string]string{
	"nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
	"nginx.ingress.kubernetes.io/proxy-send-timeout": "120",
	"nginx.ingress.kubernetes.io/proxy-buffering":    "off",
}

func init() {
	preview.Routers.Register(Scheme, openURL)
}

// Options configure a Router; the zero value takes the defaults.
type Options struct {
	// Class is the Ingress's spec.ingressClassName; "" means DefaultClass.
	Class string
	// Service and Port name the backend Service in the namespace, the
	// Glimpse daemon's edge; "" and 0 mean DefaultService and DefaultPort.
	Service string
	Port    int
}

// Router stores routes as Ingresses in one namespace. It is safe for
// concurrent use; it keeps no state besides its client.
type Router struct {
	client    kubernetes.Interface
	namespace string
	opts      Options
}

// New returns a Router writing Ingresses to namespace through client.
// opts may be nil.
func New(client kubernetes.Interface, namespace string, opts *Options) (*Router, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Class == "" {
		o.Class = DefaultClass
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "namespace %q: %s", namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(o.Class); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "ingress class %q: %s", o.Class, errs[0])
	}
	if errs := validation.IsDNS1035Label(o.Service); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "service %q: %s", o.Service, errs[0])
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, preview.Errorf(preview.InvalidArgument, "port %d: must be 1 to 65535", o.Port)
	}
	return &Router{client: client, namespace: namespace, opts: o}, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
	q, err := preview.QueryParams(u, "class", "service", "port")
	if err != nil {
		return nil, err
	}
	if u.Path != "" && u.Path != "/" {
		return nil, preview.Errorf(preview.InvalidArgument, "the namespace is the URL's host (k8s-ingress://NAMESPACE), not a path")
	}
	opts := &Options{Class: q.Get("class"), Service: q.Get("service")}
	if p := q.Get("port"); p != "" {
		if opts.Port, err = strconv.Atoi(p); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "port %q: not a number", p)
		}
	}
	cfg, err := kubeapi.Config(o)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return New(client, u.Host, opts)
}

func (r *Router) what(host string) string {
	return fmt.Sprintf("ingress %s/%s", r.namespace, host)
}

// Route returns the route stored for host, tombstones included; NotFound
// when there is none or the Ingress of that name is not Glimpse's.
func (r *Router) Route(ctx context.Context, host string) (preview.Route, error) {
	if err := preview.ValidateHost(host); err != nil {
		return preview.Route{}, err
	}
	ing, err := r.client.NetworkingV1().Ingresses(r.namespace).Get(ctx, host, metav1.GetOptions{})
	if err != nil {
		return preview.Route{}, kubeapi.Classify(ctx, err, r.what(host))
	}
	if !kubeapi.Owned(ing.Labels) {
		return preview.Route{}, preview.Errorf(preview.NotFound, "%s is not Glimpse's: no route", r.what(host))
	}
	return fromIngress(ing)
}

// SetRoute stores rt if the stored route's Version is rt.Version (empty:
// none stored), as described in the package comment, and returns it as
// stored. It is one create, or one read and one conditional update: a
// failure leaves the stored route as it was. An Ingress of that name that
// is not Glimpse's is FailedPrecondition.
func (r *Router) SetRoute(ctx context.Context, rt preview.Route) (preview.Route, error) {
	if err := rt.Validate(); err != nil {
		return preview.Route{}, err
	}
	ing, err := r.toIngress(rt)
	if err != nil {
		return preview.Route{}, err
	}
	api := r.client.NetworkingV1().Ingresses(r.namespace)
	if rt.Version == "" {
		created, err := api.Create(ctx, ing, metav1.CreateOptions{FieldManager: kubeapi.FieldManager})
		if err != nil {
			err = kubeapi.Classify(ctx, err, r.what(rt.Host))
			if preview.CodeOf(err) == preview.AlreadyExists {
				return preview.Route{}, preview.WithCode(preview.Aborted, fmt.Errorf("%w: a route is already stored (re-read it)", err))
			}
			return preview.Route{}, err
		}
		return fromIngress(created)
	}
	cur, err := api.Get(ctx, rt.Host, metav1.GetOptions{})
	if err != nil {
		err = kubeapi.Classify(ctx, err, r.what(rt.Host))
		if preview.IsNotFound(err) {
			return preview.Route{}, preview.WithCode(preview.Aborted, fmt.Errorf("%w: no route stored at version %s", err, rt.Version))
		}
		return preview.Route{}, err
	}
	if !kubeapi.Owned(cur.Labels) {
		return preview.Route{}, kubeapi.NotOwned(r.what(rt.Host))
	}
	if cur.ResourceVersion != rt.Version {
		return preview.Route{}, preview.Errorf(preview.Aborted, "%s: stored version %s, not %s (re-read it)", r.what(rt.Host), cur.ResourceVersion, rt.Version)
	}
	// The update carries the version the caller read: the API server
	// refuses it with a Conflict when anything wrote in between.
	ing.ResourceVersion = rt.Version
	ing.UID = cur.UID
	// Annotations others added (cert-manager's, a controller's) stay;
	// Glimpse's own are replaced.
	for k, v := range cur.Annotations {
		if _, nginx := nginxAnnotations[k]; !nginx && !strings.HasPrefix(k, preview.LabelPrefix) {
			ing.Annotations[k] = v
		}
	}
	updated, err := api.Update(ctx, ing, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
	if err != nil {
		return preview.Route{}, kubeapi.Classify(ctx, err, r.what(rt.Host))
	}
	return fromIngress(updated)
}

// Routes lists the routes whose labels match selector, tombstones
// included, in one list call; only Glimpse's Ingresses are listed. An
// Ingress that carries Glimpse's labels but whose annotations do not
// parse fails the call (Internal) rather than being skipped silently.
func (r *Router) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	sel, err := kubeapi.Selector(selector)
	if err != nil {
		return nil, err
	}
	list, err := r.client.NetworkingV1().Ingresses(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, fmt.Sprintf("ingresses in %s", r.namespace))
	}
	out := make([]preview.Route, 0, len(list.Items))
	for i := range list.Items {
		rt, err := fromIngress(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, rt)
	}
	return out, nil
}

// DeleteRoute deletes host's Ingress, a tombstone included; a missing one
// is success. The delete is conditional on the UID and resourceVersion
// just read, so it never removes an Ingress that was replaced by one
// Glimpse does not own in between (that answers Aborted); an Ingress that
// is not Glimpse's is FailedPrecondition.
func (r *Router) DeleteRoute(ctx context.Context, host string) error {
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	api := r.client.NetworkingV1().Ingresses(r.namespace)
	cur, err := api.Get(ctx, host, metav1.GetOptions{})
	if err != nil {
		return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, r.what(host)))
	}
	if !kubeapi.Owned(cur.Labels) {
		return kubeapi.NotOwned(r.what(host))
	}
	err = api.Delete(ctx, host, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}})
	return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, r.what(host)))
}

// toIngress renders rt (validated) as its Ingress.
func (r *Router) toIngress(rt preview.Route) (*networkingv1.Ingress, error) {
	labels, err := kubeapi.Labels(rt.Labels)
	if err != nil {
		return nil, preview.WithCode(preview.InvalidArgument, fmt.Errorf("route %s: %w", rt.Host, err))
	}
	ann := map[string]string{}
	for k, v := range nginxAnnotations {
		ann[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			ann[k] = v
		}
	}
	set(AnnotationAssetPrefix, rt.AssetPrefix)
	set(AnnotationFunction, rt.Function)
	if len(rt.FunctionPaths) > 0 {
		b, err := json.Marshal(rt.FunctionPaths)
		if err != nil {
			return nil, preview.WithCode(preview.Internal, err)
		}
		ann[AnnotationFunctionPaths] = string(b)
	}
	if rt.Generation != 0 {
		ann[AnnotationGeneration] = strconv.FormatInt(rt.Generation, 10)
	}
	set(AnnotationClaimedCommit, rt.ClaimedCommit)
	if rt.Served != 0 {
		ann[AnnotationServed] = strconv.FormatInt(rt.Served, 10)
	}
	rule := networkingv1.IngressRule{Host: rt.Host}
	if rt.Deleted {
		ann[AnnotationDeleted] = "true"
	} else {
		prefix := networkingv1.PathTypePrefix
		rule.HTTP = &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
			Path:     "/",
			PathType: &prefix,
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: r.opts.Service,
				Port: networkingv1.ServiceBackendPort{Number: int32(r.opts.Port)},
			}},
		}}}
	}
	class := r.opts.Class
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: rt.Host, Namespace: r.namespace, Labels: labels, Annotations: ann},
		Spec:       networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{rule}},
	}, nil
}

// fromIngress reads a route back from a Glimpse Ingress.
func fromIngress(ing *networkingv1.Ingress) (preview.Route, error) {
	a := ing.Annotations
	rt := preview.Route{
		Host:          ing.Name,
		AssetPrefix:   a[AnnotationAssetPrefix],
		Function:      a[AnnotationFunction],
		Labels:        preview.Labels(ing.Labels).Clone(),
		ClaimedCommit: a[AnnotationClaimedCommit],
		Deleted:       a[AnnotationDeleted] == "true",
		Version:       ing.ResourceVersion,
	}
	bad := func(key string, err error) (preview.Route, error) {
		return preview.Route{}, preview.Errorf(preview.Internal, "ingress %s/%s: annotation %s: %v", ing.Namespace, ing.Name, key, err)
	}
	if s := a[AnnotationFunctionPaths]; s != "" {
		if err := json.Unmarshal([]byte(s), &rt.FunctionPaths); err != nil {
			return bad(AnnotationFunctionPaths, err)
		}
	}
	var err error
	if s := a[AnnotationGeneration]; s != "" {
		if rt.Generation, err = strconv.ParseInt(s, 10, 64); err != nil {
			return bad(AnnotationGeneration, err)
		}
	}
	if s := a[AnnotationServed]; s != "" {
		if rt.Served, err = strconv.ParseInt(s, 10, 64); err != nil {
			return bad(AnnotationServed, err)
		}
	}
	return rt, nil
}

// Package k8singress is a preview.Router that stores each preview's route
// as a networking.k8s.io/v1 Ingress (New, k8s-ingress://) or a Gateway
// API HTTPRoute (NewGateway, k8s-gateway://, gateway.go) in one
// namespace, for teams whose previews are served by a cluster's ingress
// controller (ingress-nginx by default) or Gateway implementation. The
// two kinds share everything here but the object's shape (objects.go).
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
// ingress-nginx answers with 404. The direct backend (Direct,
// backend=direct) skips the edge: function paths to the OpenFaaS gateway,
// static paths to the asset origin, with a second Ingress per preview.
//
// Ownership: every object carries Glimpse's ownership labels (the
// route's labels, plus managed-by and labels-version when missing). An
// object without glimpse.dev/managed-by=glimpse is never changed or
// deleted: Route reports it NotFound, SetRoute and DeleteRoute refuse with
// FailedPrecondition.
//
// Compare-and-swap: a route's Version is the object's resourceVersion
// (etcd's revision, never repeated). SetRoute with an empty Version is a
// create (AlreadyExists becomes Aborted); with a Version it is a
// server-side apply carrying that resourceVersion, which the API server
// refuses with a Conflict (Aborted) when another write came first, so
// concurrent SetRoutes of one version have exactly one winner without any
// lock here.
//
// Server-side apply: writes are recorded under the field manager
// "glimpse" (kubeapi.FieldManager) as one Apply entry of
// metadata.managedFields, forcing ownership of the fields Glimpse sets;
// fields another manager set (cert-manager's annotations, `kubectl
// annotate`) are not in Glimpse's apply and stay, and fields Glimpse set
// before and no longer sets are removed. The create is a plain create
// (an apply cannot be create-only), whose Update entry the next SetRoute
// turns into the Apply entry first (one conditional patch, once per
// object; objects written by a release before server-side apply are
// adopted the same way).
//
// URL (registered as k8s-ingress in preview.Routers):
//
//	k8s-ingress://NAMESPACE[?class=nginx][&service=glimpse-edge][&port=80]
//	    [&backend=direct&functions=http://gateway.openfaas.svc.cluster.local:8080&origin=https://cdn.example.com/P/sites]
//
// Route source: a Router is also an edge.RouteSource (Watch, watch.go),
// so an edge in the cluster (edge.Options.Source) serves the routes these
// Ingresses or HTTPRoutes hold, whichever replica or CLI wrote them,
// through a client-go informer on the Glimpse-labelled objects of the
// namespace.
//
// Credentials come from the kubeconfig named by KUBECONFIG, else the
// in-cluster service account, else ~/.kube/config (internal/kubeapi). It
// needs get, list, create, patch and delete on ingresses in NAMESPACE,
// and watch for Watch; the direct backend also get and patch on services.
// Unknown query parameters are errors.
package k8singress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	AnnotationFailure       = preview.LabelPrefix + "route-failure" // why the claiming Up failed
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
	// Direct, when set, is the direct backend instead of the edge (see
	// Direct).
	Direct *Direct
}

// Router stores routes as Ingresses (New) or HTTPRoutes (NewGateway) in
// one namespace. It is safe for concurrent use; it keeps no state besides
// its client (and, with the direct backend, whether its Services were
// applied).
type Router struct {
	objs      objects
	namespace string
	direct    *direct // nil: the edge backend
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
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	if errs := validation.IsDNS1123Subdomain(o.Class); len(errs) > 0 {
		return nil, preview.Errorf(preview.InvalidArgument, "ingress class %q: %s", o.Class, errs[0])
	}
	if err := o.checkBackend(); err != nil {
		return nil, err
	}
	d, err := newDirect(o.Direct, client, namespace)
	if err != nil {
		return nil, err
	}
	return &Router{objs: &ingresses{typedCalls: typedCalls[*networkingv1.Ingress, *networkingv1.IngressList]{client.NetworkingV1().Ingresses(namespace)}, client: client, namespace: namespace, opts: o, direct: d}, namespace: namespace, direct: d}, nil
}

func checkNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return preview.Errorf(preview.InvalidArgument, "namespace %q: %s", ns, errs[0])
	}
	return nil
}

// checkBackend fills in and checks the edge Service's name and port.
func (o *Options) checkBackend() error {
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if errs := validation.IsDNS1035Label(o.Service); len(errs) > 0 {
		return preview.Errorf(preview.InvalidArgument, "service %q: %s", o.Service, errs[0])
	}
	if o.Port < 1 || o.Port > 65535 {
		return preview.Errorf(preview.InvalidArgument, "port %d: must be 1 to 65535", o.Port)
	}
	return nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
	q, p, err := parseURL(u, o, "class")
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(p.cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return New(client, u.Host, &Options{Class: q.Get("class"), Service: q.Get("service"), Port: p.port, Direct: p.direct})
}

// urlParts is what the URLs of both schemes share: service, port, the
// direct backend's parameters, the namespace as the host, and the
// client configuration (kubeapi.Config; never from the URL).
type urlParts struct {
	port   int
	direct *Direct
	cfg    *rest.Config
}

// parseURL checks u (its query may hold the shared keys and extra) and
// returns its query and shared parts.
func parseURL(u *url.URL, o *preview.OpenOptions, extra ...string) (url.Values, urlParts, error) {
	var p urlParts
	q, err := preview.QueryParams(u, append([]string{"service", "port", "backend", "functions", "origin"}, extra...)...)
	if err != nil {
		return nil, p, err
	}
	if p.direct, err = directFromQuery(q); err != nil {
		return nil, p, err
	}
	if u.Path != "" && u.Path != "/" {
		return nil, p, preview.Errorf(preview.InvalidArgument, "the namespace is the URL's host (%s://NAMESPACE), not a path", u.Scheme)
	}
	if s := q.Get("port"); s != "" {
		if p.port, err = strconv.Atoi(s); err != nil {
			return nil, p, preview.Errorf(preview.InvalidArgument, "port %q: not a number", s)
		}
	}
	p.cfg, err = kubeapi.Config(o)
	return q, p, err
}

func (r *Router) what(name string) string {
	return fmt.Sprintf("%s %s/%s", r.objs.kind(), r.namespace, name)
}

// Route returns the route stored for host, tombstones included; NotFound
// when there is none or the object of that name is not Glimpse's.
func (r *Router) Route(ctx context.Context, host string) (preview.Route, error) {
	if err := preview.ValidateHost(host); err != nil {
		return preview.Route{}, err
	}
	obj, err := r.objs.get(ctx, host)
	if err != nil {
		return preview.Route{}, kubeapi.Classify(ctx, err, r.what(host))
	}
	if !kubeapi.Owned(obj.GetLabels()) {
		return preview.Route{}, preview.Errorf(preview.NotFound, "%s is not Glimpse's: no route", r.what(host))
	}
	return r.fromObject(obj)
}

// SetRoute stores rt if the stored route's Version is rt.Version (empty:
// none stored), as described in the package comment, and returns it as
// stored. With an empty Version it is one create; otherwise one read
// (ownership and version check) and one server-side apply carrying the
// version, plus, the first time Glimpse applies to an object it created,
// one patch adopting its fields for the apply. The object holding the
// route is written first and alone decides the outcome: a failure before
// it leaves the stored route as it was. The direct backend's auxiliary
// objects (derived from the route, see Options.Backend) are applied or
// deleted after it: when that fails, the route is stored but SetRoute
// returns the error (Unavailable or the like), and the next SetRoute of
// the host, after a re-read, writes them again. An object of that name
// that is not Glimpse's is FailedPrecondition.
func (r *Router) SetRoute(ctx context.Context, rt preview.Route) (preview.Route, error) {
	if err := rt.Validate(); err != nil {
		return preview.Route{}, err
	}
	primary, aux, err := r.render(rt)
	if err != nil {
		return preview.Route{}, err
	}
	if r.direct != nil && !rt.Deleted {
		if err := r.direct.ensureServices(ctx); err != nil {
			return preview.Route{}, err
		}
	}
	var stored object
	if rt.Version == "" {
		stored, err = r.objs.create(ctx, primary)
		if err != nil {
			err = kubeapi.Classify(ctx, err, r.what(rt.Host))
			if preview.CodeOf(err) == preview.AlreadyExists {
				return preview.Route{}, preview.WithCode(preview.Aborted, fmt.Errorf("%w: a route is already stored (re-read it)", err))
			}
			return preview.Route{}, err
		}
	} else if stored, err = r.update(ctx, rt, primary); err != nil {
		return preview.Route{}, err
	}
	out, err := r.fromObject(stored)
	if err != nil {
		return preview.Route{}, err
	}
	if err := r.syncAuxFollowing(ctx, rt.Host, aux, stored.GetResourceVersion()); err != nil {
		return preview.Route{}, err
	}
	return out, nil
}

// render returns the objects holding rt: the primary one (named rt.Host)
// and its auxiliary ones (objects.render).
func (r *Router) render(rt preview.Route) (object, []object, error) {
	labels, err := kubeapi.Labels(rt.Labels)
	if err != nil {
		return nil, nil, preview.WithCode(preview.InvalidArgument, fmt.Errorf("route %s: %w", rt.Host, err))
	}
	ann, err := routeAnnotations(rt)
	if err != nil {
		return nil, nil, err
	}
	return r.objs.render(rt, metav1.ObjectMeta{Name: rt.Host, Namespace: r.namespace, Labels: labels, Annotations: ann})
}

// syncAuxFollowing syncs host's auxiliary objects to aux, those of the
// route stored at version, and then follows the stored route: while it
// has moved on (a newer SetRoute, or a DeleteRoute, raced this one and
// may have synced its own before this write landed), it syncs them again
// to what is stored now. So whichever write lands last, the auxiliary
// objects end as the newest route's: the newest commit wins there too.
// It gives up with Aborted after a few rounds of a route that keeps
// changing (its newer writers sync after it).
func (r *Router) syncAuxFollowing(ctx context.Context, host string, aux []object, version string) error {
	if r.direct == nil {
		return r.syncAux(ctx, host, aux) // no auxiliary objects: nothing to follow
	}
	const gone = "\x00gone"
	for range 5 {
		if err := r.syncAux(ctx, host, aux); err != nil {
			return err
		}
		cur, err := r.objs.get(ctx, host)
		switch err := kubeapi.Classify(ctx, err, r.what(host)); {
		case preview.IsNotFound(err):
			if version == gone {
				return nil
			}
			aux, version = nil, gone // removed: so are its auxiliary objects
			continue
		case err != nil:
			return err
		}
		if cur.GetResourceVersion() == version {
			return nil
		}
		rt, err := r.fromObject(cur)
		if err != nil {
			return err
		}
		if _, aux, err = r.render(rt); err != nil {
			return err
		}
		version = cur.GetResourceVersion()
	}
	return preview.Errorf(preview.Aborted, "%s: the route kept changing while its auxiliary objects were written (its newer writers write them)", r.what(host))
}

// update is SetRoute with a Version: the compare-and-swap as one apply.
func (r *Router) update(ctx context.Context, rt preview.Route, primary object) (object, error) {
	cur, err := r.objs.get(ctx, rt.Host)
	if err != nil {
		err = kubeapi.Classify(ctx, err, r.what(rt.Host))
		if preview.IsNotFound(err) {
			return nil, preview.WithCode(preview.Aborted, fmt.Errorf("%w: no route stored at version %s", err, rt.Version))
		}
		return nil, err
	}
	if !kubeapi.Owned(cur.GetLabels()) {
		return nil, kubeapi.NotOwned(r.what(rt.Host))
	}
	if cur.GetResourceVersion() != rt.Version {
		return nil, preview.Errorf(preview.Aborted, "%s: stored version %s, not %s (re-read it)", r.what(rt.Host), cur.GetResourceVersion(), rt.Version)
	}
	rv := rt.Version
	adopt, err := adoptionPatch(cur)
	if err != nil {
		return nil, preview.WithCode(preview.Internal, err)
	}
	if adopt != nil {
		// Conditional on the version read, like the apply: a write in
		// between makes it a Conflict (Aborted) and changes nothing.
		adopted, err := r.objs.patch(ctx, rt.Host, types.MergePatchType, adopt, metav1.PatchOptions{FieldManager: kubeapi.FieldManager})
		if err != nil {
			return nil, kubeapi.Classify(ctx, err, r.what(rt.Host))
		}
		rv = adopted.GetResourceVersion()
	}
	// The apply carries the version the caller read (or the adoption's):
	// the API server refuses it with a Conflict when anything wrote in
	// between. Fields other managers set (cert-manager's annotations, a
	// controller's) are not in it and stay; the ones Glimpse set before
	// and no longer sets are removed.
	body, err := applyPatch(primary, rv)
	if err != nil {
		return nil, err
	}
	applied, err := r.objs.patch(ctx, rt.Host, types.ApplyPatchType, body, applyOptions)
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, r.what(rt.Host))
	}
	return applied, nil
}

// syncAux applies the auxiliary objects of host's route and deletes the
// ones it no longer has. An auxiliary object in the way that is not
// Glimpse's is FailedPrecondition and left alone.
func (r *Router) syncAux(ctx context.Context, host string, aux []object) error {
	want := map[string]bool{}
	for _, obj := range aux {
		want[obj.GetName()] = true
		if err := r.checkOwned(ctx, obj.GetName()); err != nil && !preview.IsNotFound(err) {
			return err
		}
		body, err := applyPatch(obj, "")
		if err != nil {
			return err
		}
		if _, err := r.objs.patch(ctx, obj.GetName(), types.ApplyPatchType, body, applyOptions); err != nil {
			return kubeapi.Classify(ctx, err, r.what(obj.GetName()))
		}
	}
	for _, name := range r.objs.auxNames(host) {
		if !want[name] {
			if err := r.deleteOwned(ctx, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkOwned returns NotFound when name does not exist, FailedPrecondition
// when it is not Glimpse's, nil when it is.
func (r *Router) checkOwned(ctx context.Context, name string) error {
	cur, err := r.objs.get(ctx, name)
	if err != nil {
		return kubeapi.Classify(ctx, err, r.what(name))
	}
	if !kubeapi.Owned(cur.GetLabels()) {
		return kubeapi.NotOwned(r.what(name))
	}
	return nil
}

// deleteOwned deletes name if it is Glimpse's, conditional on the UID and
// resourceVersion just read; a missing one is success.
func (r *Router) deleteOwned(ctx context.Context, name string) error {
	cur, err := r.objs.get(ctx, name)
	if err != nil {
		return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, r.what(name)))
	}
	if !kubeapi.Owned(cur.GetLabels()) {
		return kubeapi.NotOwned(r.what(name))
	}
	uid, rv := cur.GetUID(), cur.GetResourceVersion()
	err = r.objs.delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, r.what(name)))
}

// Routes lists the routes whose labels match selector, tombstones
// included, in one list call; only Glimpse's objects holding routes are
// listed (not the direct backend's auxiliary ones). An object that
// carries Glimpse's labels but whose annotations do not parse fails the
// call (Internal) rather than being skipped silently.
func (r *Router) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	sel, err := kubeapi.Selector(selector)
	if err != nil {
		return nil, err
	}
	list, err := r.objs.list(ctx, sel)
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, fmt.Sprintf("%ss in %s", r.objs.kind(), r.namespace))
	}
	out := make([]preview.Route, 0, len(list))
	for _, obj := range list {
		if isAux(obj) {
			continue
		}
		rt, err := r.fromObject(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, rt)
	}
	return out, nil
}

// DeleteRoute deletes host's object, a tombstone included, and its
// auxiliary objects; a missing one is success. Each delete is conditional
// on the UID and resourceVersion just read, so it never removes an object
// that was replaced by one Glimpse does not own in between (that answers
// Aborted); an object that is not Glimpse's is FailedPrecondition and
// left alone. The auxiliary objects go first, so a failure part way
// leaves the route stored and a retry finishes the job.
func (r *Router) DeleteRoute(ctx context.Context, host string) error {
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	aux := r.objs.auxNames(host)
	if len(aux) == 0 {
		return r.deleteOwned(ctx, host)
	}
	// The route's object decides: a foreign one stops the delete before
	// its auxiliary objects are touched.
	if err := r.checkOwned(ctx, host); err != nil && !preview.IsNotFound(err) {
		return err
	}
	for _, name := range aux {
		if err := r.deleteOwned(ctx, name); err != nil {
			return err
		}
	}
	return r.deleteOwned(ctx, host)
}

// fromObject reads a route back from a Glimpse object.
func (r *Router) fromObject(obj object) (preview.Route, error) {
	rt, err := routeFrom(obj.GetName(), obj.GetLabels(), obj.GetAnnotations(), obj.GetResourceVersion())
	if err != nil {
		return preview.Route{}, preview.Errorf(preview.Internal, "%s: %v", r.what(obj.GetName()), err)
	}
	return rt, nil
}

// AnnotationAuxOf marks an auxiliary object (the direct backend's second
// Ingress) with the host whose route it serves; such objects hold no
// route and are neither listed nor watched as routes.
const AnnotationAuxOf = preview.LabelPrefix + "route-aux-of"

func isAux(obj metav1.Object) bool { return obj.GetAnnotations()[AnnotationAuxOf] != "" }

// routeAnnotations returns the annotations holding rt (validated). Every
// key is present, empty when the route has no value for it, so the
// object's set of Glimpse keys never changes from one write to the next.
func routeAnnotations(rt preview.Route) (map[string]string, error) {
	ann := map[string]string{
		AnnotationAssetPrefix:   rt.AssetPrefix,
		AnnotationFunction:      rt.Function,
		AnnotationFunctionPaths: "",
		AnnotationGeneration:    "",
		AnnotationClaimedCommit: rt.ClaimedCommit,
		AnnotationServed:        "",
		AnnotationDeleted:       "",
		AnnotationFailure:       rt.Failure,
	}
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
	if rt.Served != 0 {
		ann[AnnotationServed] = strconv.FormatInt(rt.Served, 10)
	}
	if rt.Deleted {
		ann[AnnotationDeleted] = "true"
	}
	return ann, nil
}

// routeFrom reads a route back from the name, labels, annotations and
// resourceVersion of a Glimpse object; an annotation that does not parse
// is an error naming it.
func routeFrom(name string, labels, a map[string]string, rv string) (preview.Route, error) {
	rt := preview.Route{
		Host:          name,
		AssetPrefix:   a[AnnotationAssetPrefix],
		Function:      a[AnnotationFunction],
		Labels:        preview.Labels(labels).Clone(),
		ClaimedCommit: a[AnnotationClaimedCommit],
		Deleted:       a[AnnotationDeleted] == "true",
		Failure:       a[AnnotationFailure],
		Version:       rv,
	}
	if s := a[AnnotationFunctionPaths]; s != "" {
		if err := json.Unmarshal([]byte(s), &rt.FunctionPaths); err != nil {
			return preview.Route{}, fmt.Errorf("annotation %s: %v", AnnotationFunctionPaths, err)
		}
	}
	var err error
	if s := a[AnnotationGeneration]; s != "" {
		if rt.Generation, err = strconv.ParseInt(s, 10, 64); err != nil {
			return preview.Route{}, fmt.Errorf("annotation %s: %v", AnnotationGeneration, err)
		}
	}
	if s := a[AnnotationServed]; s != "" {
		if rt.Served, err = strconv.ParseInt(s, 10, 64); err != nil {
			return preview.Route{}, fmt.Errorf("annotation %s: %v", AnnotationServed, err)
		}
	}
	return rt, nil
}

// Package kubeendpoints tells an edge (the daemon's, or one a platform
// team composes with ingress/edge) where a kubefaas function answers,
// from the cluster's own objects: a preview.InvokeEndpointer
// and preview.EndpointWaiter over two informers in the functions'
// namespace, one on Glimpse's Deployments (is the function deployed, is it
// scaled to zero) and one on the EndpointSlices of Glimpse's Services (which
// of its pods are ready, at which address). Endpoint answers from the
// informers' caches with no API call; WaitEndpoint, the end of a wake,
// returns on the EndpointSlice event that lists a ready pod, with no
// polling: the same signal the cluster's own Service routing waits for.
//
// The edge forwards to the ready pod's address (pod IP and target port)
// rather than the Service's cluster IP, as Knative's activator does: it
// needs no kube-proxy rule to be programmed after a wake, and the pod is
// known to be ready the moment its EndpointSlice says so.
//
// It needs list and watch on deployments (apps) and endpointslices
// (discovery.k8s.io) in the namespace (deploy/rbac.yaml grants both).
package kubeendpoints

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// DefaultSyncTimeout bounds how long Start waits for the first list of
// both informers.
const DefaultSyncTimeout = 30 * time.Second

// Watcher answers where the functions of one namespace take requests. It
// is safe for concurrent use. Start it with Start; Stop ends its watches.
type Watcher struct {
	namespace string
	factory   informers.SharedInformerFactory
	deploys   cache.Indexer
	slices    cache.Indexer
	stop      chan struct{}
	stopOnce  sync.Once

	next atomic.Uint64 // spreads requests over ready endpoints

	mu      sync.Mutex
	changed map[string]chan struct{} // per function, closed on its next event
}

// Start lists and then watches the Deployments and EndpointSlices that
// carry Glimpse's managed-by label in namespace, and returns once both
// lists are in (or after DefaultSyncTimeout, or when ctx ends:
// Unavailable, such as when the service account may not list them).
// The watches run until Stop; a dropped watch is resumed by client-go's
// reflector, which lists again when it must, so a restart of the API
// server loses nothing.
func Start(ctx context.Context, client kubernetes.Interface, namespace string) (*Watcher, error) {
	sel, err := kubeapi.Selector(nil)
	if err != nil {
		return nil, err
	}
	w := &Watcher{namespace: namespace, stop: make(chan struct{}), changed: map[string]chan struct{}{}}
	w.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	di := w.factory.Apps().V1().Deployments().Informer()
	si := w.factory.Discovery().V1().EndpointSlices().Informer()
	if err := si.AddIndexers(cache.Indexers{byService: func(obj any) ([]string, error) {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			return []string{s.Labels[discoveryv1.LabelServiceName]}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, preview.Errorf(preview.Internal, "endpoint slice index: %v", err)
	}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    w.notify,
		UpdateFunc: func(_, obj any) { w.notify(obj) },
		DeleteFunc: w.notify,
	}
	if _, err := di.AddEventHandler(notify); err != nil {
		return nil, preview.Errorf(preview.Internal, "deployment informer: %v", err)
	}
	if _, err := si.AddEventHandler(notify); err != nil {
		return nil, preview.Errorf(preview.Internal, "endpoint slice informer: %v", err)
	}
	w.deploys, w.slices = di.GetIndexer(), si.GetIndexer()
	w.factory.Start(w.stop)
	sctx, cancel := context.WithTimeout(ctx, DefaultSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), di.HasSynced, si.HasSynced) {
		w.Stop()
		return nil, preview.Errorf(preview.Unavailable, "deployments and endpoint slices of namespace %s: not listed within %v (can the service account list and watch them?)", namespace, DefaultSyncTimeout)
	}
	return w, nil
}

const byService = "service"

// Runtime is a kubefaas runtime as an edge needs it: the runtime itself
// (deploy, scale, status: for the idle controller and the wake) that is
// also a preview.InvokeEndpointer and a preview.EndpointWaiter answering
// from its Watcher. Give it to the edge as its Upstreams and Waker.
type Runtime struct {
	*kubefaas.Runtime
	w *Watcher
}

var (
	_ preview.FunctionRuntime  = (*Runtime)(nil)
	_ preview.InvokeEndpointer = (*Runtime)(nil)
	_ preview.EndpointWaiter   = (*Runtime)(nil)
)

// ForEdge starts a Watcher on rt's namespace through rt's client (see
// Start) and returns rt with it. The watches stop when ctx ends.
func ForEdge(ctx context.Context, rt *kubefaas.Runtime) (*Runtime, error) {
	if rt == nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubeendpoints: no kubefaas runtime")
	}
	w, err := Start(ctx, rt.Client(), rt.Namespace())
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, w.Stop)
	return &Runtime{Runtime: rt, w: w}, nil
}

// Endpoint implements preview.InvokeEndpointer (Watcher.Endpoint).
func (r *Runtime) Endpoint(name string) (string, error) { return r.w.Endpoint(name) }

// WaitEndpoint implements preview.EndpointWaiter (Watcher.WaitEndpoint).
func (r *Runtime) WaitEndpoint(ctx context.Context, name string) (string, error) {
	return r.w.WaitEndpoint(ctx, name)
}

// Stop ends the watches; Endpoint then answers from the last state seen
// and WaitEndpoint waits only for its context. It is idempotent.
func (w *Watcher) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.factory.Shutdown()
	})
}

// notify wakes the waiters of the function an event is about: a
// Deployment's name, or the Service an EndpointSlice belongs to.
func (w *Watcher) notify(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	var name string
	switch o := obj.(type) {
	case *appsv1.Deployment:
		name = o.Name
	case *discoveryv1.EndpointSlice:
		name = o.Labels[discoveryv1.LabelServiceName]
	default:
		return
	}
	w.mu.Lock()
	if ch, ok := w.changed[name]; ok {
		close(ch)
		delete(w.changed, name)
	}
	w.mu.Unlock()
}

// Endpoint returns "podIP:port" of a ready replica of the function name
// (its Service's EndpointSlices), from the informers' caches, with no
// network I/O (preview.InvokeEndpointer). Errors: NotFound when no
// Glimpse Deployment of that name is known, FailedPrecondition when it
// is scaled to zero, Unavailable when replicas are wanted but none is
// ready yet. Replicas are picked in turn by a cheap hash of the call, so
// that several ready pods share the requests.
func (w *Watcher) Endpoint(name string) (string, error) {
	if ep, ok := w.ready(name); ok {
		return ep, nil
	}
	obj, ok, _ := w.deploys.GetByKey(w.namespace + "/" + name)
	if !ok {
		return "", preview.Errorf(preview.NotFound, "function %s: no deployment %s/%s", name, w.namespace, name)
	}
	d := obj.(*appsv1.Deployment)
	if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
		return "", preview.Errorf(preview.FailedPrecondition, "function %s is scaled to zero", name)
	}
	return "", preview.Errorf(preview.Unavailable, "function %s: no ready replica yet", name)
}

// ready returns the address of a ready endpoint of name's Service.
func (w *Watcher) ready(name string) (string, bool) {
	objs, _ := w.slices.ByIndex(byService, name)
	var eps []string
	for _, obj := range objs {
		s := obj.(*discoveryv1.EndpointSlice)
		port := int32(kubefaas.Port)
		if len(s.Ports) > 0 && s.Ports[0].Port != nil {
			port = *s.Ports[0].Port
		}
		for _, e := range s.Endpoints {
			// Ready is nil when unknown, which the API says to read as ready.
			if (e.Conditions.Ready == nil || *e.Conditions.Ready) && len(e.Addresses) > 0 {
				eps = append(eps, net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port))))
			}
		}
	}
	switch len(eps) {
	case 0:
		return "", false
	case 1:
		return eps[0], true
	}
	return eps[w.next.Add(1)%uint64(len(eps))], true
}

// WaitEndpoint blocks until a replica of name is ready and returns its
// address (preview.EndpointWaiter), or returns ctx's error (with what it
// last saw). It re-reads the caches on every Deployment or EndpointSlice
// event about name, and on nothing else: no polling. It does not scale
// anything; a function scaled to zero waits until someone scales it up.
func (w *Watcher) WaitEndpoint(ctx context.Context, name string) (string, error) {
	for {
		// The channel is taken before the caches are read, so that an
		// event between the read and the wait is not missed.
		w.mu.Lock()
		ch, ok := w.changed[name]
		if !ok {
			ch = make(chan struct{})
			w.changed[name] = ch
		}
		w.mu.Unlock()
		ep, err := w.Endpoint(name)
		if err == nil {
			return ep, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", preview.WithCode(preview.CodeOf(ctx.Err()), fmt.Errorf("waiting for a ready replica of %s: %w (last: %v)", name, ctx.Err(), err))
		}
	}
}

package k8singress

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// A Router is the route source of an edge in the cluster: every replica's
// edge watches the Glimpse Ingresses of the namespace and serves them.
var _ edge.RouteSource = (*Router)(nil)

// Watch makes the Router an edge.RouteSource: a client-go informer on the
// Ingresses of the namespace labelled glimpse.dev/managed-by=glimpse (one
// list, then one watch; no polling, no periodic resync), whose events
// reach sink as edge.RouteSource says. An Ingress whose annotations do not
// parse reaches sink as Invalid, the others are unaffected. The informer
// relists by itself after a broken watch and reports the difference as
// Puts and Deletes. When the first list does not complete before ctx
// ends, Watch stops the informer (without waiting for its list call to
// give up) and returns the last list error classified (Unavailable,
// PermissionDenied, ...), or DeadlineExceeded or Canceled when the list
// had not failed yet. It needs list and watch on ingresses in the namespace.
// Each call starts its own informer, so Watch may be called any number of
// times; stop is idempotent and waits for the informer's goroutines.
func (r *Router) Watch(ctx context.Context, sink edge.RouteSink) (stop func(), err error) {
	sel := preview.LabelManagedBy + "=" + preview.ManagedByValue
	f := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithNamespace(r.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	inf := f.Networking().V1().Ingresses().Informer()
	var lastErr atomic.Pointer[error]
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) { lastErr.Store(&err) }); err != nil {
		return nil, preview.Errorf(preview.Internal, "ingresses in %s: %v", r.namespace, err)
	}
	w := &watcher{sink: sink, table: map[string]preview.Route{}, invalid: map[string]error{}}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.put,
		UpdateFunc: func(_, obj any) { w.put(obj) },
		DeleteFunc: w.delete,
	})
	if err != nil {
		return nil, preview.Errorf(preview.Internal, "ingresses in %s: %v", r.namespace, err)
	}
	stopCh := make(chan struct{})
	f.Start(stopCh)
	stop = sync.OnceFunc(func() {
		close(stopCh)
		f.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		// The informer ends once its list call gives up (client-go
		// retries a refused connection for a few seconds); Watch does
		// not wait for that.
		close(stopCh)
		go f.Shutdown()
		what := fmt.Sprintf("ingresses in %s: watch", r.namespace)
		if p := lastErr.Load(); p != nil {
			return nil, kubeapi.Classify(context.Background(), *p, what)
		}
		return nil, kubeapi.Classify(ctx, ctx.Err(), what)
	}
	w.goLive()
	return stop, nil
}

// watcher turns informer events into sink calls. Until the first list
// is complete it only folds the events into table and invalid; goLive
// hands that state over in one Replace, and later events go straight to
// the sink. mu orders the handover before every later event.
type watcher struct {
	sink    edge.RouteSink
	mu      sync.Mutex
	live    bool
	table   map[string]preview.Route
	invalid map[string]error
}

func (w *watcher) put(obj any) {
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok || !kubeapi.Owned(ing.Labels) {
		return
	}
	rt, err := fromIngress(ing)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.live && err != nil:
		w.sink.Invalid(ing.Name, err)
	case w.live:
		w.sink.Put(rt)
	case err != nil:
		delete(w.table, ing.Name)
		w.invalid[ing.Name] = err
	default:
		delete(w.invalid, ing.Name)
		w.table[ing.Name] = rt
	}
}

func (w *watcher) delete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live {
		w.sink.Delete(ing.Name)
		return
	}
	delete(w.table, ing.Name)
	delete(w.invalid, ing.Name)
}

func (w *watcher) goLive() {
	w.mu.Lock()
	defer w.mu.Unlock()
	routes := make([]preview.Route, 0, len(w.table))
	for _, rt := range w.table {
		routes = append(routes, rt)
	}
	w.sink.Replace(routes)
	for host, err := range w.invalid {
		w.sink.Invalid(host, err)
	}
	w.live, w.table, w.invalid = true, nil, nil
}

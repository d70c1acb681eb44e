package k8singress

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// A Router is the route source of an edge in the cluster: every replica's
// edge watches the Glimpse Ingresses (or HTTPRoutes) of the namespace and
// serves them.
var _ edge.RouteSource = (*Router)(nil)

// Watch makes the Router an edge.RouteSource: a client-go informer on the
// Ingresses (HTTPRoutes for a Router from NewGateway) of the namespace labelled glimpse.dev/managed-by=glimpse (one
// list, then one watch; no polling, no periodic resync), whose events
// reach sink as edge.RouteSource says (the direct backend's auxiliary
// objects are not routes and are skipped). An object whose annotations do not
// parse reaches sink as Invalid, the others are unaffected. The informer
// relists by itself after a broken watch and reports the difference as
// Puts and Deletes. When the first list does not complete before ctx
// ends, Watch stops the informer (without waiting for its list call to
// give up) and returns the last list error classified (Unavailable,
// PermissionDenied, ...), or DeadlineExceeded or Canceled when the list
// had not failed yet. It needs list and watch on the kind in the namespace.
// Each call starts its own informer, so Watch may be called any number of
// times; stop is idempotent and waits for the informer's goroutines.
func (r *Router) Watch(ctx context.Context, sink edge.RouteSink) (stop func(), err error) {
	sel := preview.LabelManagedBy + "=" + preview.ManagedByValue
	inf, start, shutdown := r.objs.informer(sel)
	kinds := fmt.Sprintf("%ss in %s", r.objs.kind(), r.namespace)
	var lastErr atomic.Pointer[error]
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) { lastErr.Store(&err) }); err != nil {
		return nil, preview.Errorf(preview.Internal, "%s: %v", kinds, err)
	}
	w := &watcher{r: r, sink: sink, table: map[string]preview.Route{}, invalid: map[string]error{}}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.put,
		UpdateFunc: func(_, obj any) { w.put(obj) },
		DeleteFunc: w.delete,
	})
	if err != nil {
		return nil, preview.Errorf(preview.Internal, "%s: %v", kinds, err)
	}
	stopCh := make(chan struct{})
	start(stopCh)
	stop = sync.OnceFunc(func() {
		close(stopCh)
		shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		// The informer ends once its list call gives up (client-go
		// retries a refused connection for a few seconds); Watch does
		// not wait for that.
		close(stopCh)
		go shutdown()
		what := kinds + ": watch"
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
	r       *Router
	sink    edge.RouteSink
	mu      sync.Mutex
	live    bool
	table   map[string]preview.Route
	invalid map[string]error
}

func (w *watcher) put(obj any) {
	o, ok := obj.(object)
	if !ok || !kubeapi.Owned(o.GetLabels()) || isAux(o) {
		return
	}
	rt, err := w.r.fromObject(o)
	name := o.GetName()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.live && err != nil:
		w.sink.Invalid(name, err)
	case w.live:
		w.sink.Put(rt)
	case err != nil:
		delete(w.table, name)
		w.invalid[name] = err
	default:
		delete(w.invalid, name)
		w.table[name] = rt
	}
}

func (w *watcher) delete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(object)
	if !ok || isAux(o) {
		return
	}
	name := o.GetName()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live {
		w.sink.Delete(name)
		return
	}
	delete(w.table, name)
	delete(w.invalid, name)
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

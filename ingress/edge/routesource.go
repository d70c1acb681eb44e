package edge

import (
	"context"
	"maps"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// RouteSource is where an edge in cluster mode (Options.Source) gets its
// routes: a store that other writers share (the other replicas, `glimpse
// up` from a laptop), such as ingress/k8singress's Ingresses. The edge
// serves what the source holds, as the source's watch reports it, and
// answers its own preview.Router calls by delegating them to the source
// (reads included, so a Route after a SetRoute sees the write even when
// the watch has not delivered it yet). Every edge watching one source
// therefore serves the same routes, and an edge that restarts lists them
// again: nothing is kept on the edge's disk.
type RouteSource interface {
	// The source's own Router: the edge's SetRoute, DeleteRoute, Route
	// and Routes call it unchanged (the host normalised), with its
	// Version and error contract.
	preview.Router
	// Watch delivers the source's routes to sink: first one Replace with
	// every route the source holds, then Put and Delete for each later
	// change, in the order the source made them, from one goroutine at a
	// time. ctx bounds only the wait for that first list: Watch returns
	// after Replace was delivered, or with an error (Unavailable or
	// DeadlineExceeded when the source cannot be listed in time) after
	// stopping everything it started. The watch then runs, recovering
	// from broken connections by itself, until stop is called; stop is
	// idempotent and waits until no more sink calls are in flight.
	Watch(ctx context.Context, sink RouteSink) (stop func(), err error)
}

// RouteSink receives a RouteSource's routes. The Edge's sink is safe for
// concurrent use, but a source calls it from one goroutine at a time so
// that changes apply in order.
type RouteSink interface {
	// Replace makes routes the whole table.
	Replace(routes []preview.Route)
	// Put stores r for r.Host; a Put of the Version already held is a
	// no-op.
	Put(r preview.Route)
	// Delete removes the route for host; a missing one is a no-op.
	Delete(host string)
	// Invalid reports that the source holds something for host that is
	// not a valid route: the edge stops serving host and logs err.
	Invalid(host string, err error)
}

// DefaultSourceSyncTimeout bounds New's wait for a RouteSource's first
// list when Options.SourceSyncTimeout is zero.
const DefaultSourceSyncTimeout = 60 * time.Second

// startSource starts e's watch of opts.Source and waits for its first
// list.
func (e *Edge) startSource() error {
	timeout := e.opts.SourceSyncTimeout
	if timeout <= 0 {
		timeout = DefaultSourceSyncTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop, err := e.source.Watch(ctx, (*sourceSink)(e))
	if err != nil {
		return err
	}
	e.stopSource = stop
	return nil
}

// sourceSink is the RouteSink of an Edge in cluster mode: it applies the
// source's changes to the served table as SetRoute and DeleteRoute do
// (copy on write, cached manifests of the old and new asset prefix
// dropped), without a RouteStore.
type sourceSink Edge

// Replace builds the table from routes in one copy, keeping the cached
// manifest of every route whose Version did not change.
func (s *sourceSink) Replace(routes []preview.Route) {
	e := (*Edge)(s)
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := *e.table.Load()
	next := make(map[string]*route, len(routes))
	for _, r := range routes {
		r.Host = preview.NormalizeHost(r.Host)
		if err := r.Validate(); err != nil {
			e.log.Error("edge: route from the route source is invalid, not served", "host", r.Host, "err", err)
			continue
		}
		if old := cur[r.Host]; old != nil && old.spec.Version == r.Version && r.Version != "" {
			next[r.Host] = old
			continue
		}
		next[r.Host] = newRoute(r)
	}
	for host, old := range cur {
		if n := next[host]; n != old && old.prefix != "" {
			e.invalidateLocked(next, old.prefix)
		}
	}
	e.publishLocked(next)
}

// Put stores r (validated) in the served table.
func (s *sourceSink) Put(r preview.Route) {
	e := (*Edge)(s)
	r.Host = preview.NormalizeHost(r.Host)
	if err := r.Validate(); err != nil {
		s.Invalid(r.Host, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := *e.table.Load()
	old := cur[r.Host]
	if old != nil && old.spec.Version == r.Version && r.Version != "" {
		return
	}
	next := maps.Clone(cur)
	if old != nil && old.prefix != "" {
		e.invalidateLocked(next, old.prefix)
	}
	if r.AssetPrefix != "" {
		e.invalidateLocked(next, r.AssetPrefix)
	}
	next[r.Host] = newRoute(r)
	e.publishLocked(next)
}

// Delete removes host from the served table.
func (s *sourceSink) Delete(host string) {
	e := (*Edge)(s)
	host = preview.NormalizeHost(host)
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := *e.table.Load()
	old, ok := cur[host]
	if !ok {
		return
	}
	next := maps.Clone(cur)
	if old.prefix != "" {
		e.invalidateLocked(next, old.prefix)
	}
	delete(next, host)
	e.publishLocked(next)
}

// Invalid logs err and stops serving host.
func (s *sourceSink) Invalid(host string, err error) {
	(*Edge)(s).log.Error("edge: route from the route source is invalid, not served", "host", host, "err", err)
	s.Delete(host)
}

// SourceStore returns src in the form of a RouteStore, for code that
// hands the edge a RouteStore (daemon.Providers.Routes): an Edge given it
// as Options.Routes is in cluster mode with src as its Source, and
// ignores StateFile as it does for any Routes. Used as a store by
// anything else, its Load, Put and Delete are FailedPrecondition; Close
// does nothing (the watch ends with the Edge).
func SourceStore(src RouteSource) RouteStore { return sourceStore{src} }

type sourceStore struct{ src RouteSource }

func (sourceStore) Load() ([]preview.Route, error) { return nil, errSourceStore }
func (sourceStore) Put(preview.Route) error        { return errSourceStore }
func (sourceStore) Delete(string) error            { return errSourceStore }
func (sourceStore) Close() error                   { return nil }

var errSourceStore = preview.Errorf(preview.FailedPrecondition, "edge: a route source is read through an edge's watch, not as a route store")

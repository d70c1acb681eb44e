package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/preview"
)

// Upstreams resolves a function name to where the edge proxies its
// requests: preview.InvokeEndpointer, which faas/localfaas's *Runtime and
// faas/openfaas's *Client satisfy. An endpoint with a path prefix
// ("gateway:8080/function/NAME") has the prefix put before each request's
// path. The edge answers 502 for NotFound and 503 for Unavailable, and
// wakes the function (Options.Waker) on FailedPrecondition; when Upstreams
// is also a preview.EndpointWaiter the edge waits on it for a starting
// function.
type Upstreams = preview.InvokeEndpointer

// Options configure an Edge. Only the fields a deployment uses need to be
// set; the zero value of every tuning field means the documented default.
type Options struct {
	// Assets serves the static files of routes with an AssetPrefix; nil
	// means static requests answer 404.
	Assets preview.AssetStore
	// AssetCacheBytes bounds the memory that keeps blobs of an Assets
	// store without local files (anything but cdn/fsassets, which is
	// served from its files with sendfile): blobs are cached by digest,
	// least recently used evicted first. 0 means
	// DefaultAssetCacheBytes; negative turns the cache off. Blobs larger
	// than AssetCacheMaxBlob (0: DefaultAssetCacheMaxBlob) are streamed
	// from the store on every request and never cached.
	AssetCacheBytes   int64
	AssetCacheMaxBlob int64
	// Upstreams resolves function names; nil means function requests
	// answer 502.
	Upstreams Upstreams
	// Routes persists the routes; New loads them from it. Nil means a
	// JournalStore at StateFile when that is set, else routes only in
	// memory. The Edge closes it in Close.
	Routes RouteStore
	// StateFile is where a JournalStore keeps the routes (a snapshot
	// plus StateFile.log, one line per change); ignored when Routes is
	// set.
	StateFile string
	// Source puts the edge in cluster mode (see RouteSource): it serves
	// the routes Source holds, following Source's watch, and delegates
	// its preview.Router calls to Source. New waits for Source's first
	// list, up to SourceSyncTimeout (0: DefaultSourceSyncTimeout). Source
	// excludes Routes and StateFile (but see SourceStore); Close stops
	// the watch.
	Source            RouteSource
	SourceSyncTimeout time.Duration
	// Logger receives proxy and state errors; nil means slog.Default().
	Logger *slog.Logger

	// Waker scales a function up when a request finds it scaled to zero;
	// nil means such requests answer 503. Requests wait for the wake (one
	// scale-up however many wait) up to WakeTimeout (default
	// DefaultWakeTimeout), then answer 504.
	Waker       Waker
	WakeTimeout time.Duration
	// WaitingPage answers a browser navigation (GET accepting text/html)
	// to a sleeping function with a page that reloads itself when the
	// function is ready (it listens to WakeEventsPath), instead of holding
	// the request. Off by default.
	WaitingPage bool
	// Metrics, when set, receives the edge's Prometheus metrics (wakes,
	// wake latency, sleeps, and requests and their latency by preview:
	// see previewmetrics.go).
	Metrics prometheus.Registerer

	// SPAFallback serves /index.html (status 200) for a GET of a missing
	// path that has no file extension, for single-page apps with client
	// side routing. Off by default: a missing path is 404 (served from
	// /404.html when the manifest has one).
	SPAFallback bool
	// TrustForwardedHeaders keeps X-Forwarded-Proto and X-Forwarded-Host
	// sent by the client (set it when the edge sits behind a proxy that
	// sets them); by default the edge overwrites them. X-Forwarded-For is
	// always appended to.
	TrustForwardedHeaders bool
	// MaxIdleConnsPerUpstream caps the idle keep-alive connections kept
	// per upstream address; default 512.
	MaxIdleConnsPerUpstream int
	// IdleConnTimeout closes upstream connections idle this long; default
	// 90s.
	IdleConnTimeout time.Duration
	// DialTimeout bounds connecting to an upstream; default 5s.
	DialTimeout time.Duration

	// DisableConnTakeover keeps every request on net/http's server. By
	// default the edge takes over (hijacks) an HTTP/1.x keep-alive
	// connection at its first body-less request for a routed host and
	// serves that connection's requests itself, which roughly halves the
	// CPU it spends per proxied request (see package internal/h1).
	// Consequences for the embedding server: its middleware around
	// ServeHTTP sees one call per taken-over connection, not per request;
	// http.Server.Shutdown does not wait for these connections (call
	// Close after it); and the server's timeouts do not apply to them
	// (IdleTimeout and Limits do).
	DisableConnTakeover bool
	// Fallback serves requests for hosts without a route that arrive on a
	// taken-over connection (a load balancer that reuses connections
	// across hosts); nil answers them 404 like ServeHTTP does.
	Fallback http.Handler
	// IdleTimeout closes a taken-over connection that waits this long for
	// its next request; default 120s.
	IdleTimeout time.Duration
	// Limits bound header and body reads (timeouts, sizes); see Limits.
	Limits Limits
}

// Edge is the edge router: an http.Handler that routes by Host, and a
// preview.Router whose routes it serves. It is safe for concurrent use;
// route changes take effect for the next request without blocking requests
// in flight. Close releases idle upstream connections.
type Edge struct {
	opts  Options
	log   *slog.Logger
	table atomic.Pointer[map[string]*route]
	// mu serialises route changes and state file writes.
	mu     sync.Mutex
	tr     *h1.Transport
	closed atomic.Bool
	// srv serves the client connections the edge takes over.
	srv h1.Server

	act     activityTable
	metrics *metrics
	// requests are the per-preview request metrics; nil without Metrics.
	requests *previewMetrics
	store    RouteStore
	blobs    *blobCache // nil: serve blobs straight from the store (see static.go)

	// forgetAfter is forgetAfter, shorter in tests.
	forgetAfter time.Duration

	// source and stopSource are set in cluster mode (routesource.go).
	source     RouteSource
	stopSource func()
}

var _ preview.Router = (*Edge)(nil)

// route is the precomputed, immutable serving form of a preview.Route,
// plus its cached asset manifest.
type route struct {
	spec     preview.Route
	function string
	paths    []string
	prefix   string

	assets atomic.Pointer[assetSet]
	loadMu sync.Mutex
	// static caches the host's static-activity cell (activityTable.hosts).
	static atomic.Pointer[hostActivity]
	// requests caches the preview's request metrics (previewMetrics).
	requests atomic.Pointer[previewStats]
}

// New returns an Edge. When opts.StateFile names an existing file, its
// routes are loaded; a missing file is an empty table, an unreadable or
// corrupt one is an error (FailedPrecondition), so a daemon never starts
// silently without its routes.
func New(opts Options) (*Edge, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxIdleConnsPerUpstream <= 0 {
		opts.MaxIdleConnsPerUpstream = 512
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	opts.Limits = opts.Limits.withDefaults()
	e := &Edge{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Metrics), forgetAfter: forgetAfter}
	e.requests = newPreviewMetrics(e, opts.Metrics)
	e.tr = h1.NewTransport(opts.MaxIdleConnsPerUpstream, opts.IdleConnTimeout, opts.DialTimeout)
	e.srv = h1.Server{
		Handler:           (*connHandler)(e),
		Logger:            opts.Logger,
		IdleTimeout:       opts.IdleTimeout,
		ReadHeaderTimeout: opts.Limits.ReadHeaderTimeout,
		BodyReadTimeout:   opts.Limits.BodyReadTimeout,
		MaxHeaderBytes:    opts.Limits.MaxHeaderBytes,
	}
	e.blobs = newBlobCache(opts.Assets, opts.AssetCacheBytes, opts.AssetCacheMaxBlob)
	if ss, ok := opts.Routes.(sourceStore); ok && opts.Source == nil {
		opts.Source, opts.Routes, opts.StateFile = ss.src, nil, ""
	}
	if opts.Source != nil {
		if opts.Routes != nil || opts.StateFile != "" {
			return nil, preview.Errorf(preview.InvalidArgument, "edge: a route source excludes a route store and a state file")
		}
		e.source, e.store = opts.Source, memoryStore{}
		e.table.Store(&map[string]*route{})
		if err := e.startSource(); err != nil {
			e.tr.Close()
			return nil, err
		}
		return e, nil
	}
	store := opts.Routes
	if store == nil && opts.StateFile != "" {
		js, err := OpenJournalStore(opts.StateFile)
		if err != nil {
			return nil, err
		}
		store = js
	}
	if store == nil {
		store = memoryStore{}
	}
	e.store = store
	routes, err := store.Load()
	if err != nil {
		store.Close()
		return nil, err
	}
	t := make(map[string]*route, len(routes))
	for _, r := range routes {
		if err := r.Validate(); err != nil {
			store.Close()
			return nil, preview.Errorf(preview.FailedPrecondition, "edge: stored route %s: %v", r.Host, err)
		}
		t[r.Host] = newRoute(r)
	}
	e.table.Store(&t)
	return e, nil
}

// Close closes idle upstream connections, stops the background clean-up
// and closes the taken-over client connections (h1.Server.Close): idle
// ones at once, one still receiving a request header too, busy ones when
// their current response is complete. The Edge must not be used for new
// requests afterwards. Close is idempotent and does not wait.
func (e *Edge) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	if e.stopSource != nil {
		e.stopSource()
	}
	e.srv.Close()
	e.tr.Close()
	e.mu.Lock()
	e.store.Close()
	e.mu.Unlock()
	return nil
}

func newRoute(r preview.Route) *route {
	r = cloneRoute(r)
	paths := slices.Clone(r.FunctionPaths)
	if r.Function == "" {
		paths = nil
	}
	return &route{spec: r, function: r.Function, paths: paths, prefix: r.AssetPrefix}
}

func cloneRoute(r preview.Route) preview.Route {
	r.FunctionPaths = slices.Clone(r.FunctionPaths)
	r.Labels = r.Labels.Clone()
	return r
}

// matchFunction reports whether path goes to the function: it equals one of
// the function paths or continues one with '/' (so /graphql matches
// /graphql and /graphql/x but not /graphqlx; a path ending in '/' matches
// everything below it), the element-wise rule of Kubernetes Ingress
// "Prefix" paths.
func (rt *route) matchFunction(path string) bool {
	for _, p := range rt.paths {
		if len(path) < len(p) || path[:len(p)] != p {
			continue
		}
		if len(path) == len(p) || p[len(p)-1] == '/' || path[len(p)] == '/' {
			return true
		}
	}
	return false
}

// lookup returns the served route of a Host header value (nil for none or
// a tombstone), without allocating unless the value holds upper-case
// letters.
func (e *Edge) lookup(host string) *route {
	rt := (*e.table.Load())[preview.NormalizeHost(host)]
	if rt == nil || rt.spec.Deleted {
		return nil
	}
	return rt
}

// HasHost reports whether a route exists for host (a Host header value:
// case and port do not matter), so a daemon serving several things on one
// listener can dispatch preview hosts to the edge.
func (e *Edge) HasHost(host string) bool { return e.lookup(host) != nil }

// SetRoute stores r for r.Host (lower-cased, port and trailing dot
// removed) if the stored route's Version equals r.Version ("" when none may
// be stored), as preview.Router says, and returns the stored route with a
// new random Version. It persists the table and drops the cached manifest
// of every route serving the old or new AssetPrefix, so a re-published
// manifest is read again. A precondition that does not hold is Aborted;
// invalid routes are InvalidArgument; a state file that cannot be written
// leaves the routes unchanged and returns an Internal (or
// PermissionDenied) error. A tombstone (r.Deleted) is stored but not
// served: its host answers 404. In cluster mode (Options.Source) it is
// the source's SetRoute, and the edge serves the change once the
// source's watch delivers it.
func (e *Edge) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return preview.Route{}, err
	}
	r.Host = preview.NormalizeHost(r.Host)
	if e.source != nil {
		return e.source.SetRoute(ctx, r)
	}
	if err := r.Validate(); err != nil {
		return preview.Route{}, err
	}
	want := r.Version
	r.Version = newVersion()
	err := e.update(r.Host, func(t map[string]*route) (*preview.Route, error) {
		old := t[r.Host]
		switch {
		case old == nil && want != "":
			return nil, preview.Errorf(preview.Aborted, "edge: route %s: version %q was expected, no route is stored", r.Host, want)
		case old != nil && old.spec.Version != want:
			return nil, preview.Errorf(preview.Aborted, "edge: route %s: version %q was expected, %q is stored", r.Host, want, old.spec.Version)
		}
		if old != nil && old.prefix != "" {
			e.invalidateLocked(t, old.prefix)
		}
		if r.AssetPrefix != "" {
			e.invalidateLocked(t, r.AssetPrefix)
		}
		t[r.Host] = newRoute(r)
		return &r, nil
	})
	if err != nil {
		return preview.Route{}, err
	}
	return cloneRoute(r), nil
}

// newVersion returns a random route version: 16 hex digits, never the
// same twice in practice, also across a restart or a deleted and
// re-created route.
func newVersion() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DeleteRoute removes the route for host, a tombstone included; a missing
// route is success. The table is persisted; on a write error nothing
// changes. In cluster mode it is the source's DeleteRoute.
func (e *Edge) DeleteRoute(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	host = preview.NormalizeHost(host)
	if e.source != nil {
		return e.source.DeleteRoute(ctx, host)
	}
	if _, ok := (*e.table.Load())[host]; !ok {
		return nil
	}
	return e.update(host, func(t map[string]*route) (*preview.Route, error) {
		if old := t[host]; old != nil && old.prefix != "" {
			e.invalidateLocked(t, old.prefix)
		}
		delete(t, host)
		return nil, nil
	})
}

// Route returns the stored route for host, a tombstone included, or
// NotFound. In cluster mode it is the source's Route.
func (e *Edge) Route(ctx context.Context, host string) (preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return preview.Route{}, err
	}
	if e.source != nil {
		return e.source.Route(ctx, preview.NormalizeHost(host))
	}
	rt := (*e.table.Load())[preview.NormalizeHost(host)]
	if rt == nil {
		return preview.Route{}, preview.Errorf(preview.NotFound, "edge: no route for host %q", host)
	}
	return cloneRoute(rt.spec), nil
}

// Routes returns the routes whose labels match selector, tombstones
// included, sorted by host. In cluster mode it is the source's Routes.
// The result is a copy; changing it changes nothing in the Edge.
func (e *Edge) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.source != nil {
		return e.source.Routes(ctx, selector)
	}
	t := *e.table.Load()
	out := []preview.Route{}
	for _, rt := range t {
		if rt.spec.Labels.Matches(selector) {
			out = append(out, cloneRoute(rt.spec))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// InvalidateAssets drops the cached manifest of every route that serves
// prefix, so the next request reads it from the asset store again. SetRoute
// and DeleteRoute call it; a process that publishes a manifest without
// setting a route may call it too.
func (e *Edge) InvalidateAssets(prefix string) {
	e.invalidateLocked(*e.table.Load(), prefix)
}

func (e *Edge) invalidateLocked(t map[string]*route, prefix string) {
	for _, rt := range t {
		if rt.prefix == prefix {
			rt.assets.Store(nil)
		}
	}
}

// update applies fn to a copy of the table, persists the one change fn
// made (put, or delete when put is nil) and then publishes the copy; when
// fn or the store fails nothing changes. Readers never see a partly changed
// table.
func (e *Edge) update(host string, fn func(map[string]*route) (put *preview.Route, err error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := maps.Clone(*e.table.Load())
	put, err := fn(next)
	if err != nil {
		return err
	}
	if put != nil {
		err = e.store.Put(*put)
	} else {
		err = e.store.Delete(host)
	}
	if err != nil {
		return err
	}
	e.publishLocked(next)
	return nil
}

// publishLocked serves t (e.mu held) and forgets the activity of what it
// no longer routes.
func (e *Edge) publishLocked(t map[string]*route) {
	e.table.Store(&t)
	e.forgetUnroutedLocked(t)
}

// ServeHTTP routes r by its Host header (case-insensitive, port ignored).
// Unknown hosts answer 404. A path under the route's function paths is
// proxied to the function (502 when it cannot be reached or is not
// deployed, 503 when it is scaled to zero or starting); any other path is
// served from the route's asset manifest (GET and HEAD only, 405
// otherwise).
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := e.lookup(r.Host)
	if rt == nil {
		notRouted(w)
		return
	}
	if !e.opts.DisableConnTakeover && r.ProtoMajor == 1 && (r.Body == nil || r.Body == http.NoBody) &&
		len(r.Header["Upgrade"]) == 0 && !e.closed.Load() && e.srv.TakeOver(w, r) {
		return
	}
	e.route(w, r, rt)
}

// connHandler serves the requests of the client connections the edge has
// taken over (h1.Server's Handler): routed hosts as ServeHTTP does,
// others through Options.Fallback (a load balancer that reuses
// connections across hosts), else 404.
type connHandler Edge

// ServeHTTP serves one request of a taken-over connection.
func (h *connHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := (*Edge)(h)
	if rt := e.lookup(r.Host); rt != nil {
		e.route(w, r, rt)
	} else if e.opts.Fallback != nil {
		if ctx := e.ctxOf(w, r); r.Context() != ctx {
			r = r.WithContext(ctx)
		}
		e.opts.Fallback.ServeHTTP(w, r)
	} else {
		notRouted(w)
	}
}

// notRouted answers a request for a host without a route.
func notRouted(w http.ResponseWriter) {
	h1.TextError(w, http.StatusNotFound, "404 no preview is routed at this host\n")
}

// RefusesBody reports whether the proxy will answer r 413 without
// reading its body (h1.BodyRefuser): a function request declaring more
// than Limits.MaxRequestBodyBytes.
func (h *connHandler) RefusesBody(r *http.Request) bool {
	e := (*Edge)(h)
	if !e.bodyTooLarge(r) {
		return false
	}
	rt := e.lookup(r.Host)
	return rt != nil && rt.paths != nil && rt.matchFunction(r.URL.Path)
}

// ctxOf returns the context of a request: the taken-over connection's for
// requests on one (see h1.ResponseWriter.Context), else the request's own.
func (e *Edge) ctxOf(w http.ResponseWriter, r *http.Request) context.Context {
	if hw, ok := w.(*h1.ResponseWriter); ok {
		return hw.Context()
	}
	return r.Context()
}

// route serves r by rt (serveRoute), counting it in the preview's
// request metrics (see previewMetrics).
func (e *Edge) route(w http.ResponseWriter, r *http.Request, rt *route) {
	s := e.requests.of(rt)
	if s == nil {
		e.serveRoute(w, r, rt)
		return
	}
	start := time.Now()
	if hw, ok := w.(*h1.ResponseWriter); ok {
		e.serveRoute(w, r, rt)
		s.observe(hw.Status(), time.Since(start))
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	e.serveRoute(sw, r, rt)
	s.observe(sw.code, time.Since(start))
}

// serveRoute serves r by rt: the wake event stream, the function or the
// static files.
func (e *Edge) serveRoute(w http.ResponseWriter, r *http.Request, rt *route) {
	if rt.function != "" && r.URL.Path == WakeEventsPath {
		e.serveWakeEvents(w, r, rt)
		return
	}
	if rt.paths != nil && rt.matchFunction(r.URL.Path) {
		e.proxy(w, r, rt)
		return
	}
	e.touchStatic(rt)
	e.serveStatic(w, r, rt)
}

var (
	hdrNosniff = []string{"nosniff"}
	hdrNoStore = []string{"no-store"}
)

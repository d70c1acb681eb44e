// Package daemon composes the parts `glimpse serve` runs over the provider
// interfaces of package preview, whatever providers fill them: the edge
// (routing, static files from the asset store, forwarding to functions,
// activity counting, wake from zero), the idle controller, the route API
// (/glimpse/v1/), /healthz, /metrics and the dashboard of previews at /
// (package daemon/dashboard), behind one http.Handler that sends
// preview hosts to the edge and the daemon's own hosts (plain localhost,
// and those added with AddAPIHost) to the API.
//
// With no providers given, Open fills every part from the embedded stack
// under the daemon's home: the OCI registry (embedregistry, served under
// /v2/), the function runtime (localfaas, whose OpenFaaS gateway API is
// served under /system/ and /function/), the asset store (fsassets) and the
// route store (edge.JournalStore). In production the runtime is an OpenFaaS
// gateway (faas/openfaas) or a cluster, the assets an S3 bucket: see
// Providers.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/daemon/dashboard"
	"github.com/glimpse-dev/glimpse/faas/localfaas"
	"github.com/glimpse-dev/glimpse/idle"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/ingress/routeapi"
	"github.com/glimpse-dev/glimpse/internal/basicauth"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

// User is the basic-auth user of the daemon API.
const User = basicauth.User

// Stack is a running daemon: its parts behind one handler. Its fields are
// the providers, for callers (tests, custom tools) that compose a Pipeline
// in-process.
type Stack struct {
	// Registry is the embedded OCI registry; nil when
	// Providers.NoRegistry.
	Registry *embedregistry.Registry
	// Runtime runs the functions: Providers.Runtime, or Local.
	Runtime preview.FunctionRuntime
	// Local is the embedded runtime; nil when Providers.Runtime is set.
	Local *localfaas.Runtime
	// Assets is Providers.Assets, or the embedded file store.
	Assets preview.AssetStore
	Edge   *edge.Edge
	// Password is the daemon API password ($GLIMPSE_HOME/gateway-password).
	Password string
	// Idle is the idle controller; RunIdle runs it.
	Idle *idle.Controller
	// steps records the pipeline steps the daemon runs (ObserveEvent).
	steps *stepMetrics
	// history is the last Up of each preview the daemon ran (TrackUp).
	history *dashboard.History
	// Metrics holds the daemon's Prometheus metrics, served at /metrics:
	// the edge's (wakes, wake latency, sleeps), the idle controller's
	// (cycles, scale-downs, clamps) and glimpse_previews{state}.
	Metrics *prometheus.Registry

	api         http.Handler
	apiHosts    map[string]bool
	limits      Limits
	idleDefault preview.IdleTimeout
	leader      atomic.Pointer[LeaderStatus]                            // SetLeader; nil: no election
	afterDown   atomic.Pointer[func(app string, pr int, commit string)] // SetAfterDown
}

// Providers are the parts a daemon composes. A nil field is filled from
// the embedded stack under the daemon's home.
type Providers struct {
	// Runtime runs the preview functions. It must also be a
	// preview.InvokeEndpointer, so that the edge can forward to functions
	// it did not start (faas/openfaas's Client is: the gateway's
	// /function/NAME). Nil means the embedded localfaas runtime, whose
	// OpenFaaS gateway API the daemon then serves under /system/ and
	// /function/; with another runtime those paths are not served.
	Runtime preview.FunctionRuntime
	// Assets is where the edge reads static files. Nil means an
	// fsassets store in home/assets.
	Assets preview.AssetStore
	// Routes is the edge's route store. Nil means an edge.JournalStore at
	// home/routes.json (a snapshot plus a journal: one change, one line).
	Routes edge.RouteStore
	// NoRegistry leaves out the embedded OCI registry (/v2/), for a
	// daemon whose builds push to another registry.
	NoRegistry bool
}

// Options configure the daemon; the zero value is the embedded stack with
// default settings.
type Options struct {
	// Providers replace the embedded parts; see Providers.
	Providers Providers
	// Logger receives the providers' logs; nil means slog.Default().
	Logger *slog.Logger
	// IdleAfter is the idle duration of previews whose glimpse.yaml does
	// not set idle.after; 0 means idle.DefaultAfter.
	IdleAfter time.Duration
	// MaxAwake caps how many previews are awake at once (0: no cap).
	MaxAwake int
	// WakeTimeout bounds how long a request waits for a sleeping function
	// to wake (0: edge.DefaultWakeTimeout).
	WakeTimeout time.Duration
	// WaitingPage shows browsers a self-reloading page while a function
	// wakes, instead of holding their request.
	WaitingPage bool
	// Limits bound what one client connection can hold (timeouts, sizes,
	// connections); see Limits and Stack.Server.
	Limits Limits
}

// Open starts the daemon's parts with state under home. Embedded parts
// keep their state there: the registry in home/registry, functions in
// home/functions, assets in home/assets, routes in home/routes.json.snap
// and .log (see edge.JournalStore); functions of the embedded runtime that
// were running when a previous daemon stopped are started again. Close
// stops what Open started (it does not close given providers other than
// the route store, which the edge closes). The idle controller runs only
// when RunIdle is called. A Providers.Runtime that cannot give invoke
// endpoints is InvalidArgument.
func Open(home string, opts *Options) (*Stack, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	prov := opts.Providers
	var upstreams preview.InvokeEndpointer
	if prov.Runtime != nil {
		var ok bool
		if upstreams, ok = prov.Runtime.(preview.InvokeEndpointer); !ok {
			return nil, preview.Errorf(preview.InvalidArgument, "the daemon's runtime cannot say where its functions answer requests, so the edge cannot forward to them (the runtime has no invoke endpoint)")
		}
	}
	password, err := localfaas.LoadOrCreatePassword(home)
	if err != nil {
		return nil, err
	}
	s := &Stack{
		limits:   opts.Limits.withDefaults(),
		Password: strings.TrimSpace(password),
		apiHosts: map[string]bool{"localhost": true, "127.0.0.1": true, "[::1]": true, "::1": true, "": true},
		Runtime:  prov.Runtime,
		Assets:   prov.Assets,

		idleDefault: idleDefault(opts.IdleAfter),
	}
	if !prov.NoRegistry {
		if s.Registry, err = embedregistry.New(filepath.Join(home, "registry"), nil); err != nil {
			return nil, fmt.Errorf("embedded registry: %w", err)
		}
	}
	if s.Runtime == nil {
		// The runtime drains a replaced process until the edge has no
		// request in flight to it (the edge is created below, before
		// any Apply).
		busy := func(addr string) bool { return s.Edge != nil && s.Edge.UpstreamBusy(addr) }
		if s.Local, err = localfaas.New(home, &localfaas.Options{Logger: log, Busy: busy}); err != nil {
			s.Close()
			return nil, fmt.Errorf("local runtime: %w", err)
		}
		s.Runtime, upstreams = s.Local, s.Local
	}
	if s.Assets == nil {
		if s.Assets, err = fsassets.New(filepath.Join(home, "assets"), nil); err != nil {
			s.Close()
			return nil, fmt.Errorf("asset store: %w", err)
		}
	}
	s.Metrics = prometheus.NewRegistry()
	s.steps = newStepMetrics(s.Metrics)
	s.history = &dashboard.History{}
	s.Edge, err = edge.New(edge.Options{
		Assets: s.Assets, Upstreams: upstreams, Routes: prov.Routes, StateFile: filepath.Join(home, "routes.json"), Logger: log,
		Waker: s.Runtime, WakeTimeout: opts.WakeTimeout, WaitingPage: opts.WaitingPage, Metrics: s.Metrics,
		IdleTimeout: s.limits.IdleTimeout, Limits: s.limits.edgeLimits(),
		// A client that reuses one connection for a preview host and then
		// for the daemon API still reaches the API.
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.ServeHTTP(w, r) }),
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("edge: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealth)
	if s.Registry != nil {
		mux.Handle("/v2/", loopbackWrites(s.Password, s.Registry.Handler()))
	}
	if s.Local != nil {
		gw := s.Local.GatewayHandler(s.Password)
		mux.Handle("/system/", gw)
		mux.Handle("/function/", gw)
	}
	mux.Handle("/glimpse/v1/", BasicAuth(s.Password, routeapi.Handler(s.Edge)))
	mux.Handle("GET /glimpse/v1/deploys/{app}/{pr}", BasicAuth(s.Password, http.HandlerFunc(s.serveDeploy)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics, promhttp.HandlerOpts{}))
	src := s.dashboardSource()
	s.Metrics.MustRegister(newPreviewCollector(src.List))
	mux.Handle("/", BasicAuth(s.Password, dashboard.New(src)))
	s.Idle = &idle.Controller{
		Runtime: s.Runtime, Activity: s.Edge, Gate: s.Edge,
		Policy:       idle.Policy{After: opts.IdleAfter, MaxAwake: opts.MaxAwake},
		DefaultAfter: opts.IdleAfter,
		Logger:       log, Metrics: idle.NewMetrics(s.Metrics),
	}
	s.api = limitAPI(mux, s.limits)
	return s, nil
}

// dashboardSource is what the dashboard at / shows: the previews of every
// owner over the daemon's runtime and edge, with wake (a scale to
// one) and sleep (a scale to zero through the edge's gate, which gives up
// when a request arrives meanwhile); per preview the last Up the daemon
// ran (TrackUp) and its function's logs (when the runtime is a
// preview.LogReader); delete (Down) and redeploy (TrackUp's redo).
func (s *Stack) dashboardSource() dashboard.Source {
	pl := &preview.Pipeline{Runtime: s.Runtime, Router: s.Edge, Owner: preview.AnyOwner}
	var logs func(context.Context, string, preview.LogOptions, func(preview.LogLine) error) error
	if lr, ok := s.Runtime.(preview.LogReader); ok {
		logs = lr.Logs
	}
	return dashboard.Source{
		History: s.history, Logs: logs, Delete: s.Down,
		List: func(ctx context.Context) ([]preview.Preview, error) {
			list, err := pl.List(ctx, "")
			return preview.DefaultIdle(list, s.idleDefault), err
		},
		Wake: func(ctx context.Context, fn string) error {
			_, err := s.Runtime.Scale(ctx, fn, 1)
			return err
		},
		Sleep: func(ctx context.Context, fn string) error {
			_, err := s.Edge.Sleep(ctx, fn, time.Now(), func(ctx context.Context) error {
				_, err := s.Runtime.Scale(ctx, fn, 0)
				return err
			})
			return err
		},
	}
}

// RunIdle runs the idle controller until ctx ends. Functions whose
// glimpse.yaml sets idle.after use that; the others Options.IdleAfter.
// The controller's interval is a quarter of the shortest idle duration in
// play (see idle.IntervalFor), so short idle.after values are honoured
// promptly.
func (s *Stack) RunIdle(ctx context.Context) error { return s.Idle.Run(ctx) }

// AddAPIHost makes requests for host (a listen address's host, say) reach
// the daemon API instead of the edge. Call it before serving.
func (s *Stack) AddAPIHost(host string) { s.apiHosts[preview.NormalizeHost(host)] = true }

// ServeHTTP sends requests for plain localhost (and hosts added with
// AddAPIHost) to the daemon API and every other host to the edge, which
// answers 404 for hosts without a route.
func (s *Stack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.apiHosts[preview.NormalizeHost(r.Host)] {
		s.api.ServeHTTP(w, r)
		return
	}
	s.Edge.ServeHTTP(w, r)
}

// Close closes the edge's taken-over client connections (and its route
// store), stops every process of the embedded runtime and releases the
// embedded registry. Call it after the HTTP
// server's Shutdown (which does not wait for taken-over connections). It
// is safe to call on a partly opened stack.
func (s *Stack) Close() error {
	var errs []error
	if s.Edge != nil {
		errs = append(errs, s.Edge.Close())
	}
	if s.Local != nil {
		errs = append(errs, s.Local.Close())
	}
	if s.Registry != nil {
		errs = append(errs, s.Registry.Close())
	}
	return errors.Join(errs...)
}

// loopbackWrites lets anyone read through next but only clients on this
// machine that give the daemon API's credentials (user admin, password)
// write (push, delete): the embedded registry has no accounts of its own, a
// daemon listening on a non-loopback address must not take pushes from the
// network, and a function (which runs on this machine, sandboxed or not)
// must not replace the images of other previews.
func loopbackWrites(password string, next http.Handler) http.Handler {
	authed := BasicAuth(password, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				http.Error(w, "the local stack's registry accepts pushes and deletes only from this machine", http.StatusForbidden)
				return
			}
			authed.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// BasicAuth wraps next so that it requires user admin and password.
func BasicAuth(password string, next http.Handler) http.Handler {
	return basicauth.Require(password, "unauthorized: user admin, password in $GLIMPSE_HOME/gateway-password", next)
}

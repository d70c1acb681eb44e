package daemon

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/internal/limits"
)

// Defaults of Limits not shared with the edge.
const (
	// DefaultIdleTimeout is the default of Limits.IdleTimeout.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxConns is the default of Limits.MaxConns: far below the
	// open-file limit Go raises itself to (usually 2^19 or more on
	// Linux), far above what a development machine's browsers and CI
	// jobs open.
	DefaultMaxConns = 4096
)

// Limits bound what a client can make the daemon hold, on every
// connection its listener accepts: preview hosts (the edge, including the
// connections it takes over) and the daemon API (registry /v2/, OpenFaaS
// gateway /system/ and /function/, route API /glimpse/v1/) alike. The
// zero value of each field means its default.
//
// There is deliberately no timeout on a whole request or response
// (net/http's ReadTimeout and WriteTimeout): it would cut off a large
// image push or a long-running stream. A body is bounded per read instead.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's header block, from its
	// first byte. Default edge.DefaultReadHeaderTimeout (10s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request. Default DefaultIdleTimeout (120s).
	IdleTimeout time.Duration
	// BodyReadTimeout bounds each wait for more of a request body: a
	// client that sends nothing for this long is answered 408 (or
	// disconnected). Default edge.DefaultBodyReadTimeout (60s).
	BodyReadTimeout time.Duration
	// MaxHeaderBytes caps a request's header block (431 beyond). Default
	// edge.DefaultMaxHeaderBytes (1 MiB).
	MaxHeaderBytes int
	// MaxFunctionBodyBytes caps the body of a request to a function,
	// through a preview host and through the gateway's /function/ path
	// alike (413 beyond); negative means no limit. Default
	// edge.DefaultMaxRequestBodyBytes (100 MiB). Registry pushes (from
	// this machine only) are not capped: image layers can be larger; the
	// JSON APIs cap their bodies at 1 MiB themselves.
	MaxFunctionBodyBytes int64
	// MaxConns caps the connections open at once; at the cap new ones
	// wait in the listen backlog until one closes. Negative means no cap.
	// Default DefaultMaxConns.
	MaxConns int
}

// withDefaults returns l with its zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = edge.DefaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.BodyReadTimeout <= 0 {
		l.BodyReadTimeout = edge.DefaultBodyReadTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = edge.DefaultMaxHeaderBytes
	}
	if l.MaxFunctionBodyBytes == 0 {
		l.MaxFunctionBodyBytes = edge.DefaultMaxRequestBodyBytes
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// edgeLimits are the limits the edge applies itself.
func (l Limits) edgeLimits() edge.Limits {
	return edge.Limits{
		ReadHeaderTimeout:   l.ReadHeaderTimeout,
		BodyReadTimeout:     l.BodyReadTimeout,
		MaxHeaderBytes:      l.MaxHeaderBytes,
		MaxRequestBodyBytes: l.MaxFunctionBodyBytes,
	}
}

// limitAPI wraps the daemon API so that request bodies are read with
// l.BodyReadTimeout per read, and /function/ bodies are capped at
// l.MaxFunctionBodyBytes, as through preview hosts.
func limitAPI(api http.Handler, l Limits) http.Handler {
	fn := limits.Handler(api, l.BodyReadTimeout, l.MaxFunctionBodyBytes)
	other := limits.Handler(api, l.BodyReadTimeout, -1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/function/") {
			fn.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	})
}

// Server returns an http.Server serving the stack with its Limits: header
// and idle timeouts and the header cap (the edge applies the same on the
// connections it takes over; bodies are bounded by the handlers). Serve it
// on a listener from Listener; after Shutdown, Close the stack (Shutdown
// does not wait for taken-over connections). The caller may set ErrorLog
// and the like.
func (s *Stack) Server() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    s.limits.MaxHeaderBytes,
	}
}

// Listener returns ln capped at Limits.MaxConns connections open at once
// (see limits.Listener).
func (s *Stack) Listener(ln net.Listener) net.Listener {
	return limits.Listener(ln, s.limits.MaxConns)
}

package edge

import (
	"net/http"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/internal/limits"
)

// Defaults of Limits.
const (
	// DefaultReadHeaderTimeout is the default of Limits.ReadHeaderTimeout,
	// the value glimpse serve gives net/http's server too.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyReadTimeout is the default of Limits.BodyReadTimeout,
	// nginx's client_body_timeout.
	DefaultBodyReadTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes is the default of Limits.MaxHeaderBytes,
	// net/http's http.DefaultMaxHeaderBytes.
	DefaultMaxHeaderBytes = http.DefaultMaxHeaderBytes
	// DefaultMaxRequestBodyBytes is the default of
	// Limits.MaxRequestBodyBytes: 100 MiB. The OpenFaaS gateway sets no
	// limit of its own (it streams bodies); 100 MB is what common edge
	// proxies (Cloudflare's default plans) accept, far above the 1 MiB
	// default of nginx and ingress-nginx, which breaks uploads to
	// functions, and it still refuses a runaway upload long before it
	// costs the function gigabytes.
	DefaultMaxRequestBodyBytes = 100 << 20
)

// Limits bound what one client can make the edge hold. They apply to the
// connections the edge takes over (package internal/h1), where net/http's
// server timeouts no longer do, and to the requests the edge proxies to
// functions on any connection. The zero value of each field means its
// default; Options.IdleTimeout is the idle limit between requests.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's header block on a
	// taken-over connection, from its first byte (the wait for that byte
	// is Options.IdleTimeout). A client too slow (a slowloris) is answered
	// 408 and the connection closed. Default DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds each wait for more of a request body sent to
	// a function: a client that stalls this long is answered 408 (or, if
	// the function has begun its answer, disconnected). It is a timeout
	// per read, not per body, so long uploads that keep moving are never
	// cut off. Default DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// MaxHeaderBytes caps a request's header block on a taken-over
	// connection; larger ones are answered 431. Default
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxRequestBodyBytes caps the body of a request to a function: a
	// larger declared Content-Length is answered 413 before the function
	// is woken or contacted, and a chunked body that grows past it is cut
	// off (413 when the function has not answered yet). Bodies stream
	// through the edge either way; nothing is buffered whole. Negative
	// means no limit. Default DefaultMaxRequestBodyBytes.
	MaxRequestBodyBytes int64
}

// withDefaults returns l with its zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyReadTimeout <= 0 {
		l.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxRequestBodyBytes == 0 {
		l.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	return l
}

// bodyTooLarge reports whether r declares a body larger than the limit.
func (e *Edge) bodyTooLarge(r *http.Request) bool {
	max := e.opts.Limits.MaxRequestBodyBytes
	return max >= 0 && r.ContentLength > max
}

// refuseBody answers 413 for a body over the limit.
func (e *Edge) refuseBody(w http.ResponseWriter) {
	w.Header()["Connection"] = hdrClose
	h1.TextError(w, http.StatusRequestEntityTooLarge, limits.TooLargeText(e.opts.Limits.MaxRequestBodyBytes))
}

var hdrClose = []string{"close"}

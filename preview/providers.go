package preview

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// OpenOptions are passed to every provider opener.
type OpenOptions struct {
	// Home is the Glimpse state directory (GLIMPSE_HOME).
	Home string
	// Getenv reads secrets and settings; nil means os.Getenv. Secrets come
	// from here, never from the URL.
	Getenv func(string) string
	// Logger receives provider logs; nil means slog.Default().
	Logger *slog.Logger
}

// Env returns o.Getenv(key), or os.Getenv(key) when o or o.Getenv is nil.
func (o *OpenOptions) Env(key string) string {
	if o == nil || o.Getenv == nil {
		return os.Getenv(key)
	}
	return o.Getenv(key)
}

// Log returns o.Logger or slog.Default().
func (o *OpenOptions) Log() *slog.Logger {
	if o == nil || o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// Opener opens a provider of type T from a URL whose scheme it registered.
// u is never nil; o is never nil.
type Opener[T any] func(ctx context.Context, u *url.URL, o *OpenOptions) (T, error)

// Mux maps URL schemes to openers of one kind of provider. Providers
// register in init(); registering a scheme twice panics (a programming
// error, found at start-up).
type Mux[T any] struct {
	kind     string
	mu       sync.RWMutex
	openers  map[string]Opener[T]
	fallback Opener[T]
}

// NewMux returns an empty mux for providers of the named kind ("builder").
func NewMux[T any](kind string) *Mux[T] {
	return &Mux[T]{kind: kind, openers: map[string]Opener[T]{}}
}

// Register adds scheme. It panics when scheme is already registered.
func (m *Mux[T]) Register(scheme string, fn Opener[T]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.openers[scheme]; dup {
		panic(fmt.Sprintf("preview: %s scheme %q registered twice", m.kind, scheme))
	}
	m.openers[scheme] = fn
}

// SetFallback makes Open hand a URL whose scheme nobody registered to fn
// (cmd/glimpse sets package plugin's openers, which start the executable
// glimpse-plugin-<scheme>). When fn answers NotFound (no such plugin),
// Open reports the unknown scheme as it does without a fallback, with
// fn's reason appended. Call it before any Open.
func (m *Mux[T]) SetFallback(fn Opener[T]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fallback = fn
}

// Schemes returns the registered schemes, sorted.
func (m *Mux[T]) Schemes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.openers))
	for s := range m.openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open parses rawURL and opens the provider registered for its scheme. An
// unparsable URL or unknown scheme is an InvalidArgument error that lists
// the known schemes.
func (m *Mux[T]) Open(ctx context.Context, rawURL string, o *OpenOptions) (T, error) {
	var zero T
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return zero, Errorf(InvalidArgument, "%s %q: not a URL such as %s://...", m.kind, rawURL, firstOr(m.Schemes(), "scheme"))
	}
	m.mu.RLock()
	fn, ok := m.openers[u.Scheme]
	fallback := m.fallback
	m.mu.RUnlock()
	if o == nil {
		o = &OpenOptions{}
	}
	if !ok && fallback != nil {
		p, err := fallback(ctx, u, o)
		if err == nil {
			return p, nil
		}
		if CodeOf(err) != NotFound {
			return zero, WithCode(codeOr(err, Unavailable), fmt.Errorf("%s %s: %w", m.kind, Redact(u), err))
		}
		return zero, Errorf(InvalidArgument, "%s %q: unknown scheme %q (known: %s); %v", m.kind, rawURL, u.Scheme, strings.Join(m.Schemes(), ", "), err)
	}
	if !ok {
		return zero, Errorf(InvalidArgument, "%s %q: unknown scheme %q (known: %s)", m.kind, rawURL, u.Scheme, strings.Join(m.Schemes(), ", "))
	}
	p, err := fn(ctx, u, o)
	if err != nil {
		return zero, WithCode(codeOr(err, InvalidArgument), fmt.Errorf("%s %s: %w", m.kind, Redact(u), err))
	}
	return p, nil
}

func codeOr(err error, c Code) Code {
	if got := CodeOf(err); got != Unknown {
		return got
	}
	return c
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// Redact returns u as a string with any user info removed.
func Redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// QueryParams returns u's query, or an InvalidArgument error naming the
// first parameter not in allowed. Providers call it first in their opener.
func QueryParams(u *url.URL, allowed ...string) (url.Values, error) {
	q := u.Query()
	for k := range q {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			if len(allowed) == 0 {
				return nil, Errorf(InvalidArgument, "unknown query parameter %q (this provider takes none)", k)
			}
			return nil, Errorf(InvalidArgument, "unknown query parameter %q (known: %s)", k, strings.Join(allowed, ", "))
		}
	}
	if u.User != nil {
		return nil, Errorf(InvalidArgument, "credentials do not belong in the URL; use the environment")
	}
	return q, nil
}

// The provider registries, one per interface.
var (
	Builders     = NewMux[Builder]("builder")
	Registries   = NewMux[Registry]("registry")
	Runtimes     = NewMux[FunctionRuntime]("runtime")
	AssetStores  = NewMux[AssetStore]("assets")
	Routers      = NewMux[Router]("router")
	DNSProviders = NewMux[DNS]("dns")
	// CDNs open CDNPurgers (Pipeline.CDN), "cloudflare://ZONE".
	CDNs = NewMux[CDNPurger]("cdn")
)

package plugin

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// URLEnv is the environment variable through which the host hands a plugin
// the provider URL that named it.
const URLEnv = "GLIMPSE_PLUGIN_URL"

// ConfigURL returns the provider URL the host started this plugin for
// ("pdns://127.0.0.1:8081/example.com?server=localhost"), or nil when the
// plugin was started without one. A plugin's main reads its settings from
// it and its secrets from the environment, then calls Serve.
func ConfigURL() (*url.URL, error) {
	raw := os.Getenv(URLEnv)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s is not a URL: %v", URLEnv, err)
	}
	return u, nil
}

// clients are the plugin processes opened by URL, one per distinct URL,
// shared by every opener of this host.
var clients = struct {
	sync.Mutex
	m map[string]*Client
}{m: map[string]*Client{}}

// clientFor returns the Client serving u: the plugin for u's scheme, found
// in o.Home's plugin directory (default DefaultDir) and then on PATH,
// started with u as its URL.
func clientFor(u *url.URL, o *preview.OpenOptions) (*Client, error) {
	f := Finder{}
	if o != nil && o.Home != "" {
		f.Dir = filepath.Join(o.Home, "plugins")
	}
	path, err := f.Lookup(u.Scheme)
	if err != nil {
		return nil, err
	}
	key := path + "\x00" + u.String()
	clients.Lock()
	defer clients.Unlock()
	if c, ok := clients.m[key]; ok {
		return c, nil
	}
	c := Open(path, &Options{URL: u.String()})
	clients.m[key] = c
	return c, nil
}

func openKind[T any](ctx context.Context, u *url.URL, o *preview.OpenOptions, get func(*Client, context.Context) (T, error)) (T, error) {
	c, err := clientFor(u, o)
	if err != nil {
		var zero T
		return zero, err
	}
	return get(c, ctx)
}

// The openers below have the preview.Opener signature, so a provider mux
// can fall back to them for a scheme nobody registered: each finds the
// plugin for u's scheme, starts it (once per URL) and returns its provider
// of that kind; a plugin that does not serve the kind is Unimplemented, a
// scheme without a plugin NotFound.

// OpenBuilder opens the Builder of the plugin for u's scheme.
func OpenBuilder(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Builder, error) {
	return openKind(ctx, u, o, (*Client).Builder)
}

// OpenRegistry opens the Registry of the plugin for u's scheme.
func OpenRegistry(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Registry, error) {
	return openKind(ctx, u, o, (*Client).Registry)
}

// OpenRuntime opens the FunctionRuntime of the plugin for u's scheme.
func OpenRuntime(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.FunctionRuntime, error) {
	return openKind(ctx, u, o, (*Client).Runtime)
}

// OpenAssets opens the AssetStore of the plugin for u's scheme.
func OpenAssets(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.AssetStore, error) {
	return openKind(ctx, u, o, (*Client).Assets)
}

// OpenRouter opens the Router of the plugin for u's scheme.
func OpenRouter(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
	return openKind(ctx, u, o, (*Client).Router)
}

// OpenDNS opens the DNS provider of the plugin for u's scheme.
func OpenDNS(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.DNS, error) {
	return openKind(ctx, u, o, (*Client).DNS)
}

// OpenCDN opens the CDN purger of the plugin for u's scheme.
func OpenCDN(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.CDNPurger, error) {
	return openKind(ctx, u, o, (*Client).CDN)
}

var (
	_ preview.Opener[preview.DNS]     = OpenDNS
	_ preview.Opener[preview.Builder] = OpenBuilder
)

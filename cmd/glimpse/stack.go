package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	// Providers register their URL schemes.
	_ "github.com/glimpse-dev/glimpse/builder/dockerbuild"
	_ "github.com/glimpse-dev/glimpse/builder/kobuild"
	_ "github.com/glimpse-dev/glimpse/cdn/cloudflarecdn"
	_ "github.com/glimpse-dev/glimpse/cdn/fsassets"
	_ "github.com/glimpse-dev/glimpse/cdn/s3assets"
	_ "github.com/glimpse-dev/glimpse/dns/cloudflaredns"
	_ "github.com/glimpse-dev/glimpse/dns/rfc2136dns"
	_ "github.com/glimpse-dev/glimpse/faas/openfaas"
	_ "github.com/glimpse-dev/glimpse/ingress/routeapi"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/db/postgresdb"
	"github.com/glimpse-dev/glimpse/preview"
)

// openPipeline opens the providers of p. Empty provider URLs default to the
// daemon started by `glimpse serve`, which must then be running: its
// registry, its edge's route API, and the runtime and asset store it was
// configured with (its embedded ones when none).
func openPipeline(ctx context.Context, home string, p config.Providers) (*preview.Pipeline, error) {
	needLocal := p.Registry == "" || p.Runtime == "" || p.Router == "" || p.Assets == ""
	localRegistry := p.Registry == ""
	opts := &preview.OpenOptions{Home: home}
	pl := &preview.Pipeline{Owner: p.Owner, BaseDomain: p.Domain}
	if needLocal {
		info, err := findServe(ctx, home)
		if err != nil {
			return nil, err
		}
		if localRegistry && info.NoRegistry {
			return nil, preview.Errorf(preview.FailedPrecondition, "the daemon at %s serves no registry (registry: none): set providers.registry in glimpse.yaml", info.Addr)
		}
		def(&p.Runtime, info.Runtime)
		def(&p.Assets, info.Assets)
		getenv, err := localEnv(home, localRegistry, info.Runtime == "")
		if err != nil {
			return nil, err
		}
		opts.Getenv = getenv
		local := "127.0.0.1"
		_, port, _ := net.SplitHostPort(info.Addr)
		addr := net.JoinHostPort(local, port)
		def(&p.Builder, "ko://")
		def(&p.Registry, "oci://"+addr)
		def(&p.Runtime, "openfaas://"+addr)
		def(&p.Assets, "fs://"+filepath.ToSlash(filepath.Join(home, "assets")))
		def(&p.Router, "edge://"+addr)
		if p.Domain == "" {
			pl.BaseDomain = "localhost"
			pl.URLFor = func(host string) string { return "http://" + net.JoinHostPort(host, port) + "/" }
		}
	}
	def(&p.Builder, "ko://")
	if pl.BaseDomain == "" {
		pl.BaseDomain = "localhost"
	}
	var err error
	if pl.Builder, err = preview.Builders.Open(ctx, p.Builder, opts); err != nil {
		return nil, err
	}
	if pl.Registry, err = preview.Registries.Open(ctx, p.Registry, opts); err != nil {
		return nil, err
	}
	if pl.Runtime, err = preview.Runtimes.Open(ctx, p.Runtime, opts); err != nil {
		return nil, err
	}
	if pl.Assets, err = preview.AssetStores.Open(ctx, p.Assets, opts); err != nil {
		return nil, err
	}
	if pl.Router, err = preview.Routers.Open(ctx, p.Router, opts); err != nil {
		return nil, err
	}
	if p.DNS != "" {
		if pl.DNS, err = preview.DNSProviders.Open(ctx, p.DNS, opts); err != nil {
			return nil, err
		}
	}
	if p.CDN != "" {
		if pl.CDN, err = preview.CDNs.Open(ctx, p.CDN, opts); err != nil {
			return nil, err
		}
	}
	if pl.Database, err = openDatabase(ctx, home, p.Database, opts); err != nil {
		return nil, err
	}
	return pl, nil
}

// passwordKeyFile is the file under the home that keeps the key from
// which the database provider derives the preview roles' passwords when
// the environment gives none (postgresdb.EnvPasswordKey): a stable key
// makes the password, and so the function's secret, the same on every
// up, so an unchanged up redeploys nothing.
const passwordKeyFile = "database-password-key"

// openDatabase opens the database provider of rawURL, or of
// GLIMPSE_POSTGRES_URL when rawURL is empty and that is set; nil when
// neither. Its password key comes from the environment or, failing that,
// from home (created once, mode 0600).
func openDatabase(ctx context.Context, home, rawURL string, opts *preview.OpenOptions) (preview.Database, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if rawURL == "" {
		if getenv(postgresdb.EnvURL) == "" {
			return nil, nil
		}
		rawURL = postgresdb.Scheme + ":///"
	}
	key := getenv(postgresdb.EnvPasswordKey)
	if key == "" {
		var err error
		if key, err = loadOrCreateKey(filepath.Join(home, passwordKeyFile)); err != nil {
			return nil, err
		}
	}
	o := *opts
	o.Getenv = func(k string) string {
		if k == postgresdb.EnvPasswordKey {
			return key
		}
		return getenv(k)
	}
	return preview.DatabaseProviders.Open(ctx, rawURL, &o)
}

// loadOrCreateKey returns the hex key in p, creating it (32 random bytes,
// mode 0600) when missing. Concurrent first calls may race; the file is
// written atomically and every caller then reads the one that won.
func loadOrCreateKey(p string) (string, error) {
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	rand.Read(buf)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", preview.WithCode(preview.Internal, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.WriteString(hex.EncodeToString(buf) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", preview.Errorf(preview.Internal, "database password key %s: %v", p, err)
	}
	b, err := os.ReadFile(p)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "", preview.Errorf(preview.Internal, "database password key %s cannot be read", p)
	}
	return strings.TrimSpace(string(b)), nil
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

package main

import (
	"context"
	"net"
	"path/filepath"

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
	return pl, nil
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

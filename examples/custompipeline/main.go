// Command custompipeline shows how a platform team composes Glimpse in its
// own Go tooling: it opens each provider by URL (the same URLs glimpse.yaml
// takes; secrets come from the environment, as for the CLI), puts them in a
// preview.Pipeline, prints progress its own way, and brings a preview up or
// down.
//
//	go run ./examples/custompipeline -dir examples/hello -pr 42 \
//	    -registry oci://registry.internal/previews \
//	    -runtime openfaas://gateway.openfaas:8080 \
//	    -assets fs:///srv/glimpse/assets \
//	    -router edge://edge.internal:8080 -domain previews.example.com
//
// Add -down to take the preview down instead. Every provider flag is
// required: this program has no embedded defaults (the glimpse CLI does).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	_ "github.com/glimpse-dev/glimpse/builder/dockerbuild" // docker://
	_ "github.com/glimpse-dev/glimpse/builder/kobuild"     // ko://
	_ "github.com/glimpse-dev/glimpse/cdn/fsassets"        // fs://
	_ "github.com/glimpse-dev/glimpse/cdn/s3assets"        // s3://
	"github.com/glimpse-dev/glimpse/config"
	_ "github.com/glimpse-dev/glimpse/faas/openfaas" // openfaas://
	_ "github.com/glimpse-dev/glimpse/ingress/edge"  // edge://
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry" // oci://
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "custompipeline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("custompipeline", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		dir      = fs.String("dir", ".", "app directory (with glimpse.yaml)")
		pr       = fs.Int("pr", 0, "pull request number")
		commit   = fs.String("commit", "", "commit SHA")
		down     = fs.Bool("down", false, "take the preview down")
		builder  = fs.String("builder", "ko://", "builder URL")
		registry = fs.String("registry", "", "registry URL (oci://host/path)")
		runtime  = fs.String("runtime", "", "function runtime URL (openfaas://host:port)")
		assets   = fs.String("assets", "", "asset store URL (fs:///dir)")
		router   = fs.String("router", "", "router URL (edge://host:port)")
		domain   = fs.String("domain", "localhost", "base domain of preview hosts")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	for name, v := range map[string]string{"-registry": *registry, "-runtime": *runtime, "-assets": *assets, "-router": *router} {
		if v == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	file, err := config.Load(*dir)
	if err != nil {
		return err
	}
	pl := &preview.Pipeline{
		BaseDomain: *domain,
		OnEvent: func(e preview.Event) {
			if e.State != preview.EventStarted && e.State != preview.EventLog {
				fmt.Fprintf(out, "[%s] %-8s %-7s %s\n", time.Now().Format("15:04:05"), e.Step, e.State, e.Message)
			}
		},
	}
	if pl.Builder, err = preview.Builders.Open(ctx, *builder, nil); err != nil {
		return err
	}
	if pl.Registry, err = preview.Registries.Open(ctx, *registry, nil); err != nil {
		return err
	}
	if pl.Runtime, err = preview.Runtimes.Open(ctx, *runtime, nil); err != nil {
		return err
	}
	if pl.Assets, err = preview.AssetStores.Open(ctx, *assets, nil); err != nil {
		return err
	}
	if pl.Router, err = preview.Routers.Open(ctx, *router, nil); err != nil {
		return err
	}
	if *down {
		return pl.Down(ctx, file.App, *pr)
	}
	if *commit == "" {
		*commit = fmt.Sprintf("%x", time.Now().Unix())
	}
	pv, err := pl.Up(ctx, preview.UpRequest{Dir: *dir, Spec: file.Spec, PR: *pr, Commit: *commit})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, pv.URL)
	return nil
}

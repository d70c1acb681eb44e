// Command testplugin is the plugin package's test plugin: it serves the
// in-memory reference providers of previewtest, and its DNS has hooks the
// lifecycle tests use (a host whose first label is "crash" ends the
// process mid-call, "block" waits for the call's context to end and then
// records "seen-deadline" when the context had a deadline, "seen-cancel"
// otherwise, "code-<Name>" fails Remove with that
// code, the selector {"test/pid": ""} lists the process id and {"test/url": ""}
// the URL the host started it for).
package main

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/glimpse-dev/glimpse/plugin"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func main() {
	reg := previewtest.NewMemRegistry()
	plugin.Serve(plugin.Providers{
		Version:  "v0.0.1-test",
		Builder:  &previewtest.MemBuilder{Registry: reg},
		Registry: reg,
		Runtime:  previewtest.NewMemRuntime(),
		Assets:   previewtest.NewMemAssets(),
		Router:   previewtest.NewMemRouter(),
		DNS:      hookDNS{previewtest.NewMemDNS()},
	})
}

type hookDNS struct{ *previewtest.MemDNS }

func (d hookDNS) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	first, rest, _ := strings.Cut(host, ".")
	switch first {
	case "crash":
		os.Exit(7)
	case "block":
		<-ctx.Done()
		seen := "seen-cancel"
		if _, ok := ctx.Deadline(); ok {
			seen = "seen-deadline"
		}
		_ = d.MemDNS.Ensure(context.Background(), seen+"."+rest, labels)
		return ctx.Err()
	}
	return d.MemDNS.Ensure(ctx, host, labels)
}

func (d hookDNS) Remove(ctx context.Context, host string) error {
	first, _, _ := strings.Cut(host, ".")
	if name, ok := strings.CutPrefix(first, "code-"); ok {
		if code, ok := preview.ParseCode(name); ok {
			return preview.Errorf(code, "test failure %s", name)
		}
	}
	return d.MemDNS.Remove(ctx, host)
}

func (d hookDNS) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	if _, ok := selector["test/pid"]; ok {
		return []string{strconv.Itoa(os.Getpid())}, nil
	}
	if _, ok := selector["test/url"]; ok {
		u, err := plugin.ConfigURL()
		if err != nil || u == nil {
			return nil, err
		}
		return []string{u.String()}, nil
	}
	return d.MemDNS.Hosts(ctx, selector)
}

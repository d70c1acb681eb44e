// Package daemontest opens an embedded daemon for tests: the whole local
// stack under a temporary directory, served over HTTP by an httptest
// server, with a Pipeline of its in-process providers and the ko builder
// pushing to its registry (with the daemon's credentials). Everything is
// closed when the test ends.
package daemontest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	_ "github.com/glimpse-dev/glimpse/builder/kobuild" // ko://
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry" // oci://
)

// Open starts the daemon with opts (nil: defaults, its logs discarded)
// and returns it, a Pipeline over it whose previews belong to owner ("":
// the default owner) on base domain localhost, and its server.
func Open(tb testing.TB, owner string, opts *daemon.Options) (*daemon.Stack, *preview.Pipeline, *httptest.Server) {
	tb.Helper()
	if opts == nil {
		opts = &daemon.Options{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := daemon.Open(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(st)
	tb.Cleanup(func() { srv.Close(); st.Close() })
	ctx := context.Background()
	creds := &preview.OpenOptions{Getenv: st.ClientEnv} // pushes need the daemon's credentials
	b, err := preview.Builders.Open(ctx, "ko://", creds)
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := preview.Registries.Open(ctx, "oci://"+srv.Listener.Addr().String(), creds)
	if err != nil {
		tb.Fatal(err)
	}
	pl := &preview.Pipeline{
		Builder: b, Registry: reg, Runtime: st.Runtime, Assets: st.Assets, Router: st.Edge,
		BaseDomain: "localhost", Owner: owner,
	}
	return st, pl, srv
}

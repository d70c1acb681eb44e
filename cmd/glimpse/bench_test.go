package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
)

// inProcessStack runs the local stack in this process on a loopback port
// and returns a Pipeline opened the way the CLI opens it.
func inProcessStack(tb testing.TB) (*preview.Pipeline, string) {
	tb.Helper()
	_, pl, home := inProcessDaemon(tb)
	return pl, home
}

// inProcessDaemon is inProcessStack that also returns the daemon.
func inProcessDaemon(tb testing.TB) (*daemon.Stack, *preview.Pipeline, string) {
	tb.Helper()
	home := tb.TempDir()
	st, err := daemon.Open(home, &daemon.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: st}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close(); st.Close() })
	if err := writeServeInfo(home, serveInfo{Addr: ln.Addr().String(), PID: os.Getpid()}); err != nil {
		tb.Fatal(err)
	}
	pl, err := openPipeline(context.Background(), home, config.Providers{})
	if err != nil {
		tb.Fatal(err)
	}
	return st, pl, home
}

// copyApp copies examples/hello into a temporary directory that the
// benchmark may change.

func upOnce(b *testing.B, pl *preview.Pipeline, dir string, pr int, commit string) preview.Preview {
	f, err := config.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	pv, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: f.Spec, PR: pr, Commit: commit})
	if err != nil {
		b.Fatal(err)
	}
	return pv
}

// BenchmarkUp measures Pipeline.Up for examples/hello on the local stack,
// as the CLI runs it (client providers over HTTP to the daemon):
//   - cold: the function source changed, so a build, push, deploy and
//     upload run (Go's build cache is warm, as on a developer machine);
//   - unchanged: the same commit again: nothing built, uploaded or deployed;
//   - one-asset-changed: one static file differs: one blob uploaded, the
//     route switched, nothing built or deployed.
func BenchmarkUp(b *testing.B) {
	pl, _ := inProcessStack(b)
	dir := testapp.Copy(b, "../../examples/hello")
	main := filepath.Join(dir, "function", "main.go")
	orig, _ := os.ReadFile(main)

	b.Run("cold", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			os.WriteFile(main, append(orig, []byte(fmt.Sprintf("\nvar benchRun = %d\n", i))...), 0o644)
			b.StartTimer()
			upOnce(b, pl, dir, 1, fmt.Sprintf("c01d%07d", i))
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		upOnce(b, pl, dir, 2, "feed0001")
		for b.Loop() {
			upOnce(b, pl, dir, 2, "feed0001")
		}
	})
	b.Run("one-asset-changed", func(b *testing.B) {
		upOnce(b, pl, dir, 3, "a55e7001")
		css := filepath.Join(dir, "public", "style.css")
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			os.WriteFile(css, []byte(fmt.Sprintf("body{margin:%dpx}\n", i)), 0o644)
			b.StartTimer()
			upOnce(b, pl, dir, 3, "a55e7001")
		}
	})
}

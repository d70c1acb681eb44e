package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
)

// writeSleepingPreviews writes the state of n previews scaled to zero into
// home, in the formats faas/localfaas (functions.json) and ingress/edge
// (routes.json) persist, as a daemon that ran them would have left it.
func writeSleepingPreviews(tb testing.TB, home string, n int) {
	tb.Helper()
	type fn struct {
		preview.Function
		Replicas  int       `json:"replicas"`
		Digest    string    `json:"digest"`
		CreatedAt time.Time `json:"createdAt"`
	}
	fns := make([]fn, n)
	routes := make([]preview.Route, n)
	digest := "sha256:" + fmt.Sprintf("%064x", 1)
	for i := range fns {
		t := preview.Target{App: "app", PR: i + 1, Commit: fmt.Sprintf("%040x", i)}
		labels := preview.OwnerLabels("", t).With(preview.LabelSourceHash, fmt.Sprintf("%032x", i))
		name := preview.FunctionName(t.App, t.PR)
		fns[i] = fn{Function: preview.Function{
			Name: name, Image: "127.0.0.1:5000/app@" + digest, Labels: labels,
			Env:         map[string]string{"GLIMPSE_APP": t.App, "GLIMPSE_PR": fmt.Sprint(t.PR), "GLIMPSE_COMMIT": t.Commit},
			Annotations: map[string]string{"glimpse.dev/routes": "/graphql", "glimpse.dev/idle-after": "15m"},
		}, Replicas: 0, Digest: digest, CreatedAt: time.Now()}
		routes[i] = preview.Route{Host: preview.Host(t.App, t.PR, "localhost"), AssetPrefix: preview.AssetPrefix(t.App, t.PR) + "/" + t.ShortCommit(),
			Function: name, FunctionPaths: []string{"/graphql"}, Labels: labels}
	}
	write := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	write("functions.json", map[string]any{"version": 1, "functions": fns})
	write("routes.json", map[string]any{"version": 1, "routes": routes})
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDaemonMemoryPerSleepingPreview measures the daemon's live heap
// per preview scaled to zero: the runtime's function record, the edge's
// route and its activity entry (every preview has had a request). It opens
// a stack over the state of 10,000 sleeping previews and reports the heap
// growth divided by 10,000 as B/preview.
func BenchmarkDaemonMemoryPerSleepingPreview(b *testing.B) {
	const n = 10000
	for b.Loop() {
		b.StopTimer()
		home := b.TempDir()
		writeSleepingPreviews(b, home, n)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		empty, err := daemon.Open(b.TempDir(), &daemon.Options{Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		before := heap()
		b.StartTimer()
		st, err := daemon.Open(home, &daemon.Options{Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		list, err := st.Runtime.List(context.Background(), nil)
		if err != nil || len(list) != n {
			b.Fatalf("restored %d functions, %v", len(list), err)
		}
		for _, f := range list {
			// Creates the function's activity entry, as a request would.
			st.Edge.Sleep(context.Background(), f.Name, time.Now(), func(context.Context) error { return nil })
		}
		list = nil
		b.StopTimer()
		after := heap()
		b.ReportMetric(float64(after-before)/n, "B/preview")
		runtime.KeepAlive(st)
		runtime.KeepAlive(empty)
		st.Close()
		empty.Close()
		b.StartTimer()
	}
}

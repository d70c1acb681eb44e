package edge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// benchRoutes returns n routes shaped like the Pipeline's.
func benchRoutes(n int) []preview.Route {
	out := make([]preview.Route, n)
	for i := range out {
		t := preview.Target{App: "hello", PR: i + 1, Commit: fmt.Sprintf("%040x", i)}
		out[i] = preview.Route{
			Host: preview.Host("hello", i+1, "previews.example.com"), AssetPrefix: fmt.Sprintf("hello/pr-%d/1-%07x", i+1, i),
			Function: preview.FunctionName("hello", i+1), FunctionPaths: []string{"/graphql"},
			Labels: preview.OwnerLabels("default", t), Generation: 1, Served: 1, Version: fmt.Sprintf("%016x", i),
		}
	}
	return out
}

// BenchmarkRouteChange10k: one route change with 10,000 routes stored.
// "journal" is the JournalStore (bytes/op: what one change writes);
// "snapshot" is the baseline of rewriting the whole state file per change,
// as the edge did before the journal.
func BenchmarkRouteChange10k(b *testing.B) {
	routes := benchRoutes(10000)
	b.Run("journal", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "routes.json")
		if err := writeState(path, append([]preview.Route(nil), routes...)); err != nil {
			b.Fatal(err)
		}
		e, err := New(Options{StateFile: path})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		ctx := context.Background()
		r := routes[42]
		var written int64
		for b.Loop() {
			before := fileSize(path) + fileSize(path+".log")
			cur, _ := e.Route(ctx, r.Host)
			r.Version = cur.Version
			r.Generation++
			if _, err := e.SetRoute(ctx, r); err != nil {
				b.Fatal(err)
			}
			if d := fileSize(path) + fileSize(path+".log") - before; d > 0 {
				written += d
			}
		}
		b.ReportMetric(float64(written)/float64(b.N), "bytes/op")
	})
	b.Run("snapshot", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "routes.json")
		for b.Loop() {
			if err := writeState(path, append([]preview.Route(nil), routes...)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(fileSize(path)), "bytes/op")
	})
}

// BenchmarkOpen10k: New with 10,000 stored routes, from a snapshot, and
// from a snapshot plus a journal of 1,000 changes.
func BenchmarkOpen10k(b *testing.B) {
	routes := benchRoutes(10000)
	for _, journal := range []int{0, 1000} {
		b.Run(fmt.Sprintf("journal-%d", journal), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "routes.json")
			if err := writeState(path, append([]preview.Route(nil), routes...)); err != nil {
				b.Fatal(err)
			}
			s, err := OpenJournalStore(path)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < journal; i++ {
				s.Put(routes[i%len(routes)])
			}
			s.Close()
			for b.Loop() {
				e, err := New(Options{StateFile: path})
				if err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
		})
	}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// Static requests count as activity of their host (one Activity entry
// with Host and LastActivity), so a static-only preview is seen in use;
// a host never requested has no entry, and a route replaced by a new Up
// keeps its host's activity.
func TestStaticRequestsCountAsHostActivity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := fsassets.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, st, "site/pr-1", map[string]string{"/index.html": "<h1>hi</h1>"})
	e, err := New(Options{Assets: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, h := range []string{"pr-1.site.localhost", "pr-2.site.localhost"} {
		if err := preview.PutRoute(ctx, e, preview.Route{Host: h, AssetPrefix: "site/pr-1"}); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest("GET", "http://pr-1.site.localhost/", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET: %d", w.Code)
	}
	acts, _ := e.Activity(ctx)
	if len(acts) != 1 || acts[0].Host != "pr-1.site.localhost" || acts[0].Function != "" || acts[0].LastActivity.Before(before.Truncate(time.Second)) {
		t.Fatalf("activity after one static request: %+v, want one entry for pr-1.site.localhost, now", acts)
	}
	// A new Up replaces the route: the host's activity stays.
	if err := preview.PutRoute(ctx, e, preview.Route{Host: "pr-1.site.localhost", AssetPrefix: "site/pr-1", Labels: preview.Labels{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.Activity(ctx); len(again) != 1 || !again[0].LastActivity.Equal(acts[0].LastActivity) {
		t.Fatalf("activity after the route changed: %+v", again)
	}
}

// BenchmarkStaticActivity measures the static path before (serveStatic
// alone) and after (with touchStatic, as route calls it) in one run, so
// the cost of counting static activity is their ratio.
// The store is in memory (blobs from the edge's cache), the fastest
// static path, where the added cost weighs most; "touch" is
// touchStatic alone.
func BenchmarkStaticActivity(b *testing.B) {
	st := previewtest.NewMemAssets()
	publish(b, st, "hello/pr-1", map[string]string{"/index.html": "<h1>hello</h1>"})
	e, err := New(Options{Assets: st})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		b.Fatal(err)
	}
	rt := e.lookup("pr-1.hello.localhost")
	req := httptest.NewRequest("GET", "http://pr-1.hello.localhost/", nil)
	b.Run("touch", func(b *testing.B) {
		for b.Loop() {
			e.touchStatic(rt)
		}
	})
	for _, c := range []struct {
		name  string
		touch bool
	}{{"before", false}, {"after", true}, {"before2", false}, {"after2", true}} {
		b.Run(c.name, func(b *testing.B) {
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				if c.touch {
					e.touchStatic(rt)
				}
				e.serveStatic(w, req, rt)
				if w.status != 200 {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

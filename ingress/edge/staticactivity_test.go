package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
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

// The edge forgets the activity of what it no longer routes: the host of
// a deleted route (or one replaced by a tombstone) at once, and the
// function no route names once nothing is in flight for it and the
// grace (forgetAfter) has passed; a function still named by another
// route keeps its counters.
func TestActivityForgetsUnroutedPreviews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := previewtest.NewMemAssets()
	publish(t, st, "site/pr-1", map[string]string{"/index.html": "<h1>hi</h1>"})
	e, err := New(Options{Assets: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.forgetAfter < time.Minute {
		t.Fatalf("forgetAfter = %v: shorter than a Down takes, the idle controller would see counters drop", e.forgetAfter)
	}
	routes := []preview.Route{
		{Host: "pr-1.site.localhost", AssetPrefix: "site/pr-1", Function: "site-pr-1", FunctionPaths: []string{"/api"}},
		{Host: "pr-2.site.localhost", AssetPrefix: "site/pr-1", Function: "site-pr-2", FunctionPaths: []string{"/api"}},
		{Host: "alias.site.localhost", AssetPrefix: "site/pr-1", Function: "site-pr-2", FunctionPaths: []string{"/api"}},
	}
	for _, r := range routes {
		if err := preview.PutRoute(ctx, e, r); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest("GET", "http://"+r.Host+"/", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", r.Host, w.Code)
		}
	}
	// Requests to the functions, as the proxy counts them; one of
	// site-pr-1's is still in flight.
	busy := e.act.get("site-pr-1")
	for _, fn := range []string{"site-pr-1", "site-pr-2"} {
		a := e.act.get(fn)
		if err := a.begin(ctx); err != nil {
			t.Fatal(err)
		}
		a.end()
	}
	if err := busy.begin(ctx); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		acts, _ := e.Activity(ctx)
		var got []string
		for _, a := range acts {
			got = append(got, a.Function+a.Host)
		}
		return got
	}
	all := []string{"site-pr-1", "site-pr-2", "alias.site.localhost", "pr-1.site.localhost", "pr-2.site.localhost"}
	if got := names(); !slices.Equal(got, all) {
		t.Fatalf("activity = %v, want %v", got, all)
	}

	if err := e.DeleteRoute(ctx, "pr-1.site.localhost"); err != nil {
		t.Fatal(err)
	}
	tomb := routes[1]
	tomb.Deleted, tomb.Function, tomb.FunctionPaths = true, "", nil
	if err := preview.PutRoute(ctx, e, tomb); err != nil {
		t.Fatal(err)
	}
	// pr-1's function has a request in flight; pr-2's is still named by
	// the alias.
	if got, want := names(), []string{"site-pr-1", "site-pr-2", "alias.site.localhost"}; !slices.Equal(got, want) {
		t.Fatalf("after deleting pr-1 and pr-2's routes: activity = %v, want %v", got, want)
	}
	busy.end()
	// Within the grace pr-1's function stays, idle.
	if got, want := names(), []string{"site-pr-1", "site-pr-2", "alias.site.localhost"}; !slices.Equal(got, want) {
		t.Fatalf("within the grace: activity = %v, want %v", got, want)
	}
	e.forgetAfter = 0 // the grace has passed
	if got, want := names(), []string{"site-pr-2", "alias.site.localhost"}; !slices.Equal(got, want) {
		t.Fatalf("once pr-1's last request ended: activity = %v, want %v", got, want)
	}
	if a, _ := e.Activity(ctx); a[0].Started != 1 || a[0].Finished != 1 {
		t.Fatalf("site-pr-2 lost its counters: %+v", a[0])
	}
	if err := e.DeleteRoute(ctx, "alias.site.localhost"); err != nil {
		t.Fatal(err)
	}
	if got := names(); len(got) != 0 {
		t.Fatalf("with no live route: activity = %v, want none", got)
	}
}

// While a request is counted in a function's entry, that entry is the
// one the edge reports and gates, even as routes naming the function
// come and go (each change forgets unrouted entries): a request never
// counts in an entry the table no longer holds.
func TestForgettingNeverLosesARequestInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, err := New(Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.forgetAfter = 0 // forget at every route change
	const fn = "hello-pr-1"
	stop := make(chan struct{})
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			preview.PutRoute(ctx, e, preview.Route{Host: "pr-1.hello.localhost", Function: fn, FunctionPaths: []string{"/"}})
			e.DeleteRoute(ctx, "pr-1.hello.localhost")
		}
	}()
	for i := 0; i < 20000; i++ {
		a, err := e.act.begin(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := e.act.m.Load(fn); !ok || v.(*fnActivity) != a {
			close(stop)
			t.Fatalf("request %d counts in an entry the table does not hold", i)
		}
		a.end()
	}
	close(stop)
	<-churned
}

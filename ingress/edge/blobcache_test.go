package edge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// countingStore counts the Open calls of the store it wraps; gate, when
// set, holds every Open until it is closed; corrupt, when set, makes Open
// return wrong content.
type countingStore struct {
	preview.AssetStore
	opens   atomic.Int64
	gate    chan struct{}
	corrupt bool
}

func (c *countingStore) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	c.opens.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if c.corrupt {
		return io.NopCloser(strings.NewReader(strings.Repeat("x", 1000))), nil
	}
	return c.AssetStore.Open(ctx, digest)
}

// cachedEdge serves files from an in-memory store wrapped in a
// countingStore at pr-1.hello.localhost.
func cachedEdge(t *testing.T, opts Options, files map[string]string) (*Edge, *httptest.Server, *countingStore) {
	t.Helper()
	mem := previewtest.NewMemAssets()
	publish(t, mem, "hello/pr-1", files)
	cs := &countingStore{AssetStore: mem}
	opts.Assets = cs
	opts.Logger = quiet
	opts.DisableConnTakeover = opts.DisableConnTakeover || netHTTPMode(t)
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if e.blobs == nil {
		t.Fatal("no blob cache for an in-memory store")
	}
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv, cs
}

func TestBlobCacheOnlyWithoutFiles(t *testing.T) {
	t.Parallel()
	fs, err := fsassets.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if newBlobCache(fs, 0, 0) != nil {
		t.Error("fsassets got a blob cache; it must keep the sendfile path")
	}
	if newBlobCache(nil, 0, 0) != nil || newBlobCache(previewtest.NewMemAssets(), -1, 0) != nil {
		t.Error("cache without a store or with a negative bound")
	}
	c := newBlobCache(previewtest.NewMemAssets(), 0, 0)
	if c == nil || c.max != DefaultAssetCacheBytes || c.maxBlob != DefaultAssetCacheMaxBlob {
		t.Errorf("defaults: %+v", c)
	}
}

func TestBlobCacheServesFromMemory(t *testing.T) {
	t.Parallel()
	bothModes(t, testBlobCacheServesFromMemory)
}

func testBlobCacheServesFromMemory(t *testing.T) {
	e, srv, cs := cachedEdge(t, Options{}, site)
	const host = "pr-1.hello.localhost"
	etag := etagOf(site["/big.txt"])
	for i := range 3 {
		resp, body := get(t, srv, "GET", host, "/big.txt", nil)
		if resp.StatusCode != 200 || body != site["/big.txt"] || resp.Header.Get("ETag") != etag || resp.ContentLength != 1000 || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("GET %d: %d %d bytes %v", i, resp.StatusCode, len(body), resp.Header)
		}
	}
	if n := cs.opens.Load(); n != 1 {
		t.Fatalf("3 GETs of one blob opened it %d times, want 1", n)
	}
	resp, body := get(t, srv, "GET", host, "/big.txt", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 || body != "" {
		t.Errorf("If-None-Match: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv, "HEAD", host, "/big.txt", nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d %d %q", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != 206 || body != "0123456789" || resp.Header.Get("Content-Range") != "bytes 10-19/1000" || resp.Header.Get("ETag") != etag {
		t.Errorf("Range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=0-1,5-6"})
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || !strings.Contains(body, "01") {
		t.Errorf("multi-range: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, srv, "GET", host, "/big.txt", map[string]string{"If-Match": `"other"`})
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("If-Match other: %d, want 412", resp.StatusCode)
	}
	if n := cs.opens.Load(); n != 1 {
		t.Errorf("304, HEAD and Range of a cached blob opened it: %d opens, want 1", n)
	}
	if used, n, hits, misses, _ := e.blobs.stats(); used != 1000 || n != 1 || misses != 1 || hits < 5 {
		t.Errorf("stats: used %d blobs %d hits %d misses %d", used, n, hits, misses)
	}
}

func TestBlobCacheBound(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"/a.txt":   strings.Repeat("a", 1000),
		"/b.txt":   strings.Repeat("b", 1000),
		"/c.txt":   strings.Repeat("c", 1000),
		"/big.txt": strings.Repeat("0123456789", 200), // above the per-blob cap
	}
	e, srv, cs := cachedEdge(t, Options{AssetCacheBytes: 2500, AssetCacheMaxBlob: 1500}, files)
	const host = "pr-1.hello.localhost"
	fetch := func(p string, wantOpens int64) {
		t.Helper()
		resp, body := get(t, srv, "GET", host, p, nil)
		if resp.StatusCode != 200 || body != files[p] {
			t.Fatalf("GET %s: %d %d bytes", p, resp.StatusCode, len(body))
		}
		if n := cs.opens.Load(); n != wantOpens {
			t.Fatalf("after GET %s: %d opens, want %d", p, n, wantOpens)
		}
		if used, _, _, _, _ := e.blobs.stats(); used > 2500 {
			t.Fatalf("cache holds %d bytes, bound 2500", used)
		}
	}
	fetch("/a.txt", 1)
	fetch("/b.txt", 2)
	fetch("/a.txt", 2) // hit; a is now the most recently used
	fetch("/c.txt", 3) // evicts b, the least recently used
	fetch("/a.txt", 3)
	fetch("/c.txt", 3)
	fetch("/b.txt", 4) // evicted: opened again (evicts a)
	fetch("/c.txt", 4)
	fetch("/a.txt", 5)
	if used, n, _, _, ev := e.blobs.stats(); used != 2000 || n != 2 || ev != 3 {
		t.Errorf("stats: used %d blobs %d evictions %d, want 2000 2 3", used, n, ev)
	}
	// A blob above the cap is streamed every time and never cached.
	fetch("/big.txt", 6)
	fetch("/big.txt", 7)
	if used, n, _, _, _ := e.blobs.stats(); used != 2000 || n != 2 {
		t.Errorf("streamed blob was cached: used %d blobs %d", used, n)
	}
	// Streamed blobs: a single Range reads through; several ranges get the
	// whole blob; HEAD and 304 work.
	etag := etagOf(files["/big.txt"])
	resp, body := get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=1005-1014"})
	if resp.StatusCode != 206 || body != "5678901234" || resp.Header.Get("Content-Range") != "bytes 1005-1014/2000" || resp.Header.Get("ETag") != etag {
		t.Errorf("streamed Range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=-5"})
	if resp.StatusCode != 206 || body != "56789" {
		t.Errorf("streamed suffix Range: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=100-109,0-9"})
	if resp.StatusCode != 200 || body != files["/big.txt"] {
		t.Errorf("streamed multi-range: %d %d bytes, want 200 whole", resp.StatusCode, len(body))
	}
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=0-0", "If-Range": `"stale"`})
	if resp.StatusCode != 200 || body != files["/big.txt"] {
		t.Errorf("streamed If-Range stale: %d %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get(t, srv, "HEAD", host, "/big.txt", nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 2000 {
		t.Errorf("streamed HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	before := cs.opens.Load()
	if resp, _ := get(t, srv, "GET", host, "/big.txt", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Errorf("streamed If-None-Match: %d", resp.StatusCode)
	}
	if cs.opens.Load() != before {
		t.Error("304 opened the blob")
	}
}

func TestBlobCacheOneLoadForConcurrentMisses(t *testing.T) {
	t.Parallel()
	_, srv, cs := cachedEdge(t, Options{DisableConnTakeover: true}, site)
	cs.gate = make(chan struct{})
	errs := make(chan string, 8)
	var wg2 sync.WaitGroup
	for range 8 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/style.css", nil)
			req.Host = "pr-1.hello.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != site["/style.css"] {
				errs <- resp.Status + " " + string(b)
			}
		}()
	}
	for cs.opens.Load() == 0 { // the first request reached Open
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the others queue behind it
	close(cs.gate)
	wg2.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := cs.opens.Load(); n != 1 {
		t.Errorf("8 concurrent misses opened the blob %d times, want 1", n)
	}
}

func TestBlobCacheRefusesCorruptBlob(t *testing.T) {
	t.Parallel()
	e, srv, cs := cachedEdge(t, Options{}, site)
	cs.corrupt = true
	for i := range 2 {
		resp, body := get(t, srv, "GET", "pr-1.hello.localhost", "/big.txt", nil)
		if resp.StatusCode != 502 || resp.Header.Get("ETag") != "" {
			t.Errorf("corrupt blob %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := cs.opens.Load(); n != 2 {
		t.Errorf("corrupt blob opened %d times, want 2 (never cached)", n)
	}
	if used, _, _, _, _ := e.blobs.stats(); used != 0 {
		t.Errorf("corrupt blob cached: %d bytes", used)
	}
}

var precompressedSite = map[string]string{
	"/app.js":      "console.log('identity')",
	"/app.js.br":   "BROTLI-BYTES",
	"/app.js.gz":   "GZIP-BYTES",
	"/only.css":    "body{}",
	"/only.css.gz": "GZ-CSS",
	"/plain.txt":   "plain",
}

func TestPrecompressed(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testPrecompressed)
}

func testPrecompressed(t *testing.T) {
	e, srv, st := staticEdge(t, Options{})
	publish(t, st, "hello/pr-1", precompressedSite)
	e.InvalidateAssets("hello/pr-1")
	const host = "pr-1.hello.localhost"
	for _, c := range []struct {
		path, accept, wantBody, wantEnc string
	}{
		{"/app.js", "br", "BROTLI-BYTES", "br"},
		{"/app.js", "gzip, deflate, br", "BROTLI-BYTES", "br"},
		{"/app.js", "gzip", "GZIP-BYTES", "gzip"},
		{"/app.js", "x-gzip", "GZIP-BYTES", "gzip"},
		{"/app.js", "gzip;q=1, br;q=0.5", "GZIP-BYTES", "gzip"},
		{"/app.js", "br;q=0, gzip", "GZIP-BYTES", "gzip"},
		{"/app.js", "br;q=0, gzip;q=0", "console.log('identity')", ""},
		{"/app.js", "*", "BROTLI-BYTES", "br"},
		{"/app.js", "identity", "console.log('identity')", ""},
		{"/only.css", "br, gzip", "GZ-CSS", "gzip"},
		{"/only.css", "br", "body{}", ""},
		{"/app.js.br", "br", "BROTLI-BYTES", ""}, // the variant's own path is a plain file
	} {
		resp, body := get(t, srv, "GET", host, c.path, map[string]string{"Accept-Encoding": c.accept})
		if resp.StatusCode != 200 || body != c.wantBody || resp.Header.Get("Content-Encoding") != c.wantEnc {
			t.Errorf("%s Accept-Encoding %q: %d %q encoding %q, want %q %q", c.path, c.accept, resp.StatusCode, body, resp.Header.Get("Content-Encoding"), c.wantBody, c.wantEnc)
			continue
		}
		if c.path == "/app.js.br" {
			continue
		}
		if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
			t.Errorf("%s %q: Vary %q", c.path, c.accept, got)
		}
		if got, want := resp.Header.Get("ETag"), etagOf(c.wantBody); got != want {
			t.Errorf("%s %q: ETag %q, want the served representation's %q", c.path, c.accept, got, want)
		}
		if strings.HasPrefix(c.path, "/app.js") && resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%s %q: Content-Type %q", c.path, c.accept, resp.Header.Get("Content-Type"))
		}
	}
	// (get's client would add "Accept-Encoding: gzip" itself, and decode,
	// when a test sets none.)
	// Revalidation is per representation.
	brTag := etagOf("BROTLI-BYTES")
	resp, _ := get(t, srv, "GET", host, "/app.js", map[string]string{"Accept-Encoding": "br", "If-None-Match": brTag})
	if resp.StatusCode != 304 || resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("ETag") != brTag {
		t.Errorf("304 of the br variant: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := get(t, srv, "GET", host, "/app.js", map[string]string{"Accept-Encoding": "identity", "If-None-Match": brTag})
	if resp.StatusCode != 200 || body != "console.log('identity')" {
		t.Errorf("br ETag without Accept-Encoding br: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv, "GET", host, "/app.js", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-3"})
	if resp.StatusCode != 206 || body != "GZIP" || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Range of the gzip variant: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get(t, srv, "GET", host, "/plain.txt", map[string]string{"Accept-Encoding": "br"})
	if resp.Header.Get("Vary") != "" || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("file without variants: %v", resp.Header)
	}
}

func TestAcceptQ(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		accept, coding string
		want           float64
	}{
		{"br", "br", 1}, {"gzip, br", "br", 1}, {"br;q=0.3", "br", 0.3}, {"BR; Q=0.5", "br", 0.5},
		{"br;q=0", "br", 0}, {"gzip", "br", 0}, {"*", "br", 1}, {"*;q=0", "br", 0}, {"*, br;q=0", "br", 0},
		{"br;q=bogus", "br", 0}, {"", "br", 0}, {"x-gzip", "gzip", 1}, {"brotli", "br", 0},
	} {
		if got := acceptQ([]string{c.accept}, c.coding); got != c.want {
			t.Errorf("acceptQ(%q, %s) = %v, want %v", c.accept, c.coding, got, c.want)
		}
	}
}

// BenchmarkStaticCached is BenchmarkStatic over an in-memory store: the
// blob served from the blob cache (warm), and a revalidation (304).
func BenchmarkStaticCached(b *testing.B) {
	benchStatic(b, previewtest.NewMemAssets())
}

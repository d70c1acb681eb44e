package edge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

var site = map[string]string{
	"/index.html":          "<h1>home</h1>",
	"/docs/index.html":     "<h1>docs</h1>",
	"/app.3f2a9c1b.js":     "console.log('fingerprinted')",
	"/index-BdK3x9Qa.css":  "body{color:red}",
	"/style.css":           "body{}",
	"/data.json":           `{"a":1}`,
	"/logo.svg":            "<svg/>",
	"/big.txt":             strings.Repeat("0123456789", 100),
	"/404.html":            "<h1>custom not found</h1>",
	"/with space/file.txt": "spaced",
}

// staticEdge returns an Edge serving site at pr-1.hello.localhost, behind a
// real HTTP server, and the store: an fsassets store (served from its
// files), or under storesAndModes' "mem" an in-memory store (served
// through the blob cache).
func staticEdge(t *testing.T, opts Options) (*Edge, *httptest.Server, preview.AssetStore) {
	t.Helper()
	var st preview.AssetStore
	if memMode(t) {
		st = previewtest.NewMemAssets()
	} else {
		fs, err := fsassets.New(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		st = fs
	}
	publish(t, st, "hello/pr-1", site)
	opts.Assets = st
	opts.DisableConnTakeover = opts.DisableConnTakeover || netHTTPMode(t)
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv, st
}

// storesAndModes runs test over an fsassets store (subtest "fs") and an
// in-memory store (subtest "mem", served through the blob cache), each in
// both connection modes.
func storesAndModes(t *testing.T, test func(t *testing.T)) {
	for _, s := range []string{"fs", "mem"} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			bothModes(t, test)
		})
	}
}

// memMode reports whether the running test is storesAndModes' "mem".
func memMode(t *testing.T) bool { return strings.Contains(t.Name(), "/mem/") }

func get(t *testing.T, srv *httptest.Server, method, host, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestStaticFiles(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testStaticFiles)
}

func testStaticFiles(t *testing.T) {
	_, srv, _ := staticEdge(t, Options{})
	const host = "pr-1.hello.localhost"
	for _, c := range []struct {
		path, wantBody, wantType, wantCache string
	}{
		{"/", site["/index.html"], "text/html; charset=utf-8", "no-cache"},
		{"/index.html", site["/index.html"], "text/html; charset=utf-8", "no-cache"},
		{"/docs/", site["/docs/index.html"], "text/html; charset=utf-8", "no-cache"},
		{"/app.3f2a9c1b.js", site["/app.3f2a9c1b.js"], "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/index-BdK3x9Qa.css", site["/index-BdK3x9Qa.css"], "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/style.css", site["/style.css"], "text/css; charset=utf-8", "no-cache"},
		{"/data.json", site["/data.json"], "application/json", "no-cache"},
		{"/logo.svg", site["/logo.svg"], "image/svg+xml", "no-cache"},
		{"/with%20space/file.txt", "spaced", "text/plain; charset=utf-8", "no-cache"},
		{"/docs/../style.css", site["/style.css"], "text/css; charset=utf-8", "no-cache"},
	} {
		resp, body := get(t, srv, "GET", host, c.path, nil)
		if resp.StatusCode != 200 || body != c.wantBody {
			t.Errorf("GET %s = %d %q, want 200 %q", c.path, resp.StatusCode, body, c.wantBody)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.wantType {
			t.Errorf("GET %s Content-Type = %q, want %q", c.path, got, c.wantType)
		}
		if got := resp.Header.Get("Cache-Control"); got != c.wantCache {
			t.Errorf("GET %s Cache-Control = %q, want %q", c.path, got, c.wantCache)
		}
		if got, want := resp.Header.Get("ETag"), etagOf(c.wantBody); got != want {
			t.Errorf("GET %s ETag = %q, want %q", c.path, got, want)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options = %q", c.path, got)
		}
	}
}

func TestStaticConditionalHeadRange(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testStaticConditionalHeadRange)
}

func testStaticConditionalHeadRange(t *testing.T) {
	_, srv, _ := staticEdge(t, Options{})
	const host = "pr-1.hello.localhost"
	etag := etagOf(site["/style.css"])

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		resp, body := get(t, srv, "GET", host, "/style.css", map[string]string{"If-None-Match": inm})
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("If-None-Match %s: %d %q, want 304 and no body", inm, resp.StatusCode, body)
		}
		if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("304 headers: %v", resp.Header)
		}
	}
	if resp, _ := get(t, srv, "GET", host, "/style.css", map[string]string{"If-None-Match": `"stale"`}); resp.StatusCode != 200 {
		t.Errorf("stale If-None-Match: %d, want 200", resp.StatusCode)
	}

	resp, body := get(t, srv, "HEAD", host, "/big.txt", nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 || resp.Header.Get("ETag") != etagOf(site["/big.txt"]) {
		t.Errorf("HEAD: %d len %d body %q headers %v", resp.StatusCode, resp.ContentLength, body, resp.Header)
	}

	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != http.StatusPartialContent || body != "0123456789" || resp.Header.Get("Content-Range") != "bytes 10-19/1000" {
		t.Errorf("Range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("Range Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	resp, _ = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=5000-"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range: %d", resp.StatusCode)
	}
	// If-Range with a stale validator sends the whole file.
	resp, body = get(t, srv, "GET", host, "/big.txt", map[string]string{"Range": "bytes=0-0", "If-Range": `"stale"`})
	if resp.StatusCode != 200 || len(body) != 1000 {
		t.Errorf("If-Range stale: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, _ = get(t, srv, "GET", host, "/big.txt", nil)
	if resp.Header.Get("Accept-Ranges") != "bytes" || resp.ContentLength != 1000 {
		t.Errorf("plain GET headers: %v", resp.Header)
	}
}

func TestStaticMissingRedirectMethods(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testStaticMissingRedirectMethods)
}

func testStaticMissingRedirectMethods(t *testing.T) {
	_, srv, _ := staticEdge(t, Options{})
	const host = "pr-1.hello.localhost"

	resp, body := get(t, srv, "GET", host, "/nope.js", nil)
	if resp.StatusCode != 404 || body != site["/404.html"] || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("missing file: %d %q, want 404 with /404.html", resp.StatusCode, body)
	}
	resp, _ = get(t, srv, "GET", host, "/docs?x=1", nil)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/docs/?x=1" {
		t.Errorf("directory without slash: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, srv, "GET", host, "/client/route", nil)
	if resp.StatusCode != 404 {
		t.Errorf("SPA path without fallback: %d, want 404", resp.StatusCode)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		resp, _ := get(t, srv, m, host, "/index.html", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s static: %d Allow %q, want 405", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	resp, body = get(t, srv, "GET", "unknown.localhost", "/", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, "no preview") {
		t.Errorf("unknown host: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, srv, "GET", "PR-1.Hello.LOCALHOST:1234", "/", nil)
	if resp.StatusCode != 200 || body != site["/index.html"] {
		t.Errorf("host with case and port: %d %q", resp.StatusCode, body)
	}
}

func TestSPAFallback(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testSPAFallback)
}

func testSPAFallback(t *testing.T) {
	_, srv, _ := staticEdge(t, Options{SPAFallback: true})
	resp, body := get(t, srv, "GET", "pr-1.hello.localhost", "/client/route", nil)
	if resp.StatusCode != 200 || body != site["/index.html"] {
		t.Errorf("SPA fallback: %d %q", resp.StatusCode, body)
	}
	// Paths with an extension are real misses.
	if resp, _ := get(t, srv, "GET", "pr-1.hello.localhost", "/missing.js", nil); resp.StatusCode != 404 {
		t.Errorf("missing asset with SPA fallback: %d, want 404", resp.StatusCode)
	}
}

func TestManifestCacheInvalidation(t *testing.T) {
	t.Parallel()
	storesAndModes(t, testManifestCacheInvalidation)
}

func testManifestCacheInvalidation(t *testing.T) {
	e, srv, st := staticEdge(t, Options{})
	const host = "pr-1.hello.localhost"
	if _, body := get(t, srv, "GET", host, "/", nil); body != site["/index.html"] {
		t.Fatalf("before: %q", body)
	}
	publish(t, st, "hello/pr-1", map[string]string{"/index.html": "<h1>v2</h1>"})
	// Cached until the route is set again.
	if _, body := get(t, srv, "GET", host, "/", nil); body != site["/index.html"] {
		t.Fatalf("cached manifest not used: %q", body)
	}
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: host, AssetPrefix: "hello/pr-1"}); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, srv, "GET", host, "/", nil); body != "<h1>v2</h1>" {
		t.Fatalf("after SetRoute: %q, want v2", body)
	}
	// A new commit's prefix: the route switches atomically.
	publish(t, st, "hello/pr-1/c2", map[string]string{"/index.html": "<h1>c2</h1>"})
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: host, AssetPrefix: "hello/pr-1/c2"}); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, srv, "GET", host, "/", nil); body != "<h1>c2</h1>" {
		t.Fatalf("after switching prefix: %q", body)
	}
	// A route whose manifest does not exist answers 404.
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-2.hello.localhost", AssetPrefix: "hello/pr-2"}); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, srv, "GET", "pr-2.hello.localhost", "/", nil); resp.StatusCode != 404 || !strings.Contains(body, "no published assets") {
		t.Fatalf("unpublished prefix: %d %q", resp.StatusCode, body)
	}
	if err := e.DeleteRoute(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, srv, "GET", host, "/", nil); resp.StatusCode != 404 || e.HasHost(host) {
		t.Fatalf("deleted route still served: %d", resp.StatusCode)
	}
}

func TestFingerprinted(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"main.3f2a9c1b.js":      true,
		"index-BdK3x9Qa.js":     true,
		"chunk.3f2a9c1b7d.css":  true,
		"vendor_a1b2c3d4e5.js":  true,
		"style.css":             false,
		"deadbeef.js":           false, // hex without a digit: a word
		"12345678.js":           false, // digits only: a date or a number
		"report-2024abcd.pdf":   true,
		"Component-Template.js": false,
		"index.html":            false,
		"README":                false,
		"favicon-32x32.png":     false,
	} {
		if got := fingerprinted(name); got != want {
			t.Errorf("fingerprinted(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEtagMatches(t *testing.T) {
	t.Parallel()
	const e = `"abc"`
	for v, want := range map[string]bool{
		`"abc"`: true, `W/"abc"`: true, `"x", "abc"`: true, `*`: true,
		`"abcd"`: false, `abc`: false, `"x"`: false, ``: false, `"unterminated`: false,
	} {
		if got := etagMatches([]string{v}, e); got != want {
			t.Errorf("etagMatches(%q) = %v, want %v", v, got, want)
		}
	}
}

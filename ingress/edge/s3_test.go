package edge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "github.com/glimpse-dev/glimpse/cdn/s3assets" // registers s3://
	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestStaticFromS3 serves a preview from cdn/s3assets on a real versitygw
// (GLIMPSE_VERSITYGW_BIN; skipped without it, failed under CI): pages,
// strong ETags, 304, Range, HEAD and a precompressed variant, with blobs
// read from S3 once and then served from the blob cache.
func TestStaticFromS3(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := fmt.Sprintf("edge-%d", time.Now().UnixNano()%1e9)
	srv.CreateBucket(t, bucket)
	s3, err := preview.AssetStores.Open(context.Background(), srv.URL(bucket, "&prefix=previews"), &preview.OpenOptions{Getenv: srv.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for p, c := range site {
		files[p] = c
	}
	files["/app.3f2a9c1b.js.br"] = "BROTLI-BYTES"
	publish(t, s3, "hello/pr-1", files)

	cs := &countingStore{AssetStore: s3}
	e, err := New(Options{Assets: cs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if e.blobs == nil {
		t.Fatal("no blob cache for s3assets")
	}
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e)
	t.Cleanup(hs.Close)
	const host = "pr-1.hello.localhost"

	for _, p := range []string{"/", "/docs/", "/style.css", "/with%20space/file.txt", "/big.txt"} {
		want := site[strings.ReplaceAll(p, "%20", " ")]
		if strings.HasSuffix(p, "/") {
			want = site[p+"index.html"]
		}
		resp, body := get(t, hs, "GET", host, p, nil)
		if resp.StatusCode != 200 || body != want || resp.Header.Get("ETag") != etagOf(want) {
			t.Errorf("GET %s: %d %q ETag %q", p, resp.StatusCode, body, resp.Header.Get("ETag"))
		}
	}
	opened := cs.opens.Load()
	if opened != 5 {
		t.Errorf("first GETs opened %d blobs, want 5", opened)
	}
	etag := etagOf(site["/big.txt"])
	if resp, body := get(t, hs, "GET", host, "/big.txt", nil); resp.StatusCode != 200 || body != site["/big.txt"] {
		t.Errorf("second GET: %d", resp.StatusCode)
	}
	if resp, _ := get(t, hs, "GET", host, "/big.txt", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, body := get(t, hs, "GET", host, "/big.txt", map[string]string{"Range": "bytes=990-"}); resp.StatusCode != 206 || body != "0123456789" || resp.Header.Get("Content-Range") != "bytes 990-999/1000" {
		t.Errorf("Range: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, hs, "HEAD", host, "/big.txt", nil); resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	if n := cs.opens.Load(); n != opened {
		t.Errorf("cached blob read from S3 again: %d opens, want %d", n, opened)
	}
	resp, body := get(t, hs, "GET", host, "/app.3f2a9c1b.js", map[string]string{"Accept-Encoding": "br"})
	if resp.StatusCode != 200 || body != "BROTLI-BYTES" || resp.Header.Get("Content-Encoding") != "br" || resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Errorf("br variant: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := get(t, hs, "GET", host, "/nope", nil); resp.StatusCode != 404 || body != site["/404.html"] {
		t.Errorf("missing: %d %q", resp.StatusCode, body)
	}
}

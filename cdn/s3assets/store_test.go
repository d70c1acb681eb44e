package s3assets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

var bucketSeq atomic.Int64

// newBucket creates a fresh bucket on srv.
func newBucket(t testing.TB, srv *s3test.Server) string {
	t.Helper()
	name := fmt.Sprintf("glimpse-%d-%d", time.Now().UnixNano()%1e9, bucketSeq.Add(1))
	srv.CreateBucket(t, name)
	return name
}

func openStore(t *testing.T, srv *s3test.Server, raw string) preview.AssetStore {
	t.Helper()
	s, err := preview.AssetStores.Open(context.Background(), raw, &preview.OpenOptions{Getenv: srv.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore { return openStore(t, srv, srv.URL(bucket, "")) },
	})
}

func TestConformanceUnderPrefix(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore {
			return openStore(t, srv, srv.URL(bucket, "&prefix=team/previews"))
		},
	})
}

// counter counts the requests a store sends, by method and by S3
// operation ("PUT", "GET?list-type").
type counter struct {
	dials atomic.Int64 // connections opened
	next  http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
}

func (c *counter) Do(r *http.Request) (*http.Response, error) {
	op := r.Method
	if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
		op = "LIST"
	}
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func newCounted(t testing.TB, srv *s3test.Server, bucket string, o Options) (*Store, *counter) {
	t.Helper()
	// Not http.DefaultTransport: it keeps 2 idle connections per host,
	// so 16 concurrent uploads would open a new connection for most
	// requests. Store's own client (o.HTTPClient nil) sizes its pool to
	// Uploads + Lookups; this does the same.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c := &counter{next: tr, n: map[string]int{}}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		return dial(ctx, network, addr)
	}
	o.Endpoint, o.PathStyle, o.Region = srv.Endpoint, true, "us-east-1"
	o.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")
	o.HTTPClient = c
	s, err := New(context.Background(), bucket, &o)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

type files map[string][]byte

func (f files) manifest() preview.Manifest {
	m := preview.Manifest{Files: map[string]preview.AssetFile{}}
	for p, b := range f {
		sum := sha256.Sum256(b)
		m.Files[p] = preview.AssetFile{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b)), ContentType: preview.ContentType(p)}
	}
	return m
}

func (f files) open(p string) (io.ReadCloser, error) {
	b, ok := f[p]
	if !ok {
		return nil, fmt.Errorf("no file %s", p)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func manyFiles(n int, salt string) files {
	f := files{}
	for i := range n {
		f[fmt.Sprintf("/f/%05d.js", i)] = []byte(fmt.Sprintf("file %d %s", i, salt))
	}
	return f
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s, _ := newCounted(t, srv, bucket, Options{Prefix: "p"})
	ctx := context.Background()
	f := files{"/index.html": []byte("<h1>hi</h1>"), "/app.css": []byte("body{}")}
	m := f.manifest()
	if _, err := s.Publish(ctx, "hello/pr-1", m, preview.Labels{preview.LabelApp: "hello"}, f.open); err != nil {
		t.Fatal(err)
	}
	head := func(key string) *s3.HeadObjectOutput {
		t.Helper()
		h, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("HEAD %s: %v", key, err)
		}
		return h
	}
	for p, want := range map[string]string{"/index.html": "text/html; charset=utf-8", "/app.css": "text/css; charset=utf-8"} {
		key := s.BlobKey(m.Files[p].Digest)
		if !strings.HasPrefix(key, "p/blobs/sha256/") {
			t.Fatalf("blob key %s, want it under p/blobs/sha256/", key)
		}
		h := head(key)
		if got := aws.ToString(h.ContentType); got != want {
			t.Errorf("%s: Content-Type %q, want %q", p, got, want)
		}
		if got := aws.ToString(h.CacheControl); got != BlobCacheControl {
			t.Errorf("%s: Cache-Control %q, want %q", p, got, BlobCacheControl)
		}
	}
	h := head(s.ManifestKey("hello/pr-1"))
	if s.ManifestKey("hello/pr-1") != "p/manifests/hello/pr-1.json" {
		t.Fatalf("manifest key %s", s.ManifestKey("hello/pr-1"))
	}
	if aws.ToString(h.ContentType) != "application/json" || aws.ToString(h.CacheControl) != ManifestCacheControl {
		t.Errorf("manifest: Content-Type %q, Cache-Control %q", aws.ToString(h.ContentType), aws.ToString(h.CacheControl))
	}
}

// A second publish sends only what is new: one PUT per new blob plus the
// manifest, and finds the missing blobs with a few listings, not one
// request per file.
func TestSecondPublishSendsOnlyMissing(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s, c := newCounted(t, srv, bucket, Options{})
	ctx := context.Background()
	const n = 2500
	f := manyFiles(n, "v1")
	st, err := s.Publish(ctx, "hello/pr-1", f.manifest(), nil, f.open)
	if err != nil {
		t.Fatal(err)
	}
	first := c.take()
	if st.Uploaded != n || first["PUT"] != n+1 || first["LIST"] > 4 {
		t.Fatalf("first publish: %+v, requests %v; want %d blob PUTs + the manifest, a listing per lookup worker at most", st, first, n)
	}
	// The same files again: no PUT at all.
	st, err = s.Publish(ctx, "hello/pr-1", f.manifest(), nil, f.open)
	if err != nil || !st.Unchanged || st.Uploaded != 0 {
		t.Fatalf("unchanged publish: %+v, %v", st, err)
	}
	again := c.take()
	if again["PUT"] != 0 || again["LIST"] > 5 || again["HEAD"] != 0 {
		t.Fatalf("unchanged publish sent %v; want no PUT, at most 5 listings for %d blobs", again, n)
	}
	// One file changed, to a new prefix: exactly one blob PUT and the
	// manifest.
	f["/f/00042.js"] = []byte("changed")
	st, err = s.Publish(ctx, "hello/pr-1/2", f.manifest(), nil, f.open)
	if err != nil || st.Uploaded != 1 || st.Reused != n-1 {
		t.Fatalf("publish with one change: %+v, %v", st, err)
	}
	one := c.take()
	if one["PUT"] != 2 || one["LIST"] > 5 {
		t.Fatalf("publish with one change sent %v; want 2 PUTs (blob, manifest), at most 5 listings", one)
	}
	t.Logf("requests: first %v, unchanged %v, one change %v", first, again, one)
}

// The store itself refuses content that does not match the digest, even
// when the reader does not say so (the bucket's verifier is bypassed).
func TestStoreVerifiesDigest(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s, _ := newCounted(t, srv, bucket, Options{})
	ctx := context.Background()
	m := files{"/a.txt": []byte("right")}.manifest()
	info := preview.BlobInfo{Digest: m.Files["/a.txt"].Digest, Size: 5, ContentType: "text/plain"}
	err := s.d.PutBlob(ctx, info, strings.NewReader("wrong"))
	if preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("PutBlob with content not matching its digest: %v (code %v), want InvalidArgument", err, preview.CodeOf(err))
	}
	if _, err := s.Open(ctx, info.Digest); !preview.IsNotFound(err) {
		t.Fatalf("Open after the refused upload: %v, want NotFound", err)
	}
	// A conditional write of a blob already there is "already exists".
	if err := s.d.PutBlob(ctx, info, strings.NewReader("right")); err != nil {
		t.Fatal(err)
	}
	if err := s.d.PutBlob(ctx, info, strings.NewReader("right")); err != nil && preview.CodeOf(err) != preview.AlreadyExists {
		t.Fatalf("second PutBlob of the same blob: %v, want nil or AlreadyExists", err)
	} else {
		t.Logf("second conditional PutBlob: %v (noConditional=%v)", err, s.d.noConditional.Load())
	}
}

func TestURLRefusals(t *testing.T) {
	t.Parallel()
	env := func(string) string { return "" }
	for _, raw := range []string{
		"s3://bucket?bogus=1",
		"s3://bucket?region=eu-west-1&pathstyle=true",
		"s3://key:secret@bucket",
		"s3://bucket/some/path",
		"s3://bucket?pathStyle=maybe",
		"s3://bucket?layout=flat",
		"s3://bucket?endpoint=ftp://x",
		"s3://bucket?prefix=../up",
		"s3://BAD_bucket",
		"s3://",
	} {
		_, err := preview.AssetStores.Open(context.Background(), raw, &preview.OpenOptions{Getenv: env})
		if preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the secret: %v", raw, err)
		}
	}
	bucket, o, err := OptionsFromURL(mustParse(t, "s3://b-1?region=r&prefix=p/q&endpoint=http://127.0.0.1:9&pathStyle=true&uploads=64"), func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}[k]
	})
	if err != nil || bucket != "b-1" || o.Region != "r" || o.Prefix != "p/q" || o.Endpoint != "http://127.0.0.1:9" || !o.PathStyle || o.Credentials == nil || o.Uploads != 64 {
		t.Fatalf("OptionsFromURL = %q, %+v, %v", bucket, o, err)
	}
	for _, bad := range []string{"0", "-1", "257", "many", "1.5"} {
		_, _, err := OptionsFromURL(mustParse(t, "s3://b?uploads="+bad), func(string) string { return "" })
		if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "uploads=") {
			t.Errorf("uploads=%s: %v, want InvalidArgument on one line naming uploads", bad, err)
		}
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// An endpoint nobody listens on gives one line, code Unavailable, naming
// the endpoint.
func TestBadEndpointIsUnavailable(t *testing.T) {
	t.Parallel()
	env := func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}[k]
	}
	s, err := preview.AssetStores.Open(context.Background(), "s3://bucket?endpoint=http://127.0.0.1:1&pathStyle=true&region=us-east-1", &preview.OpenOptions{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = s.Manifest(ctx, "hello/pr-1")
	if preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Manifest on a dead endpoint: %v (code %v), want Unavailable", err, preview.CodeOf(err))
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "127.0.0.1:1") || len(msg) > 200 {
		t.Fatalf("error is not one short line naming the endpoint: %q", msg)
	}
	t.Logf("error: %s", msg)
}

func TestMissingBucketAndBadCredentials(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	ctx := context.Background()
	s := openStore(t, srv, srv.URL("no-such-bucket", ""))
	if _, err := s.Manifest(ctx, "hello/pr-1"); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Manifest in a missing bucket: %v (code %v), want FailedPrecondition", err, preview.CodeOf(err))
	}
	bucket := newBucket(t, srv)
	bad, err := preview.AssetStores.Open(ctx, srv.URL(bucket, ""), &preview.OpenOptions{Getenv: func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong"}[k]
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Manifest(ctx, "hello/pr-1"); preview.CodeOf(err) != preview.PermissionDenied {
		t.Fatalf("Manifest with a wrong secret: %v (code %v), want PermissionDenied", err, preview.CodeOf(err))
	}
}

func TestConformanceLayoutPaths(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore { return openStore(t, srv, srv.URL(bucket, "&layout=paths")) },
	})
}

// layout=paths: every file readable under its path with its Content-Type,
// a republish copies only what changed and removes what is gone, Delete
// removes the path objects.
func TestLayoutPaths(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	s, c := newCounted(t, srv, bucket, Options{Layout: "paths", Prefix: "p"})
	ctx := context.Background()
	f := files{"/index.html": []byte("<h1>v1</h1>"), "/app.js": []byte("js"), "/copy.js": []byte("js"), "/old.txt": []byte("old")}
	if _, err := s.Publish(ctx, "hello/pr-1/1", f.manifest(), nil, f.open); err != nil {
		t.Fatal(err)
	}
	get := func(key string) (string, string, error) {
		out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return "", "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), aws.ToString(out.ContentType), err
	}
	if k := s.PathKey("hello/pr-1/1", "/index.html"); k != "p/sites/hello/pr-1/1/index.html" {
		t.Fatalf("path key %s", k)
	}
	for p, want := range f {
		body, ct, err := get(s.PathKey("hello/pr-1/1", p))
		if err != nil || body != string(want) || ct != preview.ContentType(p) {
			t.Fatalf("%s: %q, %q, %v; want %q, %q", p, body, ct, err, want, preview.ContentType(p))
		}
	}
	c.take()
	f["/index.html"] = []byte("<h1>v2</h1>")
	delete(f, "/old.txt")
	if _, err := s.Publish(ctx, "hello/pr-1/1", f.manifest(), nil, f.open); err != nil {
		t.Fatal(err)
	}
	n := c.take()
	// One blob PUT, one CopyObject (a PUT too), the manifest, and one
	// DeleteObjects (a POST).
	if n["PUT"] != 3 || n["POST"] != 1 {
		t.Fatalf("republish with one change and one removal sent %v; want 3 PUTs and 1 POST", n)
	}
	if body, _, err := get(s.PathKey("hello/pr-1/1", "/index.html")); err != nil || body != "<h1>v2</h1>" {
		t.Fatalf("changed path: %q, %v", body, err)
	}
	if _, _, err := get(s.PathKey("hello/pr-1/1", "/old.txt")); err == nil {
		t.Fatal("a path the new manifest does not have is still there")
	}
	if err := s.Delete(ctx, "hello/pr-1/1"); err != nil {
		t.Fatal(err)
	}
	out, err := s.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("p/sites/")})
	if err != nil || len(out.Contents) != 0 {
		t.Fatalf("after Delete: %d path objects left, %v", len(out.Contents), err)
	}
	if _, err := s.Manifest(ctx, "hello/pr-1/1"); !preview.IsNotFound(err) {
		t.Fatalf("manifest after Delete: %v", err)
	}
}

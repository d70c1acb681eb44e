package embedregistry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/glimpse-dev/glimpse/registry/embedregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func push(t *testing.T, s string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(ref(t, s), img); err != nil {
		t.Fatalf("push %s: %v", s, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// do sends a raw request and returns the status, headers and body.
func do(t *testing.T, method, url string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestPushPullTagsDelete(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	img := randomImage(t)
	d := push(t, host+"/team/hello:a", img)
	push(t, host+"/team/hello:b", img)
	other := push(t, host+"/team/hello:c", randomImage(t))

	for _, r := range []string{host + "/team/hello:a", host + "/team/hello@" + d.String()} {
		got, err := remote.Image(ref(t, r))
		if err != nil {
			t.Fatalf("pull %s: %v", r, err)
		}
		if err := validate.Image(got); err != nil {
			t.Fatalf("pulled image %s does not validate: %v", r, err)
		}
		if gd, _ := got.Digest(); gd != d {
			t.Fatalf("pulled %s has digest %s, want %s", r, gd, d)
		}
	}
	desc, err := remote.Head(ref(t, host+"/team/hello:b"))
	if err != nil || desc.Digest != d {
		t.Fatalf("HEAD = %v, %v; want %s", desc, err, d)
	}

	tags, err := remote.List(ref(t, host+"/team/hello").Context())
	if err != nil || strings.Join(tags, ",") != "a,b,c" {
		t.Fatalf("tags = %v, %v; want a,b,c", tags, err)
	}

	// Paginated listing follows the Link header.
	code, hdr, body := do(t, "GET", "http://"+host+"/v2/team/hello/tags/list?n=2", nil)
	if code != 200 || !strings.Contains(string(body), `"tags":["a","b"]`) || !strings.Contains(hdr.Get("Link"), "last=b") {
		t.Fatalf("tags page = %d %q Link %q", code, body, hdr.Get("Link"))
	}

	// Delete a tag: the manifest and its other tag stay.
	if err := remote.Delete(ref(t, host+"/team/hello:a")); err != nil {
		t.Fatalf("delete tag: %v", err)
	}
	if _, err := remote.Head(ref(t, host+"/team/hello:a")); err == nil {
		t.Fatal("deleted tag still resolves")
	}
	if desc, err := remote.Head(ref(t, host+"/team/hello:b")); err != nil || desc.Digest != d {
		t.Fatalf("other tag after tag delete: %v, %v", desc, err)
	}
	// Delete by digest: the manifest and every tag naming it go.
	if err := remote.Delete(ref(t, host+"/team/hello@"+d.String())); err != nil {
		t.Fatalf("delete digest: %v", err)
	}
	for _, r := range []string{"/team/hello:b", "/team/hello@" + d.String()} {
		if _, err := remote.Head(ref(t, host+r)); err == nil {
			t.Fatalf("%s resolves after its manifest was deleted", r)
		}
	}
	if desc, err := remote.Head(ref(t, host+"/team/hello:c")); err != nil || desc.Digest != other {
		t.Fatalf("unrelated tag after delete: %v, %v", desc, err)
	}
	if code, _, _ := do(t, "DELETE", "http://"+host+"/v2/team/hello/manifests/a", nil); code != 404 {
		t.Fatalf("delete of a missing tag: %d, want 404", code)
	}
	if code, _, body := do(t, "GET", "http://"+host+"/v2/nope/tags/list", nil); code != 404 || !strings.Contains(string(body), "NAME_UNKNOWN") {
		t.Fatalf("tags of unknown repo: %d %s", code, body)
	}

	// Deleting the last tag and manifest removes the repository.
	if err := remote.Delete(ref(t, host+"/team/hello@"+other.String())); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := do(t, "GET", "http://"+host+"/v2/team/hello/tags/list", nil); code != 404 {
		t.Fatalf("tags of emptied repository: %d, want 404", code)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := embedregistry.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	img := randomImage(t)
	d := push(t, srv.Listener.Addr().String()+"/hello:pr-1", img)
	srv.Close()

	if _, err := embedregistry.New(dir, nil); err == nil {
		t.Fatal("a second registry opened a directory in use")
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	host, _ := registrytest.EmbeddedAt(t, dir)
	got, err := remote.Image(ref(t, host+"/hello:pr-1"))
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("image after restart does not validate: %v", err)
	}
	if gd, _ := got.Digest(); gd != d {
		t.Fatalf("digest after restart %s, want %s", gd, d)
	}
	tags, err := remote.List(ref(t, host+"/hello").Context())
	if err != nil || len(tags) != 1 || tags[0] != "pr-1" {
		t.Fatalf("tags after restart = %v, %v", tags, err)
	}
}

func TestClosedRegistryIsUnavailable(t *testing.T) {
	t.Parallel()
	reg, err := embedregistry.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	reg.Close()
	if code, _, _ := do(t, "GET", srv.URL+"/v2/", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("GET /v2/ after Close = %d, want 503", code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestUploads(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	base := "http://" + host + "/v2/up/blobs/"
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	d := sha(blob)

	// Monolithic POST with the digest.
	code, hdr, _ := do(t, "POST", base+"uploads/?digest="+d, blob)
	if code != 201 || hdr.Get("Docker-Content-Digest") != d {
		t.Fatalf("monolithic upload: %d %v", code, hdr)
	}
	code, hdr, body := do(t, "GET", base+d, nil)
	if code != 200 || !bytes.Equal(body, blob) || hdr.Get("Docker-Content-Digest") != d {
		t.Fatalf("GET blob: %d, %d bytes", code, len(body))
	}
	code, hdr, body = do(t, "HEAD", base+d, nil)
	if code != 200 || len(body) != 0 || hdr.Get("Content-Length") != fmt.Sprint(len(blob)) {
		t.Fatalf("HEAD blob: %d %v", code, hdr)
	}
	code, _, body = do(t, "GET", base+d, nil, "Range", "bytes=10-19")
	if code != 206 || string(body) != "0123456789" {
		t.Fatalf("range GET: %d %q", code, body)
	}

	// Chunked: POST, PATCH with Content-Range twice, PUT with the digest.
	blob2 := append(append([]byte{}, blob...), "tail"...)
	d2 := sha(blob2)
	code, hdr, _ = do(t, "POST", base+"uploads/", nil)
	if code != 202 || hdr.Get("Location") == "" {
		t.Fatalf("start upload: %d %v", code, hdr)
	}
	loc := "http://" + host + hdr.Get("Location")
	code, hdr, _ = do(t, "PATCH", loc, blob2[:5000], "Content-Range", "0-4999")
	if code != 202 || hdr.Get("Range") != "0-4999" {
		t.Fatalf("first chunk: %d %v", code, hdr)
	}
	if code, _, _ := do(t, "PATCH", loc, blob2[4000:], "Content-Range", "4000-10003"); code != 416 {
		t.Fatalf("overlapping chunk: %d, want 416", code)
	}
	code, hdr, _ = do(t, "GET", loc, nil)
	if code != 204 || hdr.Get("Range") != "0-4999" {
		t.Fatalf("upload status: %d %v", code, hdr)
	}
	if code, _, _ := do(t, "PATCH", loc, blob2[5000:], "Content-Range", fmt.Sprintf("5000-%d", len(blob2)-1)); code != 202 {
		t.Fatalf("second chunk: %d", code)
	}
	if code, _, _ := do(t, "PUT", loc+"?digest="+d2, nil); code != 201 {
		t.Fatalf("finish upload: %d", code)
	}
	if code, _, body := do(t, "GET", base+d2, nil); code != 200 || !bytes.Equal(body, blob2) {
		t.Fatalf("chunked blob read back: %d, %d bytes", code, len(body))
	}
	if code, _, _ := do(t, "PUT", loc+"?digest="+d2, nil); code != 404 {
		t.Fatalf("reusing a finished upload: %d, want 404", code)
	}

	// A digest that does not match is refused and nothing is stored.
	wrong := sha([]byte("something else"))
	if code, _, body := do(t, "POST", base+"uploads/?digest="+wrong, blob); code != 400 || !strings.Contains(string(body), "DIGEST_INVALID") {
		t.Fatalf("mismatched digest: %d %s", code, body)
	}
	if code, _, _ := do(t, "HEAD", base+wrong, nil); code != 404 {
		t.Fatalf("blob of a refused upload exists: %d", code)
	}

	// Mount of a known blob from another repository completes at once.
	code, _, _ = do(t, "POST", "http://"+host+"/v2/other/blobs/uploads/?mount="+d+"&from=up", nil)
	if code != 201 {
		t.Fatalf("mount: %d, want 201", code)
	}
	// Cancelled upload is gone.
	_, hdr, _ = do(t, "POST", base+"uploads/", nil)
	loc = "http://" + host + hdr.Get("Location")
	if code, _, _ := do(t, "DELETE", loc, nil); code != 204 {
		t.Fatalf("cancel upload: %d", code)
	}
	if code, _, _ := do(t, "GET", loc, nil); code != 404 {
		t.Fatalf("cancelled upload status: %d", code)
	}
}

func TestManifestValidation(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	mf := func(digest string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest + `","size":2},"layers":[]}`)
	}
	ct := []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}
	missing := sha([]byte("{}"))
	if code, _, body := do(t, "PUT", "http://"+host+"/v2/m/manifests/x", mf(missing), ct...); code != 400 || !strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN") {
		t.Fatalf("manifest with a missing config: %d %s", code, body)
	}
	do(t, "POST", "http://"+host+"/v2/m/blobs/uploads/?digest="+missing, []byte("{}"))
	m := mf(missing)
	if code, _, _ := do(t, "PUT", "http://"+host+"/v2/m/manifests/"+sha([]byte("other")), m, ct...); code != 400 {
		t.Fatalf("manifest PUT to a wrong digest: %d, want 400", code)
	}
	code, hdr, _ := do(t, "PUT", "http://"+host+"/v2/m/manifests/"+sha(m), m, ct...)
	if code != 201 || hdr.Get("Docker-Content-Digest") != sha(m) {
		t.Fatalf("manifest PUT by digest: %d %v", code, hdr)
	}
	code, hdr, body := do(t, "GET", "http://"+host+"/v2/m/manifests/"+sha(m), nil)
	if code != 200 || !bytes.Equal(body, m) || hdr.Get("Content-Type") != ct[1] {
		t.Fatalf("manifest GET: %d %v %s", code, hdr, body)
	}
	for _, bad := range []string{"-bad", ".hidden", strings.Repeat("t", 129)} {
		if code, _, _ := do(t, "PUT", "http://"+host+"/v2/m/manifests/"+bad, m, ct...); code != 400 {
			t.Fatalf("PUT to tag %q: %d, want 400", bad, code)
		}
	}
	if code, _, _ := do(t, "PUT", "http://"+host+"/v2/m/manifests/ok", []byte("not json"), ct...); code != 400 {
		t.Fatalf("PUT of invalid JSON: %d, want 400", code)
	}
	for _, p := range []string{"/v2/UPPER/tags/list", "/v2/a/../../etc/manifests/x", "/v2/-a/tags/list", "/v2/a//b/tags/list"} {
		if code, _, _ := do(t, "GET", "http://"+host+p, nil); code != 400 && code != 404 {
			t.Fatalf("GET %s: %d, want 400 or 404", p, code)
		}
	}
}

func TestIndexAndCatalog(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	idx, err := random.Index(500, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref(t, host+"/multi/arch:v1"), idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	got, err := remote.Index(ref(t, host+"/multi/arch:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatalf("index does not validate: %v", err)
	}
	push(t, host+"/a:1", randomImage(t))
	reg, _ := name.NewRegistry(host)
	repos, err := remote.Catalog(context.Background(), reg)
	if err != nil || strings.Join(repos, ",") != "a,multi/arch" {
		t.Fatalf("catalog = %v, %v", repos, err)
	}
}

func TestDeleteDisabled(t *testing.T) {
	t.Parallel()
	reg, err := embedregistry.New(t.TempDir(), &embedregistry.Options{DisableDelete: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	host := srv.Listener.Addr().String()
	push(t, host+"/x:a", randomImage(t))
	code, _, body := do(t, "DELETE", srv.URL+"/v2/x/manifests/a", nil)
	if code != http.StatusMethodNotAllowed || !strings.Contains(string(body), "UNSUPPORTED") {
		t.Fatalf("DELETE with deletes disabled: %d %s", code, body)
	}
}

func TestGarbageCollect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	host, reg := registrytest.EmbeddedAt(t, dir)
	keep := randomImage(t)
	drop := randomImage(t)
	push(t, host+"/gc:keep", keep)
	dd := push(t, host+"/gc:drop", drop)
	untagged := push(t, host+"/gc:untagged", randomImage(t))
	if err := remote.Delete(ref(t, host+"/gc:untagged")); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref(t, host+"/gc@"+dd.String())); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// With the default grace period, fresh blobs are all kept.
	st, err := reg.GarbageCollect(ctx, nil)
	if err != nil || st.BlobsRemoved != 0 {
		t.Fatalf("GC within grace = %+v, %v; want nothing removed", st, err)
	}
	// Age every file so that the grace period has passed.
	old := time.Now().Add(-2 * time.Hour)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	st, err = reg.GarbageCollect(ctx, &embedregistry.GCOptions{UntaggedManifests: true})
	if err != nil {
		t.Fatal(err)
	}
	// drop: 2 layers + config; untagged: 2 layers + config, after its
	// manifest went as untagged.
	if st.ManifestsRemoved != 1 || st.BlobsRemoved != 6 {
		t.Fatalf("GC = %+v; want 1 manifest and 6 blobs removed", st)
	}
	got, err := remote.Image(ref(t, host+"/gc:keep"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("kept image broken after GC: %v", err)
	}
	if _, err := remote.Head(ref(t, host+"/gc@"+untagged.String())); err == nil {
		t.Fatal("untagged manifest survived GC")
	}
}

func TestConcurrentPushes(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	shared := randomImage(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	digests := make([]v1.Hash, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := shared
			if i%2 == 1 {
				img, _ = random.Image(1000, 1)
			}
			digests[i], _ = img.Digest()
			r, _ := name.ParseReference(fmt.Sprintf("%s/conc:t%d", host, i))
			errs <- remote.Write(r, img)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent push: %v", err)
		}
	}
	for i, want := range digests {
		desc, err := remote.Head(ref(t, fmt.Sprintf("%s/conc:t%d", host, i)))
		if err != nil || desc.Digest != want {
			t.Fatalf("tag t%d = %v, %v; want %s", i, desc, err, want)
		}
	}
}

func TestTagsJSONShape(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	push(t, host+"/shape:v1", randomImage(t))
	_, _, body := do(t, "GET", "http://"+host+"/v2/shape/tags/list", nil)
	var got struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Name != "shape" || len(got.Tags) != 1 {
		t.Fatalf("tags body %s: %+v %v", body, got, err)
	}
}

func TestUnfinishedUploadsDiscarded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := embedregistry.New(dir, &embedregistry.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	_, hdr, _ := do(t, "POST", srv.URL+"/v2/u/blobs/uploads/", nil)
	loc := srv.URL + hdr.Get("Location")
	if code, _, _ := do(t, "PATCH", loc, []byte("partial")); code != 202 {
		t.Fatalf("PATCH: %d", code)
	}
	srv.Close()
	reg.Close()
	if _, err := reg.GarbageCollect(context.Background(), nil); err == nil {
		t.Fatal("GarbageCollect after Close: nil error")
	}
	host, _ := registrytest.EmbeddedAt(t, dir)
	if code, _, _ := do(t, "GET", "http://"+host+hdr.Get("Location"), nil); code != 404 {
		t.Fatalf("upload of a previous run: %d, want 404", code)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "uploads"))
	if len(ents) != 0 {
		t.Fatalf("uploads left on disk: %v", ents)
	}
}

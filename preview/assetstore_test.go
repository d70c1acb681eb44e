package preview_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// memDriver is an AssetDriver in memory that records what the bucket asks
// of it. It stores whatever PutBlob reads, up to the blob's size, like an
// HTTP store with a Content-Length would: the bucket's verification is
// what keeps wrong content out.
type memDriver struct {
	mu        sync.Mutex
	blobs     map[string][]byte
	manifests map[string]preview.StoredManifest
	calls     []string // "has", "put <digest>", "manifest <prefix>", ...
	inFlight  atomic.Int32
	maxFlight atomic.Int32
	putDelay  time.Duration
	putErr    func(info preview.BlobInfo) error
	locked    atomic.Int32
	readAll   bool // read to io.EOF (like fsassets) instead of stopping at the size
}

func newMemDriver() *memDriver {
	return &memDriver{blobs: map[string][]byte{}, manifests: map[string]preview.StoredManifest{}}
}

func (d *memDriver) record(c string) {
	d.mu.Lock()
	d.calls = append(d.calls, c)
	d.mu.Unlock()
}

func (d *memDriver) HasBlobs(ctx context.Context, digests []string) (map[string]bool, error) {
	d.record(fmt.Sprintf("has %d", len(digests)))
	if !sort.StringsAreSorted(digests) {
		return nil, errors.New("digests not sorted")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]bool{}
	for _, dg := range digests {
		if _, ok := d.blobs[dg]; ok {
			out[dg] = true
		}
	}
	return out, nil
}

func (d *memDriver) PutBlob(ctx context.Context, info preview.BlobInfo, r io.Reader) error {
	n := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	for {
		m := d.maxFlight.Load()
		if n <= m || d.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	d.record("put " + info.Digest)
	if d.putDelay > 0 {
		time.Sleep(d.putDelay)
	}
	if d.putErr != nil {
		if err := d.putErr(info); err != nil {
			return err
		}
	}
	var b []byte
	var err error
	if d.readAll {
		b, err = io.ReadAll(r)
	} else {
		b = make([]byte, info.Size)
		_, err = io.ReadFull(r, b)
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.blobs[info.Digest] = b
	d.mu.Unlock()
	return nil
}

func (d *memDriver) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.blobs[digest]
	if !ok {
		return nil, preview.Errorf(preview.NotFound, "no blob")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (d *memDriver) GetManifest(ctx context.Context, prefix string) (preview.StoredManifest, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sm, ok := d.manifests[prefix]
	if !ok {
		return sm, preview.Errorf(preview.NotFound, "no manifest")
	}
	return sm, nil
}

func (d *memDriver) PutManifest(ctx context.Context, prefix string, m preview.StoredManifest) error {
	d.record("manifest " + prefix)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range m.Manifest.Files {
		if _, ok := d.blobs[f.Digest]; !ok {
			return fmt.Errorf("manifest written before blob %s", f.Digest)
		}
	}
	d.manifests[prefix] = m
	return nil
}

func (d *memDriver) ListManifests(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []preview.ManifestInfo
	for p, sm := range d.manifests {
		out = append(out, preview.ManifestInfo{Prefix: p, Labels: sm.Labels}) // unfiltered: the bucket filters
	}
	return out, nil
}

func (d *memDriver) DeleteManifest(ctx context.Context, prefix string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.manifests, prefix)
	return nil
}

// lockingDriver adds AssetPublishLocker.
type lockingDriver struct{ *memDriver }

func (d lockingDriver) LockPublish(ctx context.Context) (func(), error) {
	d.locked.Add(1)
	d.record("lock")
	return func() { d.record("unlock") }, nil
}

type files map[string]string

func (f files) manifest() preview.Manifest {
	m := preview.Manifest{Files: map[string]preview.AssetFile{}}
	for p, c := range f {
		m.Files[p] = preview.AssetFile{Digest: digestOf(c), Size: int64(len(c)), ContentType: preview.ContentType(p)}
	}
	return m
}

func (f files) open(p string) (io.ReadCloser, error) {
	c, ok := f[p]
	if !ok {
		return nil, errors.New("no file " + p)
	}
	return io.NopCloser(strings.NewReader(c)), nil
}

func digestOf(c string) string {
	sum := sha256.Sum256([]byte(c))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestAssetBucketConformance(t *testing.T) {
	t.Parallel()
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore { return preview.NewAssetBucket(newMemDriver(), nil) },
	})
}

func TestAssetBucketDedupeAndManifestLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newMemDriver()
	b := preview.NewAssetBucket(lockingDriver{d}, nil)
	f := files{"/b.js": "shared", "/a.js": "shared", "/index.html": "hi"}
	var opened []string
	var mu sync.Mutex
	open := func(p string) (io.ReadCloser, error) {
		mu.Lock()
		opened = append(opened, p)
		mu.Unlock()
		return f.open(p)
	}
	st, err := b.Publish(ctx, "hello/pr-1", f.manifest(), preview.Labels{"a": "1"}, open)
	if err != nil {
		t.Fatal(err)
	}
	if st != (preview.PublishStats{Files: 3, Uploaded: 2, UploadedBytes: 8, Reused: 1}) {
		t.Fatalf("stats %+v", st)
	}
	sort.Strings(opened)
	if strings.Join(opened, ",") != "/a.js,/index.html" {
		t.Fatalf("opened %v: want each blob read once, through its first path", opened)
	}
	calls := strings.Join(d.calls, "|")
	if !strings.HasPrefix(calls, "lock|has 2|put ") || !strings.HasSuffix(calls, "|manifest hello/pr-1|unlock") || strings.Count(calls, "put ") != 2 {
		t.Fatalf("calls %s: want lock, one HasBlobs, two PutBlobs, the manifest last, unlock", calls)
	}
	// Unchanged: HasBlobs again (a blob may have been collected), no
	// upload, no manifest write.
	d.calls = nil
	st, err = b.Publish(ctx, "hello/pr-1", f.manifest(), preview.Labels{"a": "1"}, nil)
	if err != nil || !st.Unchanged || st.Reused != 3 {
		t.Fatalf("republish: %+v, %v", st, err)
	}
	if calls := strings.Join(d.calls, "|"); calls != "lock|has 2|unlock" {
		t.Fatalf("republish calls %s", calls)
	}
	// New labels rewrite the manifest.
	d.calls = nil
	if st, err = b.Publish(ctx, "hello/pr-1", f.manifest(), preview.Labels{"a": "2"}, nil); err != nil || st.Unchanged {
		t.Fatalf("relabel: %+v, %v", st, err)
	}
}

func TestAssetBucketBoundedParallelUpload(t *testing.T) {
	t.Parallel()
	d := newMemDriver()
	d.putDelay = 5 * time.Millisecond
	b := preview.NewAssetBucket(d, &preview.AssetBucketOptions{Uploads: 3})
	f := files{}
	for i := range 20 {
		f[fmt.Sprintf("/%d.txt", i)] = fmt.Sprint(i)
	}
	st, err := b.Publish(context.Background(), "p", f.manifest(), nil, f.open)
	if err != nil || st.Uploaded != 20 {
		t.Fatalf("%+v, %v", st, err)
	}
	if m := d.maxFlight.Load(); m != 3 {
		t.Fatalf("at most %d PutBlob calls ran at once, want exactly the bound 3", m)
	}
}

// Wrong content is refused even by a driver that stores whatever it
// reads, and a failed publish leaves the old manifest.
func TestAssetBucketVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := files{"/a.txt": "right"}.manifest()
	for _, readAll := range []bool{false, true} {
		for name, content := range map[string]string{"wrong": "wrong", "short": "rig", "long": "right and more", "empty": ""} {
			d := newMemDriver()
			d.readAll = readAll
			b := preview.NewAssetBucket(d, &preview.AssetBucketOptions{Name: "memassets"})
			_, err := b.Publish(ctx, "p", m, nil, files{"/a.txt": content}.open)
			if name == "long" && !readAll {
				// A driver that stops at the size stores the right bytes.
				if err != nil {
					t.Fatalf("long, stopping at the size: %v", err)
				}
				continue
			}
			if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "does not match the manifest") {
				t.Fatalf("%s (readAll %v): %v, want InvalidArgument", name, readAll, err)
			}
			if strings.Count(err.Error(), "memassets") != 1 || !strings.HasPrefix(err.Error(), "memassets: publish p: ") {
				t.Fatalf("%s: error %q: want the bucket's name once, first", name, err)
			}
			if len(d.blobs) != 0 || len(d.manifests) != 0 {
				t.Fatalf("%s (readAll %v): stored %d blobs, %d manifests", name, readAll, len(d.blobs), len(d.manifests))
			}
		}
	}
	// The empty file is a valid blob; an empty file under another digest
	// is refused before the driver sees it.
	e := files{"/empty": ""}
	if st, err := preview.NewAssetBucket(newMemDriver(), nil).Publish(ctx, "p", e.manifest(), nil, e.open); err != nil || st.Uploaded != 1 {
		t.Fatalf("empty file: %+v, %v", st, err)
	}
	d := newMemDriver()
	lie := preview.Manifest{Files: map[string]preview.AssetFile{"/empty": {Digest: digestOf("x"), Size: 0}}}
	if _, err := preview.NewAssetBucket(d, nil).Publish(ctx, "p", lie, nil, e.open); preview.CodeOf(err) != preview.InvalidArgument || len(d.blobs) != 0 || len(d.calls) != 1 {
		t.Fatalf("size 0 under a non-empty digest: %v, %d blobs, calls %v", err, len(d.blobs), d.calls)
	}
}

type codedErr struct{}

func (codedErr) Error() string { return "backend says no" }

func TestAssetBucketErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newMemDriver()
	b := preview.NewAssetBucket(d, &preview.AssetBucketOptions{Name: "memassets"})
	f := files{"/a": "a", "/b": "b"}
	d.putErr = func(info preview.BlobInfo) error {
		if info.Digest == digestOf("b") {
			return preview.WithCode(preview.Unavailable, codedErr{})
		}
		return nil
	}
	_, err := b.Publish(ctx, "p", f.manifest(), nil, f.open)
	if preview.CodeOf(err) != preview.Unavailable || !errors.As(err, new(codedErr)) {
		t.Fatalf("driver error: %v (code %v): want its code and the driver's error reachable", err, preview.CodeOf(err))
	}
	var pe *preview.Error
	for e := error(err); errors.As(e, &pe); e = pe.Err {
		if pe.Err == nil {
			break
		}
		if errors.As(pe.Err, new(*preview.Error)) {
			t.Fatalf("error %q wraps a coded error twice", err)
		}
	}
	if len(d.manifests) != 0 {
		t.Fatal("manifest written after a failed upload")
	}
	// A blob another publish stored meanwhile counts as reused.
	d.putErr = func(preview.BlobInfo) error {
		d.mu.Lock()
		d.blobs[digestOf("c")] = []byte("c") // another publish stored it
		d.mu.Unlock()
		return preview.Errorf(preview.AlreadyExists, "there")
	}
	st, err := b.Publish(ctx, "p", files{"/c": "c"}.manifest(), nil, files{"/c": "c"}.open)
	if err != nil || st.Uploaded != 0 || st.Reused != 1 {
		t.Fatalf("AlreadyExists from the driver: %+v, %v", st, err)
	}
	// Unclassified driver errors become Internal, once.
	d.putErr = func(preview.BlobInfo) error { return errors.New("boom") }
	_, err = b.Publish(ctx, "q", files{"/d": "d"}.manifest(), nil, files{"/d": "d"}.open)
	if preview.CodeOf(err) != preview.Internal {
		t.Fatalf("unclassified: %v (code %v)", err, preview.CodeOf(err))
	}
	// Bad input never reaches the driver.
	d.calls = nil
	for _, bad := range []preview.Manifest{
		{Files: map[string]preview.AssetFile{"rel": {Digest: digestOf("x")}}},
		{Files: map[string]preview.AssetFile{"/a/../b": {Digest: digestOf("x")}}},
		{Files: map[string]preview.AssetFile{"/a//b": {Digest: digestOf("x")}}},
		{Files: map[string]preview.AssetFile{"/a/": {Digest: digestOf("x")}}},
		{Files: map[string]preview.AssetFile{"/a\\b": {Digest: digestOf("x")}}},
		{Files: map[string]preview.AssetFile{"/a": {Digest: "md5:x"}}},
		{Files: map[string]preview.AssetFile{"/a": {Digest: digestOf("x"), Size: -1}}},
	} {
		if _, err := b.Publish(ctx, "p", bad, nil, nil); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("manifest %v: %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := b.Open(ctx, "sha256:../../x"); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("Open of a bad digest: %v", err)
	}
	if len(d.calls) != 0 {
		t.Fatalf("bad input reached the driver: %v", d.calls)
	}
}

// A driver may rewind a seekable source to retry; verification restarts.
func TestAssetBucketRewind(t *testing.T) {
	t.Parallel()
	d := &rewindDriver{memDriver: newMemDriver()}
	b := preview.NewAssetBucket(d, nil)
	f := files{"/a": "content"}
	st, err := b.Publish(context.Background(), "p", f.manifest(), nil, func(p string) (io.ReadCloser, error) {
		return readSeekCloser{strings.NewReader(f[p])}, nil
	})
	if err != nil || st.Uploaded != 1 || !d.seekable {
		t.Fatalf("%+v, %v, seekable %v", st, err, d.seekable)
	}
}

type readSeekCloser struct{ *strings.Reader }

func (readSeekCloser) Close() error { return nil }

type rewindDriver struct {
	*memDriver
	seekable bool
}

func (d *rewindDriver) PutBlob(ctx context.Context, info preview.BlobInfo, r io.Reader) error {
	sk, ok := r.(io.Seeker)
	d.seekable = ok
	if !ok {
		return errors.New("not seekable")
	}
	half := make([]byte, info.Size/2)
	io.ReadFull(r, half)
	if _, err := sk.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return d.memDriver.PutBlob(ctx, info, r)
}

// TestAssetBucketPublishOnto: a publish onto a stored manifest looks up
// only the blobs that manifest does not name, uploads only those, and
// writes a complete manifest; a base that does not exist is a full lookup.
func TestAssetBucketPublishOnto(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newMemDriver()
	b := preview.NewAssetBucket(d, nil)
	v1 := files{"/index.html": "<h1>v1</h1>", "/app.js": "js", "/style.css": "css"}
	if _, err := b.Publish(ctx, "hello/pr-1/1-aaaaaaa", v1.manifest(), nil, v1.open); err != nil {
		t.Fatal(err)
	}
	v2 := files{"/index.html": "<h1>v2</h1>", "/app.js": "js", "/style.css": "css"}
	d.calls = nil
	st, err := b.PublishOnto(ctx, "hello/pr-1/2-bbbbbbb", v2.manifest(), nil, v2.open, "hello/pr-1/1-aaaaaaa")
	if err != nil || st.Uploaded != 1 || st.Reused != 2 {
		t.Fatalf("PublishOnto = %+v, %v", st, err)
	}
	calls := strings.Join(d.calls, "|")
	if !strings.Contains(calls, "has 1|") || strings.Count(calls, "put ") != 1 {
		t.Fatalf("calls %s: want one lookup of the one new blob and one upload", calls)
	}
	got, err := b.Manifest(ctx, "hello/pr-1/2-bbbbbbb")
	if err != nil || !got.Equal(v2.manifest()) {
		t.Fatalf("manifest = %+v, %v", got, err)
	}
	d.calls = nil
	v3 := files{"/index.html": "<h1>v3</h1>", "/app.js": "js", "/style.css": "css"}
	if _, err := b.PublishOnto(ctx, "hello/pr-1/3-ccccccc", v3.manifest(), nil, v3.open, "hello/pr-1/9-gone000"); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(d.calls, "|"); !strings.Contains(calls, "has 3|") {
		t.Fatalf("calls %s: a missing base must mean a full lookup", calls)
	}
}

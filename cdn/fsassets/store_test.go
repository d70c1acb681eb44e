package fsassets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore { return newStore(t) },
	})
}

func TestConformanceViaURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore {
			s, err := preview.AssetStores.Open(context.Background(), "fs://"+filepath.ToSlash(dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
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

func labels(pr string) preview.Labels {
	return preview.Labels{preview.LabelApp: "hello", preview.LabelPR: pr}
}

func countBlobs(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	filepath.WalkDir(s.d.blobs, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestLayoutAndDedupe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a := files{"/index.html": "<h1>a</h1>", "/lib.js": "shared", "/copy.js": "shared"}
	st, err := s.Publish(ctx, "hello/pr-1/abc", a.manifest(), labels("1"), a.open)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Uploaded != 2 || st.Reused != 1 || st.UploadedBytes != int64(len("<h1>a</h1>")+len("shared")) {
		t.Fatalf("stats %+v: want 3 files, 2 distinct blobs uploaded, 1 reused", st)
	}
	h := digestOf("shared")[len("sha256:"):]
	b, err := os.ReadFile(filepath.Join(s.Dir(), "blobs", "sha256", h[:2], h))
	if err != nil || string(b) != "shared" {
		t.Fatalf("blob file at the documented path: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "manifests", "hello", "pr-1", "abc.json")); err != nil {
		t.Fatalf("manifest file at the documented path: %v", err)
	}
	b2 := files{"/index.html": "<h1>b</h1>", "/lib.js": "shared"}
	if _, err := s.Publish(ctx, "hello/pr-2/abc", b2.manifest(), labels("2"), b2.open); err != nil {
		t.Fatal(err)
	}
	if n := countBlobs(t, s); n != 3 {
		t.Fatalf("%d blob files after two previews sharing one file, want 3", n)
	}
	if ents, _ := os.ReadDir(s.d.tmp); len(ents) != 0 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	p, err := s.BlobPath(digestOf("shared"))
	if err != nil || filepath.Base(p) != h {
		t.Fatalf("BlobPath = %q, %v", p, err)
	}
	if _, err := s.BlobPath(digestOf("nope")); !preview.IsNotFound(err) {
		t.Fatalf("BlobPath of a missing blob: %v, want NotFound", err)
	}
	rc, err := s.Open(ctx, digestOf("shared"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(io.ReadSeeker); !ok {
		t.Fatalf("Open returned %T, want a seekable file for http.ServeContent", rc)
	}
}

func TestLabelsChangeRewritesManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a := files{"/index.html": "x"}
	if _, err := s.Publish(ctx, "hello/pr-1", a.manifest(), labels("1"), a.open); err != nil {
		t.Fatal(err)
	}
	st, err := s.Publish(ctx, "hello/pr-1", a.manifest(), labels("1").With(preview.LabelCommit, "beef"), a.open)
	if err != nil || st.Unchanged {
		t.Fatalf("Publish with new labels: %+v, %v; want changed", st, err)
	}
	got, err := s.List(ctx, preview.Labels{preview.LabelCommit: "beef"})
	if err != nil || len(got) != 1 || got[0].Prefix != "hello/pr-1" {
		t.Fatalf("List by the new label = %+v, %v", got, err)
	}
}

func TestCorruptAndFailedUploadsLeaveNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m := files{"/a.txt": "right"}.manifest()
	for name, open := range map[string]func(string) (io.ReadCloser, error){
		"wrong content": files{"/a.txt": "wrong"}.open,
		"too long":      files{"/a.txt": "right and more"}.open,
		"too short":     files{"/a.txt": "rig"}.open,
		"reader fails": func(string) (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader("ri"), errReader{})), nil
		},
	} {
		_, err := s.Publish(ctx, "hello/pr-1", m, nil, open)
		if err == nil {
			t.Fatalf("%s: Publish succeeded", name)
		}
		if name != "reader fails" && preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("%s: code %v (%v), want InvalidArgument", name, preview.CodeOf(err), err)
		}
		if n := countBlobs(t, s); n != 0 {
			t.Fatalf("%s: %d blobs stored", name, n)
		}
		if ents, _ := os.ReadDir(s.d.tmp); len(ents) != 0 {
			t.Fatalf("%s: temporary files left: %v", name, ents)
		}
		if _, err := s.Manifest(ctx, "hello/pr-1"); !preview.IsNotFound(err) {
			t.Fatalf("%s: manifest written: %v", name, err)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// Readers of a manifest see the old or the new one while it is replaced,
// never a partial file.
func TestManifestReplacementIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Big enough that a non-atomic write would be observable.
	a, b := files{}, files{}
	for i := range 300 {
		p := "/f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i), byte(i >> 8)})
		a[p] = "a" + p
		b[p] = "b" + p
	}
	ma, mb := a.manifest(), b.manifest()
	if _, err := s.Publish(ctx, "hello/pr-1", ma, nil, a.open); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := s.Manifest(ctx, "hello/pr-1")
			if err != nil || !(m.Equal(ma) || m.Equal(mb)) {
				readErr = errors.New("reader saw a manifest that is neither old nor new")
				if err != nil {
					readErr = err
				}
				return
			}
		}
	}()
	for i := range 10 {
		m, f := ma, a
		if i%2 == 0 {
			m, f = mb, b
		}
		if _, err := s.Publish(ctx, "hello/pr-1", m, nil, f.open); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
}

func TestDeleteCollectsUnreferencedBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	a := files{"/index.html": "only a", "/lib.js": "shared"}
	b := files{"/index.html": "only b", "/lib.js": "shared"}
	for _, x := range []struct {
		prefix string
		f      files
	}{{"hello/pr-1", a}, {"hello/pr-2", b}} {
		if _, err := s.Publish(ctx, x.prefix, x.f.manifest(), nil, x.f.open); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "hello/pr-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, digestOf("only a")); !preview.IsNotFound(err) {
		t.Fatalf("blob only the deleted manifest used: %v, want NotFound", err)
	}
	for _, c := range []string{"shared", "only b"} {
		if _, err := s.BlobPath(digestOf(c)); err != nil {
			t.Fatalf("blob %q still referenced by pr-2: %v", c, err)
		}
	}
	if err := s.Delete(ctx, "hello/pr-2"); err != nil {
		t.Fatal(err)
	}
	if n := countBlobs(t, s); n != 0 {
		t.Fatalf("%d blobs left after deleting every manifest", n)
	}
	if ents, _ := os.ReadDir(s.d.manifests); len(ents) != 0 {
		t.Fatalf("empty manifest directories left: %v", ents)
	}
	if err := s.Delete(ctx, "hello/pr-2"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestCollectRemovesOrphans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := New(t.TempDir(), &Options{Uploads: 1}) // "/a" is written before "/b" fails
	if err != nil {
		t.Fatal(err)
	}
	keep := files{"/index.html": "keep"}
	if _, err := s.Publish(ctx, "hello/pr-1", keep.manifest(), nil, keep.open); err != nil {
		t.Fatal(err)
	}
	// A publish that wrote one blob and then failed leaves an orphan.
	half := files{"/a": "orphan"}
	m := half.manifest()
	m.Files["/b"] = preview.AssetFile{Digest: digestOf("never"), Size: 5}
	if _, err := s.Publish(ctx, "hello/pr-2", m, nil, half.open); err == nil {
		t.Fatal("publish with a missing file succeeded")
	}
	os.WriteFile(filepath.Join(s.d.tmp, "blob-crashed"), []byte("x"), 0o644)
	st, err := s.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.Bytes != int64(len("orphan")) || st.Temp != 1 {
		t.Fatalf("Collect = %+v, want the one orphan blob and the one temp file", st)
	}
	if _, err := s.BlobPath(digestOf("keep")); err != nil {
		t.Fatalf("referenced blob removed: %v", err)
	}
}

func TestDeleteWaitsForPublishInAnotherStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s1, _ := New(dir, nil)
	s2, _ := New(dir, nil)
	old := files{"/lib.js": "shared"}
	if _, err := s1.Publish(ctx, "hello/pr-1", old.manifest(), nil, old.open); err != nil {
		t.Fatal(err)
	}
	// s2 publishes a manifest that reuses the shared blob while s1 deletes
	// the only manifest referencing it. The publish holds its lock while
	// its opener blocks; the delete must wait, then keep the blob.
	entered, release := make(chan struct{}), make(chan struct{})
	next := files{"/lib.js": "shared", "/new.js": "new"}
	done := make(chan error, 1)
	go func() {
		_, err := s2.Publish(ctx, "hello/pr-2", next.manifest(), nil, func(p string) (io.ReadCloser, error) {
			close(entered)
			<-release
			return next.open(p)
		})
		done <- err
	}()
	<-entered
	delDone := make(chan error, 1)
	go func() { delDone <- s1.Delete(ctx, "hello/pr-1") }()
	select {
	case err := <-delDone:
		t.Fatalf("Delete finished (%v) while a Publish held the lock", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-delDone; err != nil {
		t.Fatal(err)
	}
	if _, err := s1.BlobPath(digestOf("shared")); err != nil {
		t.Fatalf("blob referenced by the concurrently published manifest was removed: %v", err)
	}
}

func TestPrefixValidation(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"hello", "hello/pr-42", "hello/pr-42/3f2c1ab", "a_b.c/D-1"} {
		if err := preview.ValidateAssetPrefix(ok); err != nil {
			t.Errorf("preview.ValidateAssetPrefix(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/", "a//b", "..", "a/../b", "a/./b", ".hidden", "a/b c", "a\\b", "x.json/y", "a/b.json", strings.Repeat("a", 513)} {
		if err := preview.ValidateAssetPrefix(bad); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("preview.ValidateAssetPrefix(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestListSelectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	f := files{"/index.html": "x"}
	for _, pr := range []string{"1", "2", "3"} {
		if _, err := s.Publish(ctx, "hello/pr-"+pr, f.manifest(), labels(pr), f.open); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Publish(ctx, "other", f.manifest(), nil, f.open); err != nil {
		t.Fatal(err)
	}
	all, _ := s.List(ctx, nil)
	if len(all) != 4 || all[0].Prefix != "hello/pr-1" || all[3].Prefix != "other" {
		t.Fatalf("List(nil) = %+v", all)
	}
	two, _ := s.List(ctx, preview.Labels{preview.LabelPR: "2"})
	if len(two) != 1 || two[0].Prefix != "hello/pr-2" || two[0].Labels[preview.LabelApp] != "hello" {
		t.Fatalf("List(pr=2) = %+v", two)
	}
	none, err := s.List(ctx, preview.Labels{preview.LabelPR: "9"})
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("List(pr=9) = %#v, %v; want an empty list", none, err)
	}
}

func TestURLForms(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, c := range []struct{ url, want string }{
		{"fs://" + home + "/a", home + "/a"},
		{"fs://localhost" + home + "/b", home + "/b"},
		{"fs:rel/dir", filepath.Join(home, "rel/dir")},
		{"fs://", filepath.Join(home, "assets")},
		{"fs:", filepath.Join(home, "assets")},
	} {
		s, err := preview.AssetStores.Open(context.Background(), c.url, &preview.OpenOptions{Home: home})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := s.(*Store).Dir(); got != c.want {
			t.Errorf("%s opened %s, want %s", c.url, got, c.want)
		}
	}
	for _, bad := range []string{"fs://relative/x", "fs:///x?gc=1", "fs://"} {
		o := &preview.OpenOptions{Home: home}
		if bad == "fs://" {
			o.Home = ""
		}
		if _, err := preview.AssetStores.Open(context.Background(), bad, o); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", bad, err)
		}
	}
}

func TestNilOpenWithMissingBlobs(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, err := s.Publish(context.Background(), "x", files{"/a": "a"}.manifest(), nil, nil)
	if preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Publish with nil open: %v", err)
	}
	// An empty manifest needs no open function.
	if _, err := s.Publish(context.Background(), "x", preview.Manifest{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest(context.Background(), "x")
	if err != nil || m.Files == nil || len(m.Files) != 0 {
		t.Fatalf("empty manifest reads back as %#v, %v", m, err)
	}
}

package previewtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// AssetStoreHarness builds the AssetStore under test.
type AssetStoreHarness struct {
	// New returns a store on a real backend. Stores returned by separate
	// calls may share the backend.
	New func(t *testing.T) preview.AssetStore
}

type fileSet map[string][]byte

func (fs fileSet) manifest() preview.Manifest {
	m := preview.Manifest{Files: map[string]preview.AssetFile{}}
	for p, b := range fs {
		sum := sha256.Sum256(b)
		m.Files[p] = preview.AssetFile{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b)), ContentType: preview.ContentType(p)}
	}
	return m
}

// opener returns an open func over fs that counts the paths it opened.
func (fs fileSet) opener(opened *[]string, mu *sync.Mutex) func(string) (io.ReadCloser, error) {
	return func(p string) (io.ReadCloser, error) {
		mu.Lock()
		*opened = append(*opened, p)
		mu.Unlock()
		b, ok := fs[p]
		if !ok {
			return nil, errors.New("no such test file " + p)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// RunAssetStoreTests runs the AssetStore conformance suite.
func RunAssetStoreTests(t *testing.T, h AssetStoreHarness) {
	t.Run("PublishReadBack", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		files := fileSet{"/index.html": []byte("<h1>hi " + app + "</h1>"), "/app.js": []byte("console.log(1)"), "/img/logo.svg": []byte("<svg/>")}
		var opened []string
		var mu sync.Mutex
		st, err := s.Publish(ctx, preview.AssetPrefix(app, 1), files.manifest(), labelsFor(app, 1), files.opener(&opened, &mu))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if st.Files != 3 || st.Uploaded != 3 || st.Reused != 0 || st.Unchanged {
			t.Fatalf("first Publish stats = %+v, want 3 files, 3 uploaded", st)
		}
		got, err := s.Manifest(ctx, preview.AssetPrefix(app, 1))
		if err != nil {
			t.Fatalf("Manifest: %v", err)
		}
		if !got.Equal(files.manifest()) {
			t.Fatalf("Manifest = %+v, want %+v", got, files.manifest())
		}
		for p, want := range files {
			rc, err := s.Open(ctx, got.Files[p].Digest)
			if err != nil {
				t.Fatalf("Open(%s): %v", p, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(b, want) {
				t.Fatalf("Open(%s) = %q, %v; want %q", p, b, err, want)
			}
		}
	})

	t.Run("RepublishUploadsNothing", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		files := fileSet{"/index.html": []byte("same " + app), "/a.css": []byte("body{}" + app)}
		var opened []string
		var mu sync.Mutex
		if _, err := s.Publish(ctx, preview.AssetPrefix(app, 1), files.manifest(), labelsFor(app, 1), files.opener(&opened, &mu)); err != nil {
			t.Fatal(err)
		}
		opened = nil
		st, err := s.Publish(ctx, preview.AssetPrefix(app, 1), files.manifest(), labelsFor(app, 1), files.opener(&opened, &mu))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Unchanged || st.Uploaded != 0 || len(opened) != 0 {
			t.Fatalf("second Publish: stats %+v, opened %v; want unchanged and nothing opened", st, opened)
		}
	})

	t.Run("OnlyNewBlobsUploaded", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		shared := []byte("shared across previews " + app)
		a := fileSet{"/index.html": []byte("A " + app), "/lib.js": shared}
		b := fileSet{"/index.html": []byte("B " + app), "/lib.js": shared, "/copy.js": shared}
		var opened []string
		var mu sync.Mutex
		if _, err := s.Publish(ctx, preview.AssetPrefix(app, 1), a.manifest(), labelsFor(app, 1), a.opener(&opened, &mu)); err != nil {
			t.Fatal(err)
		}
		opened = nil
		st, err := s.Publish(ctx, preview.AssetPrefix(app, 2), b.manifest(), labelsFor(app, 2), b.opener(&opened, &mu))
		if err != nil {
			t.Fatal(err)
		}
		if st.Uploaded != 1 || len(opened) != 1 || opened[0] != "/index.html" {
			t.Fatalf("Publish of a preview sharing blobs: stats %+v, opened %v; want only /index.html uploaded", st, opened)
		}
		if st.Files != 3 || st.Reused != 2 {
			t.Fatalf("stats %+v: want 3 files, 2 reused", st)
		}
	})

	t.Run("FailedPublishKeepsOldManifest", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		prefix := preview.AssetPrefix(app, 1)
		old := fileSet{"/index.html": []byte("old " + app)}
		var opened []string
		var mu sync.Mutex
		if _, err := s.Publish(ctx, prefix, old.manifest(), labelsFor(app, 1), old.opener(&opened, &mu)); err != nil {
			t.Fatal(err)
		}
		next := fileSet{"/index.html": []byte("new " + app), "/broken.js": []byte("x" + app)}
		m := next.manifest()
		delete(next, "/broken.js") // the opener cannot supply this one
		if _, err := s.Publish(ctx, prefix, m, labelsFor(app, 1), next.opener(&opened, &mu)); err == nil {
			t.Fatal("Publish with an unreadable file: got nil error")
		}
		got, err := s.Manifest(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(old.manifest()) {
			t.Fatalf("after a failed Publish the manifest is %+v, want the old one", got)
		}
	})

	t.Run("CorruptContentRejected", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		files := fileSet{"/index.html": []byte("the real content " + app)}
		m := files.manifest()
		liar := func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader([]byte("something else"))), nil
		}
		if _, err := s.Publish(ctx, preview.AssetPrefix(app, 1), m, labelsFor(app, 1), liar); err == nil {
			t.Fatal("Publish whose content does not match its digest: got nil error")
		}
		if _, err := s.Open(ctx, m.Files["/index.html"].Digest); !preview.IsNotFound(err) {
			t.Fatalf("Open of a blob whose upload was rejected: err = %v, want NotFound", err)
		}
	})

	t.Run("ListDelete", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		files := fileSet{"/index.html": []byte("x " + app)}
		var opened []string
		var mu sync.Mutex
		for pr := 1; pr <= 2; pr++ {
			if _, err := s.Publish(ctx, preview.AssetPrefix(app, pr), files.manifest(), labelsFor(app, pr), files.opener(&opened, &mu)); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.List(ctx, preview.Selector("conformance", app, 0))
		if err != nil || len(all) != 2 {
			t.Fatalf("List(app) = %v, %v; want 2 manifests", all, err)
		}
		one, err := s.List(ctx, preview.Selector("conformance", app, 2))
		if err != nil || len(one) != 1 || one[0].Prefix != preview.AssetPrefix(app, 2) || one[0].Labels[preview.LabelPR] != "2" {
			t.Fatalf("List(app, pr 2) = %+v, %v; want the one manifest of PR 2 with its labels", one, err)
		}
		if err := s.Delete(ctx, preview.AssetPrefix(app, 2)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Delete(ctx, preview.AssetPrefix(app, 2)); err != nil {
			t.Fatalf("Delete of a deleted prefix: %v, want success", err)
		}
		if _, err := s.Manifest(ctx, preview.AssetPrefix(app, 2)); !preview.IsNotFound(err) {
			t.Fatalf("Manifest after Delete: %v, want NotFound", err)
		}
		// The blob is still referenced by PR 1 and must stay readable.
		rc, err := s.Open(ctx, files.manifest().Files["/index.html"].Digest)
		if err != nil {
			t.Fatalf("Open of a blob PR 1 still uses after PR 2 was deleted: %v", err)
		}
		rc.Close()
	})

	t.Run("MissingAndInvalid", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		if _, err := s.Manifest(ctx, preview.AssetPrefix(uniqueApp(t), 9)); !preview.IsNotFound(err) {
			t.Fatalf("Manifest of an unknown prefix: %v, want NotFound", err)
		}
		missing := "sha256:" + hex.EncodeToString(make([]byte, 32))
		if _, err := s.Open(ctx, missing); !preview.IsNotFound(err) {
			t.Fatalf("Open of an unknown digest: %v, want NotFound", err)
		}
		for _, bad := range []string{"../../etc/passwd", "sha256:../x", "md5:abc"} {
			if _, err := s.Open(ctx, bad); err == nil {
				t.Fatalf("Open(%q): got nil error", bad)
			}
		}
		for _, bad := range []string{"../escape", "/abs", "a/../../b", ""} {
			_, err := s.Publish(ctx, bad, fileSet{}.manifest(), nil, nil)
			wantCode(t, err, preview.InvalidArgument, "Publish to prefix "+bad)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		s := h.New(t)
		app := uniqueApp(t)
		files := fileSet{"/index.html": []byte("c " + app)}
		var opened []string
		var mu sync.Mutex
		_, err := s.Publish(cancelled(), preview.AssetPrefix(app, 1), files.manifest(), labelsFor(app, 1), files.opener(&opened, &mu))
		wantCancelled(t, err, "Publish")
	})

	t.Run("ConcurrentPublish", func(t *testing.T) {
		s := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		shared := []byte("shared by all " + app)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for pr := 1; pr <= 8; pr++ {
			wg.Add(1)
			go func(pr int) {
				defer wg.Done()
				files := fileSet{"/lib.js": shared, "/index.html": []byte{byte(pr)}}
				var opened []string
				var mu sync.Mutex
				_, err := s.Publish(ctx, preview.AssetPrefix(app, pr), files.manifest(), labelsFor(app, pr), files.opener(&opened, &mu))
				errs <- err
			}(pr)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Publish: %v", err)
			}
		}
		all, err := s.List(ctx, preview.Selector("conformance", app, 0))
		if err != nil || len(all) != 8 {
			t.Fatalf("List after 8 concurrent publishes: %d, %v", len(all), err)
		}
	})
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestGCCollectsAssetBlobs: gc's asset step deletes an old blob no
// manifest references, keeps referenced and young ones, and --dry-run
// only counts.
func TestGCCollectsAssetBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := fsassets.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	content := map[string]string{"/keep.js": "keep", "/orphan.js": "orphan"}
	m := preview.Manifest{Files: map[string]preview.AssetFile{}}
	for p, c := range content {
		m.Files[p] = preview.AssetFile{Digest: sha256Digest([]byte(c)), Size: int64(len(c))}
	}
	open := func(p string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content[p])), nil }
	if _, err := s.Publish(ctx, "hello/pr-1", m, nil, open); err != nil {
		t.Fatal(err)
	}
	// Now only /keep.js is referenced: rewrite the manifest without the
	// orphan and age the orphan's blob.
	delete(m.Files, "/orphan.js")
	if _, err := s.Publish(ctx, "hello/pr-1", m, nil, open); err != nil {
		t.Fatal(err)
	}
	orphan, err := s.BlobPath(sha256Digest([]byte("orphan")))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	os.Chtimes(orphan, old, old)

	st, err := collectAssetBlobs(ctx, s, &gcFlags{dryRun: true, blobGrace: 2 * time.Hour})
	if err != nil || st == nil || st.Deleted != 1 || st.Referenced != 1 || !st.DryRun {
		t.Fatalf("dry run: %+v, %v", st, err)
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatalf("dry run deleted: %v", err)
	}
	if got := blobSummary(*st, 2*time.Hour); !strings.Contains(got, "would delete 1 unreferenced (6 bytes)") {
		t.Fatalf("summary %q", got)
	}
	// A grace longer than the orphan's age keeps it.
	if st, err = collectAssetBlobs(ctx, s, &gcFlags{blobGrace: 4 * time.Hour}); err != nil || st.Deleted != 0 || st.Young != 1 {
		t.Fatalf("long grace: %+v, %v", st, err)
	}
	if st, err = collectAssetBlobs(ctx, s, &gcFlags{blobGrace: 2 * time.Hour}); err != nil || st.Deleted != 1 {
		t.Fatalf("collect: %+v, %v", st, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan still there: %v", err)
	}
	if _, err := s.BlobPath(sha256Digest([]byte("keep"))); err != nil {
		t.Fatalf("referenced blob: %v", err)
	}
	// A store without collection is skipped.
	if st, err := collectAssetBlobs(ctx, noCollect{s}, &gcFlags{}); st != nil || err != nil {
		t.Fatalf("non-collector: %+v, %v", st, err)
	}
}

type noCollect struct{ preview.AssetStore }

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestGCCollectsS3AssetBlobs: gc's asset step on an s3:// store opened by
// URL (versitygw): the blob only a downed preview used is deleted, the
// blob it shared with a live preview stays, a fresh orphan within the
// grace period stays.
func TestGCCollectsS3AssetBlobs(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "glimpse-gc")
	ctx := context.Background()
	store, err := preview.AssetStores.Open(ctx, srv.URL("glimpse-gc", ""), &preview.OpenOptions{Getenv: srv.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(prefix string, content map[string]string) {
		t.Helper()
		m := preview.Manifest{Files: map[string]preview.AssetFile{}}
		for p, c := range content {
			m.Files[p] = preview.AssetFile{Digest: sha256Digest([]byte(c)), Size: int64(len(c))}
		}
		open := func(p string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content[p])), nil }
		if _, err := store.Publish(ctx, prefix, m, nil, open); err != nil {
			t.Fatal(err)
		}
	}
	publish("hello/pr-1/1-aaaaaaa", map[string]string{"/lib.js": "shared", "/a.js": "pr-1 only"})
	publish("hello/pr-2/1-bbbbbbb", map[string]string{"/lib.js": "shared"})
	if err := store.Delete(ctx, "hello/pr-1/1-aaaaaaa"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	// A fresh orphan: a preview published and downed just now (the
	// unfinished-publish case is TestCollectBlobs in cdn/s3assets).
	publish("hello/pr-3/1-ccccccc", map[string]string{"/x.js": "fresh"})
	if err := store.Delete(ctx, "hello/pr-3/1-ccccccc"); err != nil {
		t.Fatal(err)
	}

	st, err := collectAssetBlobs(ctx, store, &gcFlags{blobGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st == nil || st.Blobs != 3 || st.Referenced != 1 || st.Young != 1 || st.Deleted != 1 {
		t.Fatalf("stats %+v", st)
	}
	for c, want := range map[string]bool{"shared": true, "fresh": true, "pr-1 only": false} {
		rc, err := store.Open(ctx, sha256Digest([]byte(c)))
		if err == nil {
			rc.Close()
		}
		if (err == nil) != want {
			t.Errorf("blob %q: present %v, want %v (%v)", c, err == nil, want, err)
		}
	}
}

package fsassets

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// TestCollectBlobsGraceAndDryRun: through preview.BlobCollector, an old
// orphan is removed, a young orphan (as a failed publish just left it)
// stays within the grace period, referenced blobs stay, and a dry run
// only counts.
func TestCollectBlobsGraceAndDryRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := New(t.TempDir(), &Options{Uploads: 1})
	if err != nil {
		t.Fatal(err)
	}
	var _ preview.BlobCollector = s
	live := files{"/index.html": "live", "/lib.js": "shared"}
	gone := files{"/lib.js": "shared", "/old.js": "old orphan"}
	young := files{"/new.js": "young orphan"}
	for prefix, f := range map[string]files{"hello/pr-1": live, "hello/pr-2": gone, "hello/pr-3": young} {
		if _, err := s.Publish(ctx, prefix, f.manifest(), nil, f.open); err != nil {
			t.Fatal(err)
		}
	}
	// Down pr-2 and pr-3 by removing their manifest files only (a Delete
	// would remove their blobs at once); age pr-2's orphan.
	for _, p := range []string{"hello/pr-2", "hello/pr-3"} {
		if err := os.Remove(s.d.manifestPath(p)); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.d.blobPath(digestOf("old orphan")), old, old); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.d.tmp, "blob-crashed"), []byte("x"), 0o644)

	want := preview.BlobCollectStats{Blobs: 4, Referenced: 2, Young: 1, Deleted: 1, DeletedBytes: int64(len("old orphan")), Temp: 1, DryRun: true}
	st, err := s.CollectBlobs(ctx, preview.BlobCollectOptions{DryRun: true}) // default grace: an hour
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Fatalf("dry run: %+v, want %+v", st, want)
	}
	if _, err := s.BlobPath(digestOf("old orphan")); err != nil {
		t.Fatalf("dry run removed a blob: %v", err)
	}
	want.DryRun = false
	if st, err = s.CollectBlobs(ctx, preview.BlobCollectOptions{}); err != nil || st != want {
		t.Fatalf("collect: %+v, %v; want %+v", st, err, want)
	}
	if _, err := s.BlobPath(digestOf("old orphan")); !preview.IsNotFound(err) {
		t.Fatalf("old orphan: %v, want NotFound", err)
	}
	for _, c := range []string{"live", "shared", "young orphan"} {
		if _, err := s.BlobPath(digestOf(c)); err != nil {
			t.Fatalf("%q removed: %v", c, err)
		}
	}
}

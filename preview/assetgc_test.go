package preview_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// listingDriver adds AssetBlobLister to memDriver, with settable blob
// ages and a manifest read that can fail.
type listingDriver struct {
	*memDriver
	modified map[string]time.Time
	deleted  [][]string
	getErr   error
}

func (d *listingDriver) ListBlobs(ctx context.Context) ([]preview.AssetBlob, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []preview.AssetBlob
	for dg, b := range d.blobs {
		t, ok := d.modified[dg]
		if !ok {
			t = time.Now()
		}
		out = append(out, preview.AssetBlob{Digest: dg, Size: int64(len(b)), Modified: t})
	}
	return out, nil
}

func (d *listingDriver) DeleteBlobs(ctx context.Context, digests []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !sort.StringsAreSorted(digests) {
		panic("unsorted")
	}
	d.deleted = append(d.deleted, digests)
	for _, dg := range digests {
		delete(d.blobs, dg)
	}
	return nil
}

func (d *listingDriver) GetManifest(ctx context.Context, prefix string) (preview.StoredManifest, error) {
	if d.getErr != nil {
		return preview.StoredManifest{}, d.getErr
	}
	return d.memDriver.GetManifest(ctx, prefix)
}

func TestAssetBucketCollectBlobs(t *testing.T) {
	ctx := context.Background()
	d := &listingDriver{memDriver: newMemDriver(), modified: map[string]time.Time{}}
	b := preview.NewAssetBucket(d, nil)
	live := files{"/a": "shared", "/b": "live only"}
	gone := files{"/a": "shared", "/c": "gone only"}
	for p, f := range map[string]files{"hello/pr-1": live, "hello/pr-2": gone} {
		if _, err := b.Publish(ctx, p, f.manifest(), nil, f.open); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, "hello/pr-2"); err != nil {
		t.Fatal(err)
	}
	// An unfinished publish's blob, uploaded a minute ago.
	d.blobs[digestOf("young")] = []byte("young")
	old := time.Now().Add(-2 * time.Hour)
	for _, c := range []string{"shared", "live only", "gone only"} {
		d.modified[digestOf(c)] = old
	}
	d.modified[digestOf("young")] = time.Now().Add(-time.Minute)

	// A manifest that cannot be read stops the collection before any
	// delete.
	d.getErr = preview.Errorf(preview.Unavailable, "flaky")
	if _, err := b.CollectBlobs(ctx, preview.BlobCollectOptions{}); preview.CodeOf(err) != preview.Unavailable || len(d.deleted) != 0 {
		t.Fatalf("unreadable manifest: %v, deleted %v", err, d.deleted)
	}
	d.getErr = nil

	st, err := b.CollectBlobs(ctx, preview.BlobCollectOptions{}) // default grace: an hour
	if err != nil {
		t.Fatal(err)
	}
	want := preview.BlobCollectStats{Blobs: 4, Referenced: 2, Young: 1, Deleted: 1, DeletedBytes: int64(len("gone only"))}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	if len(d.deleted) != 1 || len(d.deleted[0]) != 1 || d.deleted[0][0] != digestOf("gone only") {
		t.Fatalf("deleted %v", d.deleted)
	}
	// Past its grace period the young orphan goes too; referenced blobs
	// never do.
	st, err = b.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: 30 * time.Second, DryRun: true})
	if err != nil || st.Deleted != 1 || st.Referenced != 2 || !st.DryRun || len(d.deleted) != 1 {
		t.Fatalf("dry run: %+v, %v, deleted %v", st, err, d.deleted)
	}

	if _, err := b.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: -1}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("negative grace: %v", err)
	}
	plain := preview.NewAssetBucket(newMemDriver(), nil)
	if _, err := plain.CollectBlobs(ctx, preview.BlobCollectOptions{}); preview.CodeOf(err) != preview.Unimplemented {
		t.Fatalf("driver without listing: %v", err)
	}
}

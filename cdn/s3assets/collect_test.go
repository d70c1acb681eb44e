package s3assets

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/preview"
)

func digest(t *testing.T, f files, p string) string {
	t.Helper()
	return f.manifest().Files[p].Digest
}

func mustOpen(t *testing.T, s *Store, dg string) {
	t.Helper()
	rc, err := s.Open(context.Background(), dg)
	if err != nil {
		t.Fatalf("blob %s: %v", dg, err)
	}
	rc.Close()
}

func mustBeGone(t *testing.T, s *Store, dg string) {
	t.Helper()
	rc, err := s.Open(context.Background(), dg)
	if err == nil {
		rc.Close()
		t.Fatalf("blob %s is still stored", dg)
	}
	if !preview.IsNotFound(err) {
		t.Fatalf("blob %s: %v, want NotFound", dg, err)
	}
}

// TestCollectBlobs: the blob only a downed preview used is removed, the
// blob it shared with a live preview stays, and the blob that an
// unfinished Publish already uploaded (its manifest not written yet)
// stays because it is within the grace period; that Publish then
// completes with every blob present.
func TestCollectBlobs(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	s, _ := newCounted(t, srv, newBucket(t, srv), Options{Uploads: 1})
	ctx := context.Background()

	pr1 := files{"/a.js": []byte("shared"), "/b.js": []byte("only pr-1")}
	pr2 := files{"/a.js": []byte("shared"), "/c.js": []byte("only pr-2")}
	for prefix, f := range map[string]files{"hello/pr-1/1-abc": pr1, "hello/pr-2/1-def": pr2} {
		if _, err := s.Publish(ctx, prefix, f.manifest(), preview.Labels{"app": "hello"}, f.open); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "hello/pr-1/1-abc"); err != nil {
		t.Fatal(err)
	}
	const grace = 2 * time.Second
	time.Sleep(grace + 500*time.Millisecond)

	// A Publish in flight: /x.js is uploaded, /y.js is held back, so
	// the manifest is not written yet.
	pr3 := files{"/x.js": []byte("in flight x"), "/y.js": []byte("in flight y")}
	reached, release := make(chan struct{}), make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		_, err := s.Publish(ctx, "hello/pr-3/1-fed", pr3.manifest(), nil, func(p string) (io.ReadCloser, error) {
			if p == "/y.js" {
				close(reached)
				<-release
			}
			return pr3.open(p)
		})
		pubErr <- err
	}()
	select {
	case <-reached:
	case err := <-pubErr:
		t.Fatalf("publish ended early: %v", err)
	}

	want := preview.BlobCollectStats{Blobs: 4, Referenced: 2, Young: 1, Deleted: 1, DeletedBytes: int64(len("only pr-1"))}
	dry, err := s.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: grace, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantDry := want
	wantDry.DryRun = true
	if dry != wantDry {
		t.Fatalf("dry run: got %+v, want %+v", dry, wantDry)
	}
	mustOpen(t, s, digest(t, pr1, "/b.js")) // a dry run deletes nothing

	st, err := s.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: grace})
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	mustBeGone(t, s, digest(t, pr1, "/b.js"))
	mustOpen(t, s, digest(t, pr1, "/a.js"))
	mustOpen(t, s, digest(t, pr2, "/c.js"))
	mustOpen(t, s, digest(t, pr3, "/x.js"))

	close(release)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest(ctx, "hello/pr-3/1-fed")
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range m.Files {
		rc, err := s.Open(ctx, f.Digest)
		if err != nil {
			t.Fatalf("%s of the completed publish: %v", p, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(b, pr3[p]) {
			t.Fatalf("%s: got %q", p, b)
		}
	}

	// Once its manifest exists the in-flight blob is referenced; a
	// collection with no grace left keeps every referenced blob.
	st, err = s.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 4 || st.Referenced != 4 || st.Deleted != 0 {
		t.Fatalf("second collection: %+v", st)
	}
}

// TestCollectBlobsBatches: 1,001 unreferenced blobs are listed over two
// pages and deleted in two DeleteObjects requests of at most 1,000 keys.
func TestCollectBlobsBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 1,001 blobs")
	}
	t.Parallel()
	srv := s3test.Start(t)
	s, c := newCounted(t, srv, newBucket(t, srv), Options{})
	ctx := context.Background()
	f := manyFiles(1001, "orphan")
	if _, err := s.Publish(ctx, "hello/pr-9/1-abc", f.manifest(), nil, f.open); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "hello/pr-9/1-abc"); err != nil {
		t.Fatal(err)
	}
	c.take()
	st, err := s.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	n := c.take()
	if st.Blobs != 1001 || st.Deleted != 1001 {
		t.Fatalf("stats %+v", st)
	}
	if n["POST"] != 2 || n["LIST"] < 2 {
		t.Fatalf("requests %v: want 2 DeleteObjects (POST) and at least 2 listings", n)
	}
	if got, err := s.d.ListBlobs(ctx); err != nil || len(got) != 0 {
		t.Fatalf("left %d blobs (%v)", len(got), err)
	}
}

func TestCollectBlobsRefusesNegativeGrace(t *testing.T) {
	s, err := New(context.Background(), "bucket", &Options{Endpoint: "http://127.0.0.1:1", PathStyle: true, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CollectBlobs(context.Background(), preview.BlobCollectOptions{OlderThan: -time.Second})
	if preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("got %v", err)
	}
}

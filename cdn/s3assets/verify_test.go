package s3assets

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// TestVerifyAssetsRepairsDeletedBlob is the operator's way out of the gap
// PublishOnto leaves (see preview.AssetBasePublisher), on a real
// versitygw: a blob of the served manifest deleted by hand with the S3
// client stays missing through a redeploy (only the changed file is looked
// up) and through an unchanged one (the served manifest is reused);
// UpRequest.VerifyAssets (glimpse up --verify-assets) looks every blob up,
// sends exactly the missing one again and serves a manifest whose blobs
// all exist.
func TestVerifyAssetsRepairsDeletedBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)
	bucket := newBucket(t, srv)
	st, c := newCounted(t, srv, bucket, Options{Prefix: "glimpse"})

	var mu sync.Mutex
	var assetMsgs []string
	reg := previewtest.NewMemRegistry()
	pl := &preview.Pipeline{
		Builder:    &previewtest.MemBuilder{Registry: reg},
		Registry:   reg,
		Runtime:    previewtest.NewMemRuntime(),
		Assets:     st,
		Router:     previewtest.NewMemRouter(),
		BaseDomain: "previews.example.com",
		OnEvent: func(e preview.Event) {
			if e.Step == preview.StepAssets && (e.State == preview.EventDone || e.State == preview.EventSkipped) {
				mu.Lock()
				assetMsgs = append(assetMsgs, e.Message)
				mu.Unlock()
			}
		},
	}
	lastMsg := func() string {
		mu.Lock()
		defer mu.Unlock()
		return assetMsgs[len(assetMsgs)-1]
	}
	dir := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "public", p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", "<h1>v1</h1>")
	write("app.js", "console.log('app')")
	write("style.css", "body { color: red }")
	spec := preview.Spec{App: "hello", Assets: &preview.AssetsSpec{Dir: "public"}}
	up := func(commit string, verify bool) preview.Preview {
		t.Helper()
		pv, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 1, Commit: commit, VerifyAssets: verify})
		if err != nil {
			t.Fatalf("up %s (verify %v): %v", commit, verify, err)
		}
		return pv
	}
	up("aaaaaaa", false)
	write("index.html", "<h1>v2</h1>")
	up("bbbbbbb", false)

	// Delete app.js's blob behind the store's back.
	m, err := preview.ScanAssets(filepath.Join(dir, "public"))
	if err != nil {
		t.Fatal(err)
	}
	appDigest := m.Files["/app.js"].Digest
	key := st.BlobKey(appDigest)
	if _, err := srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	blobExists := func() bool {
		t.Helper()
		_, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err == nil
	}
	if blobExists() {
		t.Fatal("blob still there after DeleteObject")
	}

	// The gap: a redeploy that changed another file, and an unchanged
	// redeploy, leave it missing.
	write("index.html", "<h1>v3</h1>")
	up("ccccccc", false)
	if blobExists() {
		t.Fatal("a redeploy re-sent the deleted blob: the gap is gone, update the docs")
	}
	up("ddddddd", false)
	if msg := lastMsg(); !strings.Contains(msg, "unchanged") || blobExists() {
		t.Fatalf("unchanged redeploy: %q, blob exists %v", msg, blobExists())
	}

	// The way out: one PUT, for the missing blob.
	c.take()
	pv := up("ddddddd", true)
	reqs := c.take()
	if !blobExists() {
		t.Fatal("--verify-assets did not re-send the deleted blob")
	}
	if msg := lastMsg(); !strings.Contains(msg, "uploaded 1 new") {
		t.Errorf("verify message %q, want one upload", msg)
	}
	// The missing blob and the new manifest; the other blobs are found by
	// listing.
	if reqs["PUT"] != 2 || reqs["LIST"] < 1 {
		t.Errorf("verify requests %v, want 2 PUTs (blob, manifest) and a listing", reqs)
	}
	rc, err := st.Open(ctx, appDigest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "console.log('app')" {
		t.Fatalf("repaired blob = %q", got)
	}
	served, err := st.Manifest(ctx, pv.AssetPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for p, f := range served.Files {
		if _, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(st.BlobKey(f.Digest))}); err != nil {
			t.Errorf("served manifest %s: blob of %s missing: %v", pv.AssetPrefix, p, err)
		}
	}
}

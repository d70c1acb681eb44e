package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// TestServeAssetsFromS3 is issue 14's end-to-end run: `glimpse serve` with
// assets: s3:// pointed at a real versitygw (GLIMPSE_VERSITYGW_BIN), the
// rest embedded. `glimpse up` publishes examples/hello to the bucket and
// the daemon's edge serves the site from it (the function still answers);
// a second preview that changes one file shares the other blobs; `down` of
// the first removes its manifest, and `gc` then deletes the one blob only
// it used and keeps every blob the second still names.
func TestServeAssetsFromS3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the daemon")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "previews")
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(cfg, []byte("assets: "+srv.URL("previews", "")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	s := startStackWith(t, bin, t.TempDir(), env, "--config", cfg)
	c := s.client()

	objects := func(prefix string) []string {
		out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("previews"), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, *o.Key)
		}
		return keys
	}

	app := testapp.Copy(t, "../../examples/hello")
	stdout, _ := s.run(t, "up", app, "--pr", "7", "--commit", "7777777")
	url7 := lastLine(stdout)
	index, _ := os.ReadFile(filepath.Join(app, "public", "index.html"))
	if code, body, _ := get(t, c, "GET", url7, ""); code != 200 || body != string(index) {
		t.Fatalf("GET / from S3 = %d %q", code, body)
	}
	if code, body, _ := get(t, c, "POST", url7+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":7`) {
		t.Fatalf("POST /graphql = %d %q", code, body)
	}
	blobs7 := objects("blobs/")
	if len(blobs7) != 3 || len(objects("manifests/")) != 1 {
		t.Fatalf("after up: blobs %v, manifests %v; want the 3 files and 1 manifest in the bucket", blobs7, objects("manifests/"))
	}

	// PR 8 changes app.js only: one new blob.
	app8 := testapp.Copy(t, "../../examples/hello")
	if err := os.WriteFile(filepath.Join(app8, "public", "app.js"), []byte("console.log('pr 8')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _ = s.run(t, "up", app8, "--pr", "8", "--commit", "8888888")
	url8 := lastLine(stdout)
	if code, body, _ := get(t, c, "GET", url8+"app.js", ""); code != 200 || body != "console.log('pr 8')\n" {
		t.Fatalf("GET /app.js of PR 8 = %d %q", code, body)
	}
	if n := len(objects("blobs/")); n != 4 {
		t.Fatalf("%d blobs after PR 8, want 4 (3 shared + its app.js)", n)
	}

	s.run(t, "down", app, "--pr", "7")
	if m := objects("manifests/"); len(m) != 1 {
		t.Fatalf("manifests after down of PR 7: %v, want PR 8's only", m)
	}
	if code, _, _ := get(t, c, "GET", url7, ""); code != 404 {
		t.Fatalf("GET / of PR 7 after down = %d, want 404", code)
	}
	if _, stderr, err := s.try("gc", "--blob-grace", "0s"); err == nil || !strings.Contains(stderr, "--blob-grace must be positive") {
		t.Fatalf("gc --blob-grace 0s: %v %s; want it refused", err, stderr)
	}
	time.Sleep(1100 * time.Millisecond) // PR 7's app.js is older than the grace below
	out, stderr := s.run(t, "gc", "--yes", "--blob-grace", "1s")
	left := objects("blobs/")
	if len(left) != 3 {
		t.Fatalf("blobs after gc: %v, want PR 8's 3\nstdout:\n%s\nstderr:\n%s", left, out, stderr)
	}
	if code, body, _ := get(t, c, "GET", url8, ""); code != 200 || body != string(index) {
		t.Fatalf("PR 8 after gc: GET / = %d %q", code, body)
	}
}

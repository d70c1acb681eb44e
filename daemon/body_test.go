package daemon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// zeros is an endless reader of zero bytes: large bodies without the
// memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// postBody sends n zero bytes to path on host and returns the answer.
func postBody(t *testing.T, srv *httptest.Server, host, path string, n int64) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, io.LimitReader(zeros{}, n))
	req.Host = host
	req.ContentLength = n
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s%s (%d bytes): %v", host, path, n, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func zerosHash(n int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(zeros{}, n))
	return fmt.Sprintf("%d %s", n, hex.EncodeToString(h.Sum(nil)))
}

// TestFunctionBodiesThroughEdgeAndGateway: large bodies reach a real
// function the same way through its preview host (the edge) and through
// the gateway's /function/ path: 30 MiB arrive whole; a function that
// refuses a body over its own limit before reading it all has its own 413
// relayed (the edge used to answer 502); a body over the daemon's limit
// (100 MiB by default) is refused with one line without reaching the
// function.
func TestFunctionBodiesThroughEdgeAndGateway(t *testing.T) {
	pl, _, srv := newPipeline(t)
	dir := testapp.Copy(t, "testdata/bodyapp")
	if _, _, err := up(t, pl, dir, 1, "1111111"); err != nil {
		t.Fatal(err)
	}
	paths := []struct{ name, host, path string }{
		{"edge", "pr-1.body.localhost", "/upload"},
		{"gateway", "127.0.0.1", "/function/body-pr-1/upload"},
	}
	const size = 30 << 20
	for _, p := range paths {
		if code, got := postBody(t, srv, p.host, p.path, size); code != 200 || got != zerosHash(size) {
			t.Errorf("%s: 30 MiB: %d %q, want 200 %q", p.name, code, got, zerosHash(size))
		}
		if code, got := postBody(t, srv, p.host, p.path+"?limit=1048576", size); code != 413 || got != "over 1048576 bytes\n" {
			t.Errorf("%s: 30 MiB to a function taking 1 MiB: %d %q, want the function's 413", p.name, code, got)
		}
		if code, got := postBody(t, srv, p.host, p.path, 101<<20); code != 413 || strings.Count(got, "\n") != 1 || strings.Contains(got, " 0123") {
			t.Errorf("%s: 101 MiB: %d %q, want the daemon's one-line 413", p.name, code, got)
		}
	}
}

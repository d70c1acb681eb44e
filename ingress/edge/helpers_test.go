package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// quiet discards the logs of edges whose errors a test provokes.
var quiet = slog.New(slog.DiscardHandler)

// fixedUpstream resolves every function to one address.
type fixedUpstream string

func (f fixedUpstream) Endpoint(string) (string, error) { return string(f), nil }

// upstreamMap resolves functions by name; a name mapped to an error
// returns it.
type upstreamMap map[string]any

func (m upstreamMap) Endpoint(name string) (string, error) {
	switch v := m[name].(type) {
	case string:
		return v, nil
	case error:
		return "", v
	}
	return "", preview.Errorf(preview.NotFound, "function %s not deployed", name)
}

func digestOf(c string) string {
	sum := sha256.Sum256([]byte(c))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func etagOf(c string) string { return `"` + strings.TrimPrefix(digestOf(c), "sha256:") + `"` }

func publish(tb testing.TB, st preview.AssetStore, prefix string, files map[string]string) {
	tb.Helper()
	m := preview.Manifest{Files: map[string]preview.AssetFile{}}
	for p, c := range files {
		m.Files[p] = preview.AssetFile{Digest: digestOf(c), Size: int64(len(c)), ContentType: preview.ContentType(p)}
	}
	_, err := st.Publish(context.Background(), prefix, m, nil, func(p string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(files[p])), nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// bothModes runs test with connection takeover (subtest "takeover") and
// with every request on net/http's server (subtest "nethttp").
func bothModes(t *testing.T, test func(t *testing.T)) {
	for _, m := range []string{"takeover", "nethttp"} {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			test(t)
		})
	}
}

// netHTTPMode reports whether the running test is bothModes' "nethttp".
func netHTTPMode(t *testing.T) bool {
	return strings.HasSuffix(t.Name(), "/nethttp") || strings.Contains(t.Name(), "/nethttp/")
}

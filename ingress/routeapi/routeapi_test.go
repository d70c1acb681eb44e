package routeapi

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

const testPassword = "s3cret"

// serve serves r's route API behind basic auth, as the daemon does, and
// returns a client opened from its edge:// URL with password.
func serve(t *testing.T, r preview.Router, password string) preview.Router {
	t.Helper()
	api := Handler(r)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || u != AdminUser || subtle.ConstantTimeCompare([]byte(p), []byte(testPassword)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		api.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	c, err := preview.Routers.Open(context.Background(), "edge://"+strings.TrimPrefix(srv.URL, "http://"), &preview.OpenOptions{Getenv: func(k string) string {
		if k == "GLIMPSE_PASSWORD" {
			return password
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The Router suite through the API over the in-memory reference router
// (ingress/edge runs it again over the edge).
func TestConformanceOverHTTP(t *testing.T) {
	t.Parallel()
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router { return serve(t, previewtest.NewMemRouter(), testPassword) },
	})
}

// TestActivityNeedsAReporter: a Router that reports no activity answers
// the activity path NotFound, with the code on the client side.
func TestActivityNeedsAReporter(t *testing.T) {
	t.Parallel()
	c := serve(t, previewtest.NewMemRouter(), testPassword).(*Client)
	if _, err := c.Activity(context.Background()); !preview.IsNotFound(err) {
		t.Fatalf("Activity = %v, want NotFound", err)
	}
	wrong := serve(t, previewtest.NewMemRouter(), "wrong")
	if _, err := wrong.Routes(context.Background(), nil); preview.CodeOf(err) != preview.PermissionDenied {
		t.Fatalf("wrong password: %v, want PermissionDenied", err)
	}
}

func TestClientURL(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "gateway-password"), []byte("from-file\n"), 0o600)
	r, err := preview.Routers.Open(context.Background(), "edge://127.0.0.1:1?tls=true", &preview.OpenOptions{Home: home, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	c := r.(*Client)
	if c.base != "https://127.0.0.1:1" || c.password != "from-file" {
		t.Fatalf("client base %q password %q", c.base, c.password)
	}
	for _, bad := range []string{"edge://", "edge://h:1?x=1", "edge://h:1?tls=maybe", "edge://u:p@h:1", "edge://h:1/path"} {
		if _, err := preview.Routers.Open(context.Background(), bad, nil); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", bad, err)
		}
	}
	// Nothing listens on port 1.
	if err := preview.PutRoute(context.Background(), r, preview.Route{Host: "a.localhost"}); preview.CodeOf(err) != preview.Unavailable {
		t.Errorf("unreachable server: %v, want Unavailable", err)
	}
}

func TestSelectorRoundTrip(t *testing.T) {
	t.Parallel()
	sel := preview.Labels{"glimpse.dev/app": "hello", "glimpse.dev/pr": "42"}
	got, err := ParseSelector(FormatSelector(sel))
	if err != nil || len(got) != 2 || got["glimpse.dev/app"] != "hello" || got["glimpse.dev/pr"] != "42" {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	if got, err := ParseSelector(""); err != nil || len(got) != 0 {
		t.Fatalf("empty selector = %v, %v", got, err)
	}
}

func TestStatusCodeMapping(t *testing.T) {
	t.Parallel()
	for c := preview.NotFound; c <= preview.Aborted; c++ {
		if got, ok := preview.ParseCode(c.String()); !ok || got != c {
			t.Errorf("preview.ParseCode(%q) = %v", c.String(), got)
		}
	}
}

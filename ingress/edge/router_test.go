package edge

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/ingress/routeapi"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func TestConformanceInProcess(t *testing.T) {
	t.Parallel()
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			e, err := New(Options{StateFile: filepath.Join(t.TempDir(), "routes.json")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			return e
		},
	})
}

const testPassword = "s3cret"

// adminServer serves e's admin API behind basic auth, as the daemon does.
func adminServer(t *testing.T, e *Edge) *httptest.Server {
	t.Helper()
	api := routeapi.Handler(e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != routeapi.AdminUser || subtle.ConstantTimeCompare([]byte(p), []byte(testPassword)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="glimpse"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func openClientURL(t *testing.T, srv *httptest.Server, password string) preview.Router {
	t.Helper()
	u := "edge://" + strings.TrimPrefix(srv.URL, "http://")
	r, err := preview.Routers.Open(context.Background(), u, &preview.OpenOptions{Getenv: func(k string) string {
		if k == "GLIMPSE_PASSWORD" {
			return password
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConformanceClient(t *testing.T) {
	t.Parallel()
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router {
			e, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			return openClientURL(t, adminServer(t, e), testPassword)
		},
	})
}

// The client and the edge it drives: a route set through edge:// serves
// traffic on the edge at once.
func TestClientEndToEnd(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from function") }))
	defer up.Close()
	e, err := New(Options{Upstreams: fixedUpstream(upstreamAddr(up))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	admin := adminServer(t, e)
	client := openClientURL(t, admin, testPassword)
	ctx := context.Background()

	rt := preview.Route{Host: "PR-9.Hello.localhost", Function: "hello-pr-9", FunctionPaths: []string{"/graphql"}, Labels: preview.Labels{"a": "b"}}
	if err := preview.PutRoute(ctx, client, rt); err != nil {
		t.Fatal(err)
	}
	if !e.HasHost("pr-9.hello.localhost:8080") {
		t.Fatal("route set through the client is not on the edge")
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/graphql", nil)
	req.Host = "pr-9.hello.localhost"
	resp, body := do(t, req)
	if resp.StatusCode != 200 || body != "from function" {
		t.Fatalf("edge after SetRoute via client: %d %q", resp.StatusCode, body)
	}

	got, err := client.Route(ctx, "pr-9.hello.localhost")
	if err != nil || got.Host != "pr-9.hello.localhost" || got.Labels["a"] != "b" {
		t.Fatalf("Route = %+v, %v", got, err)
	}
	if _, err := client.Route(ctx, "nope.localhost"); !preview.IsNotFound(err) {
		t.Fatalf("Route of a missing host: %v, want NotFound", err)
	}
	list, err := client.Routes(ctx, preview.Labels{"a": "b"})
	if err != nil || len(list) != 1 {
		t.Fatalf("Routes(a=b) = %v, %v", list, err)
	}
	if list, _ := client.Routes(ctx, preview.Labels{"a": "c"}); len(list) != 0 {
		t.Fatalf("Routes(a=c) = %v", list)
	}

	wrong := openClientURL(t, admin, "wrong")
	if err := preview.PutRoute(ctx, wrong, rt); preview.CodeOf(err) != preview.PermissionDenied {
		t.Fatalf("wrong password: %v, want PermissionDenied", err)
	}

	if err := client.DeleteRoute(ctx, "pr-9.hello.localhost"); err != nil {
		t.Fatal(err)
	}
	if e.HasHost("pr-9.hello.localhost") {
		t.Fatal("route still on the edge after DeleteRoute via client")
	}

	// The raw API: mismatched host, unknown field, bad selector.
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/glimpse/v1/routes/a.localhost", `{"host":"b.localhost"}`, 400},
		{"PUT", "/glimpse/v1/routes/a.localhost", `{"hots":"a.localhost"}`, 400},
		{"PUT", "/glimpse/v1/routes/a.localhost", `{}`, 200},
		{"GET", "/glimpse/v1/routes?selector=novalue", "", 400},
		{"GET", "/glimpse/v1/routes/a.localhost", "", 200},
		{"DELETE", "/glimpse/v1/routes/a.localhost", "", 204},
		{"DELETE", "/glimpse/v1/routes/a.localhost", "", 204},
		{"POST", "/glimpse/v1/routes/a.localhost", "", 405},
	} {
		req, _ := http.NewRequest(c.method, admin.URL+c.path, bytes.NewReader([]byte(c.body)))
		req.SetBasicAuth(routeapi.AdminUser, testPassword)
		resp, body := do(t, req)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, resp.StatusCode, body, c.status)
		}
	}
}

func TestStatePersistence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "sub", "routes.json")
	e1, err := New(Options{StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	routes := []preview.Route{
		{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1/abc", Function: "hello-pr-1", FunctionPaths: []string{"/graphql"}, Labels: preview.Labels{preview.LabelPR: "1"}},
		{Host: "pr-2.hello.localhost", AssetPrefix: "hello/pr-2/def"},
	}
	for _, r := range routes {
		if err := preview.PutRoute(ctx, e1, r); err != nil {
			t.Fatal(err)
		}
	}
	preview.PutRoute(ctx, e1, preview.Route{Host: "gone.localhost"})
	e1.DeleteRoute(ctx, "gone.localhost")
	e1.Close()

	e2, err := New(Options{StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	got, _ := e2.Routes(ctx, nil)
	if len(got) != 2 || got[0].Host != routes[0].Host || got[0].FunctionPaths[0] != "/graphql" || got[0].Labels[preview.LabelPR] != "1" || got[1].AssetPrefix != "hello/pr-2/def" {
		t.Fatalf("routes after restart = %+v", got)
	}
	if !e2.HasHost("pr-1.hello.localhost") || e2.HasHost("gone.localhost") {
		t.Fatal("restarted edge does not serve the persisted routes")
	}
	ents, _ := os.ReadDir(filepath.Dir(state))
	for _, e := range ents {
		if e.Name() != "routes.json.snap" && e.Name() != "routes.json.log" {
			t.Fatalf("state directory holds %s, want only the snapshot and its journal (no temporaries)", e.Name())
		}
	}

	// A corrupt snapshot stops New instead of starting empty.
	os.WriteFile(state+".snap", []byte("{not gob"), 0o644)
	if _, err := New(Options{StateFile: state}); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("corrupt state: %v, want FailedPrecondition", err)
	}
}

// failingStore is a RouteStore whose writes fail.
type failingStore struct{ memoryStore }

func (failingStore) Put(preview.Route) error { return preview.Errorf(preview.Internal, "disk full") }
func (failingStore) Delete(string) error     { return preview.Errorf(preview.Internal, "disk full") }

// A route change the store cannot persist leaves the routes as they were.
func TestStateWriteFailureChangesNothing(t *testing.T) {
	t.Parallel()
	e, err := New(Options{Routes: failingStore{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "a.localhost"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("SetRoute with a failing store: %v, want its error", err)
	}
	if e.HasHost("a.localhost") {
		t.Fatal("route applied although it could not be persisted")
	}
}

// The journal: one line per change, a torn last line ignored, a corrupt
// line refused, compaction into the snapshot once the journal outgrows
// the table, and the same routes after every reopen.
func TestJournalStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "routes.json")
	s, err := OpenJournalStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < compactAfter+10; i++ {
		if err := s.Put(preview.Route{Host: "a.localhost", AssetPrefix: fmt.Sprintf("a/pr-1/%d-x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Put(preview.Route{Host: "b.localhost"})
	s.Delete("b.localhost")
	s.Close()
	if fi, err := os.Stat(path + ".log"); err != nil || fi.Size() > 4096 {
		t.Fatalf("journal after %d changes of one route: %v, %d bytes; want it compacted", compactAfter+12, err, fi.Size())
	}
	if _, err := os.Stat(path + ".snap"); err != nil {
		t.Fatalf("no snapshot after compaction: %v", err)
	}
	// A torn last line (a crash mid-append) is ignored.
	f, _ := os.OpenFile(path+".log", os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"put":{"host":"torn.local`)
	f.Close()
	s, err = OpenJournalStore(path)
	if err != nil {
		t.Fatalf("reopen after a torn line: %v", err)
	}
	got, _ := s.Load()
	if len(got) != 1 || got[0].Host != "a.localhost" || got[0].AssetPrefix != fmt.Sprintf("a/pr-1/%d-x", compactAfter+9) {
		t.Fatalf("routes after reopen = %+v", got)
	}
	s.Close()
	// A state file of the earlier format is read and replaced by a
	// snapshot.
	legacyDir := t.TempDir()
	legacy := filepath.Join(legacyDir, "routes.json")
	writeState(legacy, []preview.Route{{Host: "old.localhost", AssetPrefix: "old/pr-1"}})
	ls, err := OpenJournalStore(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ls.Load(); len(got) != 1 || got[0].Host != "old.localhost" {
		t.Fatalf("routes from the earlier state file = %+v", got)
	}
	ls.Close()
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("earlier state file still there after migration: %v", err)
	}
	if ls, err = OpenJournalStore(legacy); err != nil {
		t.Fatal(err)
	} else if got, _ := ls.Load(); len(got) != 1 {
		t.Fatalf("routes after the migration = %+v", got)
	}
	ls.Close()

	// A corrupt complete line stops the open.
	os.WriteFile(path+".log", []byte("{not json}\n"), 0o600)
	if _, err := OpenJournalStore(path); preview.CodeOf(err) != preview.FailedPrecondition || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt journal: %v, want FailedPrecondition", err)
	}
}

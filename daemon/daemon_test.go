package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// newPipeline starts a local stack and composes a Pipeline of its
// in-process providers plus the ko builder pushing to its registry.
func newPipeline(t *testing.T) (*preview.Pipeline, *daemon.Stack, *httptest.Server) {
	t.Helper()
	st, pl, srv := daemontest.Open(t, "test", nil)
	return pl, st, srv
}

func request(t *testing.T, srv *httptest.Server, method, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
	req.Host = host
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func up(t *testing.T, pl *preview.Pipeline, dir string, pr int, commit string) (preview.Preview, []preview.Event, error) {
	t.Helper()
	return upReq(t, pl, dir, preview.UpRequest{PR: pr, Commit: commit})
}

// upReq runs Up for req with the spec loaded from dir, recording events.
func upReq(t *testing.T, pl *preview.Pipeline, dir string, req preview.UpRequest) (preview.Preview, []preview.Event, error) {
	t.Helper()
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var events []preview.Event
	pl.OnEvent = func(e preview.Event) { events = append(events, e) }
	req.Dir, req.Spec = dir, f.Spec
	pv, err := pl.Up(context.Background(), req)
	return pv, events, err
}

func stepState(events []preview.Event, step string) preview.EventState {
	var s preview.EventState
	for _, e := range events {
		if e.Step == step && e.State != preview.EventStarted && e.State != preview.EventLog {
			s = e.State
		}
	}
	return s
}

func TestPipelineUpDownOnLocalStack(t *testing.T) {
	pl, st, srv := newPipeline(t)
	dir := testapp.Copy(t, "../examples/hello")
	pv, events, err := up(t, pl, dir, 3, "abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	if pv.Host != "pr-3.hello.localhost" || pv.Function != "hello-pr-3" || pv.Replicas != 1 || pv.Status != preview.StatusReady {
		t.Fatalf("Up = %+v", pv)
	}
	for _, step := range []string{preview.StepBuild, preview.StepAssets, preview.StepDeploy, preview.StepRoute} {
		if s := stepState(events, step); s != preview.EventDone {
			t.Errorf("first Up: step %s ended %q, want done", step, s)
		}
	}
	if code, body := request(t, srv, "POST", pv.Host, "/graphql"); code != 200 || !strings.Contains(body, `"commit":"abcdef0123"`) {
		t.Fatalf("POST /graphql = %d %s", code, body)
	}

	// Unchanged: every step that moves data is skipped.
	_, events, err = up(t, pl, dir, 3, "abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{preview.StepBuild, preview.StepAssets, preview.StepDeploy} {
		if s := stepState(events, step); s != preview.EventSkipped {
			t.Errorf("unchanged Up: step %s ended %q, want skipped", step, s)
		}
	}

	// A new commit with a changed page: the old manifest is cleaned up.
	os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>v2</h1>"), 0o644)
	if _, _, err := up(t, pl, dir, 3, "0123456789"); err != nil {
		t.Fatal(err)
	}
	if code, body := request(t, srv, "GET", pv.Host, "/"); code != 200 || body != "<h1>v2</h1>" {
		t.Fatalf("GET / after the second commit = %d %q", code, body)
	}
	ms, err := st.Assets.List(context.Background(), preview.Selector("test", "hello", 3))
	if err != nil || len(ms) != 1 || !strings.HasSuffix(ms[0].Prefix, "-0123456") {
		t.Fatalf("asset manifests after the second commit: %+v, %v; want only the new commit's", ms, err)
	}

	list, err := pl.List(context.Background(), "")
	if err != nil || len(list) != 1 || list[0].PR != 3 || list[0].Commit != "0123456789" || list[0].Status != preview.StatusReady {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if err := pl.Down(context.Background(), "hello", 3); err != nil {
		t.Fatal(err)
	}
	if err := pl.Down(context.Background(), "hello", 3); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if code, _ := request(t, srv, "GET", pv.Host, "/"); code != 404 {
		t.Fatalf("GET / after Down = %d, want 404", code)
	}
	if fns, _ := st.Runtime.List(context.Background(), preview.Selector("test", "", 0)); len(fns) != 0 {
		t.Fatalf("functions left after Down: %+v", fns)
	}
	if ms, _ := st.Assets.List(context.Background(), preview.Selector("test", "", 0)); len(ms) != 0 {
		t.Fatalf("asset manifests left after Down: %+v", ms)
	}
	if list, _ := pl.List(context.Background(), ""); len(list) != 0 {
		t.Fatalf("List after Down = %+v", list)
	}
}

func TestPipelineFailedBuildLeavesPreviousPreview(t *testing.T) {
	pl, _, srv := newPipeline(t)
	dir := testapp.Copy(t, "../examples/hello")
	pv, _, err := up(t, pl, dir, 4, "1111111")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "function", "main.go"), []byte("package main\nfunc main() { undefined() }\n"), 0o644)
	_, events, err := up(t, pl, dir, 4, "2222222")
	if err == nil || !strings.HasPrefix(err.Error(), "build: ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Up of broken source: err = %v, want a one-line build error", err)
	}
	if s := stepState(events, preview.StepDeploy); s != "" {
		t.Fatalf("deploy ran after a failed build: %q", s)
	}
	if code, body := request(t, srv, "POST", pv.Host, "/graphql"); code != 200 || !strings.Contains(body, "1111111") {
		t.Fatalf("the previous commit is no longer served after a failed build: %d %s", code, body)
	}
}

func TestPipelineListsPartialPreview(t *testing.T) {
	pl, st, _ := newPipeline(t)
	// A route whose function is gone: an Up or Down was interrupted.
	tg := preview.Target{App: "half", PR: 9, Commit: "9999999"}
	err := preview.PutRoute(context.Background(), st.Edge, preview.Route{
		Host: preview.Host("half", 9, "localhost"), Function: preview.FunctionName("half", 9),
		FunctionPaths: []string{"/graphql"}, Labels: preview.OwnerLabels("test", tg),
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := pl.List(context.Background(), "half")
	if err != nil || len(list) != 1 || list[0].Status != preview.StatusPartial {
		t.Fatalf("List = %+v, %v; want one partial preview", list, err)
	}
	if err := pl.Down(context.Background(), "half", 9); err != nil {
		t.Fatal(err)
	}
	if list, _ := pl.List(context.Background(), "half"); len(list) != 0 {
		t.Fatalf("Down did not remove the partial preview: %+v", list)
	}
}

func TestPipelineSetsUserLabelsBesideOwnership(t *testing.T) {
	pl, st, _ := newPipeline(t)
	dir := testapp.Copy(t, "../examples/hello")
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.Function.Labels = map[string]string{"team": "web"}
	f.Function.Annotations = map[string]string{"note": "x"}
	if _, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: f.Spec, PR: 6, Commit: "6666666"}); err != nil {
		t.Fatal(err)
	}
	fn, err := st.Runtime.Get(context.Background(), "hello-pr-6")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Labels["team"] != "web" || fn.Annotations["note"] != "x" || fn.Labels[preview.LabelPR] != "6" || fn.Annotations["glimpse.dev/routes"] != "/graphql" {
		t.Fatalf("deployed labels %v annotations %v: want the user's and Glimpse's", fn.Labels, fn.Annotations)
	}
}

// TestUpdateDrainsRequestsInFlight: a request that started before a new
// commit is deployed finishes on the old process instead of being cut off.
func TestUpdateDrainsRequestsInFlight(t *testing.T) {
	pl, st, srv := newPipeline(t)
	dir := testapp.Copy(t, "../idle/testdata/slowapp")
	if _, _, err := up(t, pl, dir, 1, "1111111"); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		code, body := request(t, srv, "GET", "pr-1.slow.localhost", "/slow?ms=1000")
		done <- fmt.Sprint(code, " ", body)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for busy := false; !busy; {
		acts, _ := st.Edge.Activity(context.Background())
		for _, a := range acts {
			busy = busy || (a.Function == "slow-pr-1" && a.InFlight == 1)
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached the edge")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := up(t, pl, dir, 1, "2222222"); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "200 slow ok" {
		t.Fatalf("request in flight during the update = %q, want 200 slow ok", got)
	}
	if code, body := request(t, srv, "GET", "pr-1.slow.localhost", "/"); code != 200 || body != "ok" {
		t.Fatalf("after the update: %d %q", code, body)
	}
}

// TestDaemonAPIDemandsCredentials (reproduction 6): every write to the
// registry and every call of the gateway and route APIs needs the daemon's
// credentials, from loopback clients too (a function runs on loopback);
// registry writes from other machines are refused even with them. Reads of
// the registry and health checks stay open.
func TestDaemonAPIDemandsCredentials(t *testing.T) {
	st, err := daemon.Open(t.TempDir(), &daemon.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		method, path, remote string
		auth                 string // "", "good", "bad"
		want                 int
	}{
		{"POST", "/v2/app/blobs/uploads/", "127.0.0.1:4000", "", http.StatusUnauthorized},
		{"POST", "/v2/app/blobs/uploads/", "127.0.0.1:4000", "bad", http.StatusUnauthorized},
		{"DELETE", "/v2/app/manifests/latest", "[::1]:4000", "", http.StatusUnauthorized},
		{"POST", "/v2/app/blobs/uploads/", "127.0.0.1:4000", "good", http.StatusAccepted},
		{"POST", "/v2/app/blobs/uploads/", "192.0.2.7:4000", "good", http.StatusForbidden},
		{"DELETE", "/v2/app/manifests/latest", "[2001:db8::1]:4000", "good", http.StatusForbidden},
		{"GET", "/v2/", "192.0.2.7:4000", "", http.StatusOK},
		{"GET", "/v2/", "127.0.0.1:4000", "", http.StatusOK},
		{"GET", "/system/functions", "127.0.0.1:4000", "", http.StatusUnauthorized},
		{"POST", "/system/functions", "127.0.0.1:4000", "bad", http.StatusUnauthorized},
		{"GET", "/system/functions", "127.0.0.1:4000", "good", http.StatusOK},
		{"GET", "/glimpse/v1/routes", "127.0.0.1:4000", "", http.StatusUnauthorized},
		{"GET", "/glimpse/v1/routes", "127.0.0.1:4000", "good", http.StatusOK},
		{"GET", "/healthz", "127.0.0.1:4000", "", http.StatusOK},
	} {
		req := httptest.NewRequest(c.method, "http://127.0.0.1"+c.path, nil)
		req.RemoteAddr = c.remote
		switch c.auth {
		case "good":
			req.SetBasicAuth(st.ClientEnv("GLIMPSE_REGISTRY_USERNAME"), st.ClientEnv("GLIMPSE_REGISTRY_PASSWORD"))
		case "bad":
			req.SetBasicAuth(daemon.User, "not-the-password")
		}
		rec := httptest.NewRecorder()
		st.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s from %s (auth %q) = %d, want %d", c.method, c.path, c.remote, c.auth, rec.Code, c.want)
		}
	}
}

func upGen(t *testing.T, pl *preview.Pipeline, dir string, pr int, commit string, gen int64, force bool) ([]preview.Event, error) {
	t.Helper()
	_, events, err := upReq(t, pl, dir, preview.UpRequest{PR: pr, Commit: commit, Generation: gen, Force: force})
	return events, err
}

// TestOlderGenerationLoses: an Up with an older generation than the
// deployed one (a CI re-run of an older commit: GITHUB_RUN_NUMBER is kept
// on re-runs) changes nothing, whatever the clocks say; --force wins.
func TestOlderGenerationLoses(t *testing.T) {
	pl, _, srv := newPipeline(t)
	dir := testapp.Copy(t, "../examples/hello")
	if _, err := upGen(t, pl, dir, 8, "bbbbbbb", 10, false); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>older</h1>"), 0o644)
	events, err := upGen(t, pl, dir, 8, "aaaaaaa", 9, false)
	if !errors.Is(err, preview.ErrSuperseded) || preview.CodeOf(err) != preview.FailedPrecondition || !strings.Contains(err.Error(), "generation 9 is older") {
		t.Fatalf("Up of generation 9 after 10: err = %v, want ErrSuperseded", err)
	}
	for _, step := range []string{preview.StepBuild, preview.StepAssets, preview.StepDeploy, preview.StepRoute} {
		if s := stepState(events, step); s != "" {
			t.Fatalf("the superseded Up reached step %s (%q)", step, s)
		}
	}
	if code, body := request(t, srv, "POST", "pr-8.hello.localhost", "/graphql"); code != 200 || !strings.Contains(body, "bbbbbbb") {
		t.Fatalf("after the superseded Up: %d %s; want commit bbbbbbb still served", code, body)
	}
	if code, body := request(t, srv, "GET", "pr-8.hello.localhost", "/"); code != 200 || strings.Contains(body, "older") {
		t.Fatalf("the superseded Up's assets are served: %d %q", code, body)
	}
	// The same generation again re-takes the claim (a retry); a forced
	// older one wins (a deliberate rollback).
	if _, err := upGen(t, pl, dir, 8, "bbbbbbb", 10, false); err != nil {
		t.Fatalf("Up repeating generation 10: %v", err)
	}
	if _, err := upGen(t, pl, dir, 8, "aaaaaaa", 9, true); err != nil {
		t.Fatalf("forced Up of generation 9: %v", err)
	}
	if code, body := request(t, srv, "GET", "pr-8.hello.localhost", "/"); code != 200 || !strings.Contains(body, "older") {
		t.Fatalf("after the forced Up: %d %q, want the older commit's page", code, body)
	}
}

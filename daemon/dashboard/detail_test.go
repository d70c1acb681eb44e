package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
)

// trackedDeploy runs an Up as the daemon's GitHub loop does: its events
// and result recorded with Stack.TrackUp, with a redo that runs the same
// Up again and counts how often it did. It returns the Up's error.
func trackedDeploy(t *testing.T, st *daemon.Stack, pl *preview.Pipeline, app string, pr int, redos *atomic.Int32) error {
	t.Helper()
	dir := testapp.Copy(t, app)
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var up func(ctx context.Context) error
	up = func(ctx context.Context) error {
		onEvent, done := st.TrackUp(f.App, pr, "abcdef0", func(context.Context) error {
			redos.Add(1)
			return up(context.Background())
		})
		p := &preview.Pipeline{Builder: pl.Builder, Registry: pl.Registry, Runtime: pl.Runtime, Assets: pl.Assets,
			Router: pl.Router, BaseDomain: pl.BaseDomain, Owner: pl.Owner, OnEvent: onEvent}
		_, err := p.Up(ctx, preview.UpRequest{Dir: dir, Spec: f.Spec, PR: pr, Commit: "abcdef0"})
		done(err)
		return err
	}
	return up(context.Background())
}

type client struct {
	t   *testing.T
	srv *httptest.Server
	pw  string
}

func (c client) do(method, path string, hdr map[string]string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.srv.URL+path, nil)
	req.SetBasicAuth(daemon.User, c.pw)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestPreviewDetailWithoutJavaScript: a preview's detail page shows, as
// plain HTML, the last deploy the daemon ran with its steps and the
// function's log lines; redeploy runs that Up again; a preview deployed
// from the CLI has no redeploy, with the reason; delete asks on a form
// page, refuses a cross-site post, and takes the preview down as `glimpse
// down` does (route tombstoned, function removed).
func TestPreviewDetailWithoutJavaScript(t *testing.T) {
	st, pl, srv := stack(t)
	c := client{t, srv, st.Password}
	var redos atomic.Int32
	if err := trackedDeploy(t, st, pl, "../../examples/hello", 5, &redos); err != nil {
		t.Fatal(err)
	}
	deploy(t, pl, "../../examples/hello", 6) // from the CLI: not tracked

	code, body, _ := c.do("GET", "/", nil)
	if code != 200 || !strings.Contains(body, `href="/previews/hello/5"`) || !strings.Contains(body, `action="/previews/hello/5/delete"`) {
		t.Fatalf("GET / = %d, no detail link or delete form:\n%s", code, body)
	}
	var page string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, page, _ = c.do("GET", "/previews/hello/5", nil)
		if code == 200 && strings.Contains(page, "hello function for hello#5@abcdef0 listening") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /previews/hello/5 = %d, without the function's log line:\n%s", code, page)
		}
	}
	for _, want := range []string{
		`id="preview" data-state="live"`,
		`data-result="done"`,
		`<tr class="event" data-step="deploy" data-state="done">`,
		`<tr class="event" data-step="route" data-state="done">`,
		`action="/previews/hello/5/redeploy"`,
		`data-follow="/previews/hello/5/logs"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the detail page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("page:\n%s", page)
	}

	// The log stream: the last lines, then it follows.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/previews/hello/5/logs", nil)
	req.SetBasicAuth(daemon.User, st.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET .../logs = %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	if !strings.Contains(sc.Text(), "hello function for hello#5@abcdef0 listening") {
		t.Fatalf("the log stream's first line is %q", sc.Text())
	}
	cancel()
	resp.Body.Close()

	_, cli, _ := c.do("GET", "/previews/hello/6", nil)
	if !strings.Contains(cli, `<button name="redeploy" disabled`) || !strings.Contains(cli, dashboardNoRedeploy) || strings.Contains(cli, `/previews/hello/6/redeploy"`) {
		t.Fatalf("a preview deployed from the CLI offers a redeploy, or says not why:\n%s", cli)
	}
	if code, body, _ := c.do("POST", "/previews/hello/6/redeploy", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusPreconditionFailed && code != http.StatusBadRequest || strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Fatalf("redeploying a CLI preview = %d %q; want a one-line refusal", code, body)
	}

	if code, _, h := c.do("POST", "/previews/hello/5/redeploy", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther || h.Get("Location") != "/previews/hello/5" || redos.Load() != 1 {
		t.Fatalf("redeploy = %d to %q, %d redos; want 303 to the detail page and one redo", code, h.Get("Location"), redos.Load())
	}

	code, confirm, _ := c.do("GET", "/previews/hello/5/delete", nil)
	if code != 200 || !strings.Contains(confirm, `<form method="post" action="/previews/hello/5/delete">`) {
		t.Fatalf("GET .../delete = %d, want the confirmation form:\n%s", code, confirm)
	}
	if code, _, _ := c.do("POST", "/previews/hello/5/delete", map[string]string{"Sec-Fetch-Site": "cross-site"}); code != 403 {
		t.Fatalf("a cross-site delete = %d, want 403", code)
	}
	if code, _, _ := c.do("POST", "/previews/hello/5/delete", map[string]string{"Origin": "http://evil.example"}); code != 403 {
		t.Fatalf("a delete from another origin = %d, want 403", code)
	}
	if _, err := st.Runtime.Get(context.Background(), "hello-pr-5"); err != nil {
		t.Fatalf("a refused delete removed the function: %v", err)
	}
	if code, _, h := c.do("POST", "/previews/hello/5/delete", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("delete = %d to %q, want 303 to /", code, h.Get("Location"))
	}
	if _, err := st.Runtime.Get(context.Background(), "hello-pr-5"); !preview.IsNotFound(err) {
		t.Fatalf("after delete the function is still there (%v)", err)
	}
	if r, err := st.Edge.Route(context.Background(), "pr-5.hello.localhost"); err == nil && !r.Deleted {
		t.Fatalf("after delete the route still serves: %+v", r)
	}
	if _, body, _ := c.do("GET", "/", nil); strings.Contains(body, `id="hello-pr-5"`) || !strings.Contains(body, `id="hello-pr-6"`) {
		t.Fatalf("GET / after delete:\n%s", body)
	}
	if code, _, _ := c.do("GET", "/previews/hello/5", nil); code != 404 {
		t.Fatalf("the detail page of a deleted preview = %d, want 404", code)
	}
	// Idempotent: deleting what is gone says so in one line.
	if code, body, _ := c.do("POST", "/previews/hello/5/delete", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 404 || strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Fatalf("deleting a deleted preview = %d %q, want a one-line 404", code, body)
	}
	if code, _, _ := c.do("GET", "/previews/Bad_App/x", nil); code != 404 {
		t.Fatalf("a malformed preview path = %d, want 404", code)
	}
}

const dashboardNoRedeploy = "the daemon did not deploy this preview"

// TestFailedFirstUpShownFailed reproduces a bug: an up whose function
// never starts (its process exits at once) fails at the deploy step
// before anything is routed, and the preview was shown "deploying"
// forever. It is shown failed, with the runtime's reason on the page and
// the failed step on its detail page.
func TestFailedFirstUpShownFailed(t *testing.T) {
	st, pl, srv := stack(t)
	c := client{t, srv, st.Password}
	var redos atomic.Int32
	err := trackedDeploy(t, st, pl, "testdata/nostartapp", 8, &redos)
	if err == nil {
		t.Fatal("up of a function that exits at once succeeded")
	}
	t.Logf("up: %v", err)
	list, lerr := (&preview.Pipeline{Runtime: st.Runtime, Router: st.Edge}).List(context.Background(), "")
	if lerr != nil || len(list) != 1 || list[0].Status != preview.StatusFailed || list[0].LastError == "" {
		t.Fatalf("List = %+v, %v; want nostart #8 failed with a reason", list, lerr)
	}
	_, body, _ := c.do("GET", "/", nil)
	if !strings.Contains(body, `id="nostart-pr-8" data-state="failed"`) || !strings.Contains(body, `<div class="err">`) {
		t.Fatalf("GET / does not show the failed up as failed with its reason:\n%s", body)
	}
	_, page, _ := c.do("GET", "/previews/nostart/8", nil)
	for _, want := range []string{`data-result="failed"`, `data-step="deploy" data-state="failed"`, `id="deploy-error"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the detail page lacks %s:\n%s", want, page)
		}
	}
}

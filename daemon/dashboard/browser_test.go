package dashboard_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	_ "github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// EnvChromium names the Chromium binary the browser test drives.
const EnvChromium = "GLIMPSE_CHROMIUM_BIN"

// TestDashboardInChromium drives the daemon's dashboard in a real headless
// Chromium (GLIMPSE_CHROMIUM_BIN): a deployed preview is shown live; the
// page's Sleep button puts it to sleep and the page shows it asleep
// without a reload (the event stream); its Wake button wakes it; a
// preview whose function crashes after deploying is shown failed with the
// crash. Each state is checked on the runtime too. Then the live
// preview's detail page shows its deploy's steps and a line its function
// printed, and its Delete button asks (confirm()), takes it down and
// leaves the list without its row and the runtime without its function.
// The detail page is saved as a PNG in the test's temporary directory, or
// in GLIMPSE_SCREENSHOT=FILE.
func TestDashboardInChromium(t *testing.T) {
	chromium := testenv.Require(t, EnvChromium, "Chromium, to test the dashboard in a browser")
	st, pl, srv := stack(t)
	var redos atomic.Int32
	if err := trackedDeploy(t, st, pl, "../../examples/hello", 1, &redos); err != nil { // as the GitHub loop does
		t.Fatal(err)
	}
	deploy(t, pl, "testdata/crashapp", 2)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 700),
		chromedp.UserDataDir(t.TempDir()))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(daemon.User+":"+st.Password))
	state := func(id, s string) chromedp.CSS { return chromedp.CSS(`tr#` + id + `[data-state="` + s + `"]`) }
	fail := func(what string, err error) {
		t.Helper()
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail(what, err)
		}
	}
	replicas := func(fn string) int {
		t.Helper()
		s, err := st.Runtime.Get(context.Background(), fn)
		if err != nil {
			t.Fatal(err)
		}
		return s.Replicas
	}

	run("open the dashboard",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(state("hello-pr-1", "live")),
	)
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr#hello-pr-1 a.url`), "href"))
	if err != nil || !strings.HasPrefix(link.Value, "http://pr-1.hello.localhost:") {
		t.Fatalf("the preview's link is %q (%v)", link.Value, err)
	}

	run("sleep from the page",
		chromedp.Click(chromedp.CSS(`tr#hello-pr-1 button[name="sleep"]`)),
		chromedp.WaitVisible(state("hello-pr-1", "asleep")),
	)
	if n := replicas("hello-pr-1"); n != 0 {
		t.Fatalf("shown asleep with %d replicas", n)
	}
	run("wake from the page",
		chromedp.Click(chromedp.CSS(`tr#hello-pr-1 button[name="wake"]`)),
		chromedp.WaitVisible(state("hello-pr-1", "live")),
	)
	if n := replicas("hello-pr-1"); n != 1 {
		t.Fatalf("shown live again with %d replicas", n)
	}
	run("the crashing preview shows failed", chromedp.WaitVisible(state("crashy-pr-2", "failed")))
	crash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr#crashy-pr-2 .err`)))
	if err != nil || !strings.Contains(crash, "exit status 3") {
		t.Fatalf("the failed preview says %q (%v), want its crash", crash, err)
	}

	// The detail page: the deploy's steps and a line the function printed
	// (server-rendered, then followed over the event stream).
	run("open the detail page",
		chromedp.Click(chromedp.CSS(`tr#hello-pr-1 a.detail`)),
		chromedp.WaitVisible(chromedp.CSS(`#preview[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.event[data-step="deploy"][data-state="done"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.includes("hello function for hello#1@abcdef0 listening")`, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/previews/hello/1") {
		t.Fatalf("the detail link led to %q (%v)", loc, err)
	}
	shot := filepath.Join(t.TempDir(), "detail.png")
	if out := os.Getenv("GLIMPSE_SCREENSHOT"); out != "" {
		shot = out
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		fail("screenshot", err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}

	// Delete asks (confirm(), accepted here), then the page goes back to
	// the list, where the row is gone; the function is gone from the
	// runtime.
	var asked atomic.Value
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked.Store(ev.Message)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	run("delete from the detail page",
		chromedp.Click(chromedp.CSS(`button[name="delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr#crashy-pr-2`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr#hello-pr-1`)),
	)
	if m, _ := asked.Load().(string); !strings.Contains(m, "Delete the preview of hello #1?") {
		t.Fatalf("delete asked %q, want a confirmation", m)
	}
	if _, err := st.Runtime.Get(context.Background(), "hello-pr-1"); !preview.IsNotFound(err) {
		t.Fatalf("after delete from the page the function is still in the runtime (%v)", err)
	}
}

// TestDashboardWithoutJavaScript: the page is readable as plain HTML, an
// action is a form post answered with a redirect, and a post that another
// site's page makes is refused.
func TestDashboardWithoutJavaScript(t *testing.T) {
	st, pl, srv := stack(t)
	deploy(t, pl, "../../examples/hello", 3)
	do := func(method, path string, hdr map[string]string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.SetBasicAuth(daemon.User, st.Password)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	code, body, _ := do("GET", "/", nil)
	if code != 200 || !strings.Contains(body, `id="hello-pr-3" data-state="live"`) || !strings.Contains(body, `action="/previews/hello-pr-3/sleep"`) {
		t.Fatalf("GET / = %d\n%s", code, body)
	}
	if !strings.Contains(body, `<td class="idle">15m (glimpse.yaml)</td>`) {
		t.Fatalf("GET / does not show the idle timeout examples/hello sets:\n%s", body)
	}
	if code, _, _ := do("POST", "/previews/hello-pr-3/sleep", map[string]string{"Sec-Fetch-Site": "cross-site"}); code != 403 {
		t.Fatalf("a cross-site post = %d, want 403", code)
	}
	if code, _, _ := do("POST", "/previews/hello-pr-3/sleep", map[string]string{"Origin": "http://evil.example"}); code != 403 {
		t.Fatalf("a post from another origin = %d, want 403", code)
	}
	if s, _ := st.Runtime.Get(context.Background(), "hello-pr-3"); s.Replicas != 1 {
		t.Fatalf("a refused post changed the replicas to %d", s.Replicas)
	}
	code, _, h := do("POST", "/previews/hello-pr-3/sleep", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("a form post = %d to %q, want 303 to /", code, h.Get("Location"))
	}
	if code, body, _ := do("GET", "/", nil); !strings.Contains(body, `data-state="asleep"`) || !strings.Contains(body, `/wake"`) {
		t.Fatalf("GET / after sleep = %d\n%s", code, body)
	}
	if code, _, _ := do("POST", "/previews/nope-pr-1/wake", nil); code != 404 {
		t.Fatalf("waking a missing function = %d, want 404", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("GET / without credentials = %v, %v; want 401", resp, err)
	}
}

// stack opens an embedded daemon served over HTTP and a Pipeline of its
// providers with the ko builder pushing to its registry.
func stack(t *testing.T) (*daemon.Stack, *preview.Pipeline, *httptest.Server) {
	t.Helper()
	return daemontest.Open(t, "", nil)
}

func deploy(t *testing.T, pl *preview.Pipeline, app string, pr int) {
	t.Helper()
	dir := testapp.Copy(t, app)
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: f.Spec, PR: pr, Commit: "abcdef0"}); err != nil {
		t.Fatalf("up %s: %v", filepath.Base(app), err)
	}
}

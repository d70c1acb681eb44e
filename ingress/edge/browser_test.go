package edge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
)

// In a real headless Chromium (GLIMPSE_CHROMIUM_BIN), the waiting page of
// a function that takes 2.5 s to wake reloads once, when the function is
// ready, and then shows the function's page: two loads in all, where a
// one-second timer would have loaded it three or four times.
func TestWaitingPageInChromium(t *testing.T) {
	chromium := testenv.Require(t, "GLIMPSE_CHROMIUM_BIN", "Chromium, to test the waiting page in a browser")
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><p id="fn">from the function</p>`)
	}))
	defer fn.Close()
	const wake = 2500 * time.Millisecond
	waker := &slowWaker{delay: wake, addr: fn.Listener.Addr().String()}
	// Without connection takeover every request passes the counting
	// handler below (TestWaitingPageReloadsWhenReady covers both modes).
	e, err := New(Options{Logger: quiet, DisableConnTakeover: true, WaitingPage: true, Waker: waker, Upstreams: waker})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.app.localhost", Function: "app-pr-1", FunctionPaths: []string{"/api"}}); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/page" {
			loads.Add(1)
		}
		e.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://pr-1.app.localhost:"+port+"/api/page"),
		chromedp.WaitVisible(chromedp.CSS("#fn")),
	); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		t.Fatalf("the waiting page never showed the function's page: %v\npage:\n%s", err, html)
	}
	took := time.Since(start)
	if !waker.awake.Load() || took < wake {
		t.Fatalf("function page shown after %v, before the %v wake finished", took, wake)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("the page was loaded %d times in %v; want 2 (the waiting page, then one reload when ready)", n, took)
	}
	t.Logf("waiting page to function page: %v for a %v wake", took.Round(time.Millisecond), wake)
}

package edge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// failingWaker is a runtime whose function never starts.
type failingWaker struct{ calls atomic.Int32 }

func (f *failingWaker) Scale(ctx context.Context, name string, replicas int) (int, error) {
	f.calls.Add(1)
	return 0, preview.Errorf(preview.FailedPrecondition, "function %s: process exited with status 3 before listening", name)
}

// A function that does not start is reported as failed, never as asleep:
// no "retry shortly" 503 and no self-reloading waiting page once a wake
// has failed; each request still tries again (a new deploy may fix it).
func TestFunctionThatDoesNotStartIsReportedFailed(t *testing.T) {
	waker := &failingWaker{}
	asleep := preview.WithCode(preview.FailedPrecondition, io.EOF)
	e, err := New(Options{Logger: quiet, DisableConnTakeover: true, WaitingPage: true, Waker: waker,
		Upstreams: upstreamMap{"crash-pr-1": asleep}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.crash.localhost", Function: "crash-pr-1", FunctionPaths: []string{"/"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	do := func(accept string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Host = "pr-1.crash.localhost"
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("")
	if code != http.StatusBadGateway || !strings.Contains(body, "failed to start") || strings.Count(body, "\n") != 1 {
		t.Fatalf("API request to a function that does not start = %d %q; want a one-line 502 saying it failed to start", code, body)
	}
	code, body = do("text/html")
	if code != http.StatusBadGateway || !strings.Contains(body, "failed to start") || strings.Contains(body, "refresh") {
		t.Fatalf("browser after a failed wake = %d %q; want a 502 page that does not reload", code, body)
	}
	// The browser's request started a wake in the background; let it end
	// so that the next request cannot join it instead of trying again.
	a := e.act.get("crash-pr-1")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		idle := a.waking == nil
		a.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background wake did not end")
		}
	}
	before := waker.calls.Load()
	do("")
	if waker.calls.Load() <= before {
		t.Fatal("a request after a failed start did not try to start the function again")
	}
}

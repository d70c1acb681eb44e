package edge

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

	"github.com/glimpse-dev/glimpse/preview"
)

// slowWaker is a runtime whose function takes delay to wake; until then
// its endpoint is asleep (FailedPrecondition).
type slowWaker struct {
	delay time.Duration
	addr  string
	awake atomic.Bool
	calls atomic.Int32
}

func (s *slowWaker) Scale(ctx context.Context, name string, replicas int) (int, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.awake.Store(true)
	return 1, nil
}

func (s *slowWaker) Endpoint(name string) (string, error) {
	if s.awake.Load() {
		return s.addr, nil
	}
	return "", preview.Errorf(preview.FailedPrecondition, "function %s is scaled to zero", name)
}

// sseEvent reads the stream up to its next event, skipping comments; it
// returns the event's name and data, or "" and the error at the end.
func sseEvent(br *bufio.Reader) (event, data string, err error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data, nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// wakeEdge serves an edge whose one route (host pr-1.app.localhost, the
// function at /api only) names function app-pr-1 of upstreams and waker.
func wakeEdge(t *testing.T, upstreams Upstreams, waker Waker, timeout time.Duration) *httptest.Server {
	t.Helper()
	e, err := New(Options{Logger: quiet, DisableConnTakeover: netHTTPMode(t), WaitingPage: true, Waker: waker,
		Upstreams: upstreams, WakeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.app.localhost", Function: "app-pr-1", FunctionPaths: []string{"/api"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	return srv
}

func wakeGet(t *testing.T, srv *httptest.Server, path, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Host = "pr-1.app.localhost"
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The waiting page answers at once and listens to the wake event stream,
// which sends "ready" only once the function is awake; the page then
// reloads into the function's answer. No timer drives the reload.
func TestWaitingPageReloadsWhenReady(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from the function") }))
		defer fn.Close()
		waker := &slowWaker{delay: 400 * time.Millisecond, addr: fn.Listener.Addr().String()}
		srv := wakeEdge(t, waker, waker, 0)

		start := time.Now()
		resp := wakeGet(t, srv, "/api/x", "text/html,application/xhtml+xml")
		page := readAll(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || waker.awake.Load() {
			t.Fatalf("waiting page = %d after %v (awake %v); want a 503 before the wake finished", resp.StatusCode, time.Since(start), waker.awake.Load())
		}
		if !strings.Contains(page, `new EventSource("`+WakeEventsPath+`")`) || strings.Contains(page, `content="1"`) ||
			!strings.Contains(page, `<noscript><meta http-equiv="refresh"`) {
			t.Fatalf("waiting page does not listen to the wake events (or reloads on a one-second timer): %s", page)
		}

		resp = wakeGet(t, srv, WakeEventsPath, "text/event-stream")
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("wake events = %d %v", resp.StatusCode, resp.Header)
		}
		ev, data, err := sseEvent(bufio.NewReader(resp.Body))
		if err != nil || ev != WakeEventReady || data == "" {
			t.Fatalf("wake event = %q %q, %v; want ready", ev, data, err)
		}
		if !waker.awake.Load() {
			t.Fatal("ready was sent before the function woke")
		}
		if got := time.Since(start); got > 3*time.Second {
			t.Fatalf("ready took %v for a 400ms wake", got)
		}
		if n := waker.calls.Load(); n != 1 {
			t.Fatalf("page and stream started %d wakes; want one shared", n)
		}
		if resp := wakeGet(t, srv, "/api/x", "text/html"); resp.StatusCode != 200 || readAll(t, resp) != "from the function" {
			t.Fatalf("reload after ready = %d", resp.StatusCode)
		}
		// An awake function: ready at once.
		resp2 := wakeGet(t, srv, WakeEventsPath, "")
		defer resp2.Body.Close()
		if ev, _, err := sseEvent(bufio.NewReader(resp2.Body)); err != nil || ev != WakeEventReady {
			t.Fatalf("wake event of an awake function = %q, %v", ev, err)
		}
	})
}

// A function that fails to start: the stream says failed (so the page
// reloads into the 502 that says so, never a promise of a wake); a wake
// that takes longer than the wake timeout: timeout.
func TestWakeEventsFailedAndTimeout(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		asleep := preview.WithCode(preview.FailedPrecondition, io.EOF)
		srv := wakeEdge(t, upstreamMap{"app-pr-1": asleep}, &failingWaker{}, 0)
		resp := wakeGet(t, srv, WakeEventsPath, "text/event-stream")
		ev, data, err := sseEvent(bufio.NewReader(resp.Body))
		resp.Body.Close()
		if err != nil || ev != WakeEventFailed || !strings.Contains(data, "failed to start") {
			t.Fatalf("wake event of a function that does not start = %q %q, %v", ev, data, err)
		}
		resp = wakeGet(t, srv, "/api", "text/html")
		if page := readAll(t, resp); resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "failed to start") || strings.Contains(page, "EventSource") {
			t.Fatalf("page after the failed start = %d %q", resp.StatusCode, page)
		}

		slow := &slowWaker{delay: time.Hour}
		srv = wakeEdge(t, slow, slow, 200*time.Millisecond)
		resp = wakeGet(t, srv, WakeEventsPath, "text/event-stream")
		ev, _, err = sseEvent(bufio.NewReader(resp.Body))
		resp.Body.Close()
		if err != nil || ev != WakeEventTimeout {
			t.Fatalf("wake event of a function slower than the wake timeout = %q, %v", ev, err)
		}
	})
}

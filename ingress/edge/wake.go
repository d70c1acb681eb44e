package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Waker scales a function up when a request finds it asleep.
// faas/localfaas's *Runtime satisfies it (its Scale returns once the
// replica accepts connections); so does any preview.FunctionRuntime.
type Waker interface {
	Scale(ctx context.Context, name string, replicas int) (int, error)
}

// DefaultWakeTimeout bounds how long a request waits for its function to
// wake before the edge answers 504.
const DefaultWakeTimeout = 60 * time.Second

// wakeTimeout is Options.WakeTimeout or DefaultWakeTimeout.
func (e *Edge) wakeTimeout() time.Duration {
	if e.opts.WakeTimeout > 0 {
		return e.opts.WakeTimeout
	}
	return DefaultWakeTimeout
}

// errWakeTimeout marks a wake that did not finish within WakeTimeout.
var errWakeTimeout = errors.New("wake timed out")

// errStartFailed marks a wake whose scale-up failed: the function does
// not start (it crashes, or never listens).
var errStartFailed = errors.New("the function failed to start")

// endpoint resolves the function's address, waking it when it is asleep:
// the first request starts one scale-up (however many requests wait) and
// every waiting request resumes when it is done.
func (e *Edge) endpoint(ctx context.Context, a *fnActivity) (string, error) {
	addr, err := e.opts.Upstreams.Endpoint(a.name)
	if err == nil {
		return addr, nil
	}
	code := preview.CodeOf(err)
	if code != preview.FailedPrecondition && code != preview.Unavailable {
		return "", err
	}
	if e.opts.Waker == nil && code == preview.FailedPrecondition {
		return "", err
	}
	wctx, cancel := context.WithTimeoutCause(ctx, e.wakeTimeout(), errWakeTimeout)
	defer cancel()
	if code == preview.FailedPrecondition {
		if err := e.wake(wctx, a); err != nil {
			if a.wakeFailed.Load() {
				return "", fmt.Errorf("%w: %w", errStartFailed, err)
			}
			return "", e.wakeErr(wctx, err)
		}
		if addr, err = e.opts.Upstreams.Endpoint(a.name); err == nil {
			return addr, nil
		}
	}
	if code == preview.Unavailable && e.failed(wctx, a.name) {
		return "", fmt.Errorf("%w: %w", errStartFailed, err)
	}
	if w, ok := e.opts.Upstreams.(preview.EndpointWaiter); ok {
		addr, err = w.WaitEndpoint(wctx, a.name)
		if err != nil {
			return "", e.wakeErr(wctx, err)
		}
		return addr, nil
	}
	return "", err
}

// statusGetter is the part of a preview.FunctionRuntime that says why a
// function is not ready; a Waker that has it (the daemon's runtime) is
// asked before a request waits for a function that is not ready.
type statusGetter interface {
	Get(ctx context.Context, name string) (preview.FunctionStatus, error)
}

// failed reports whether the runtime (Options.Waker, when it is a
// statusGetter) says the function has failed (preview.FunctionStatus's
// Failed: its last start failed or its process crashed, and no replica is
// ready), so that a request is told so at once instead of waiting for a
// wake that a crash loop will not finish. A runtime that cannot say, or
// fails to answer, counts as not failed.
func (e *Edge) failed(ctx context.Context, name string) bool {
	g, ok := e.opts.Waker.(statusGetter)
	if !ok {
		return false
	}
	st, err := g.Get(ctx, name)
	return err == nil && st.Failed()
}

func (e *Edge) wakeErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errWakeTimeout) {
		return preview.WithCode(preview.DeadlineExceeded, errWakeTimeout)
	}
	return err
}

// wake scales the function to one replica, sharing one call among all
// concurrent callers. The scale-up runs detached from any one request, so
// a client that gives up does not cancel it for the others.
func (e *Edge) wake(ctx context.Context, a *fnActivity) error {
	a.mu.Lock()
	w := a.waking
	if w == nil {
		w = &wakeCall{done: make(chan struct{})}
		a.waking = w
		go func() {
			start := time.Now()
			sctx, cancel := context.WithTimeout(context.Background(), e.wakeTimeout())
			_, w.err = e.opts.Waker.Scale(sctx, a.name, 1)
			failed := w.err != nil && sctx.Err() == nil
			cancel()
			e.metrics.wake(time.Since(start), w.err)
			a.wakeFailed.Store(failed)
			if w.err != nil {
				e.log.Warn("edge: waking function failed", "function", a.name, "err", w.err)
			} else {
				e.log.Info("edge: woke function", "function", a.name, "took", time.Since(start).Round(time.Millisecond))
			}
			a.mu.Lock()
			a.waking = nil
			a.mu.Unlock()
			close(w.done)
		}()
	}
	a.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitingPage is the page a browser gets while the function wakes: it
// reloads when the wake event stream sends any event (then the function
// answers, or the page says it failed to start), and every two seconds
// where JavaScript does not run.
const waitingPage = `<!doctype html><html><head><meta charset="utf-8"><title>Waking up…</title>` +
	`<noscript><meta http-equiv="refresh" content="2"></noscript></head>` +
	`<body style="font-family:system-ui,sans-serif;margin:3rem"><h1>This preview is waking up</h1>` +
	`<p>It was asleep to save resources; this page reloads by itself as soon as it is ready.</p>` +
	`<script>(function(){var s=new EventSource("` + WakeEventsPath + `");` +
	`function reload(){s.close();location.reload()}` +
	`["` + WakeEventReady + `","` + WakeEventFailed + `","` + WakeEventTimeout + `"].forEach(function(n){s.addEventListener(n,reload)})})()</script>` +
	`</body></html>`

// wantsWaitingPage reports whether r is a browser navigation that should
// get the self-reloading waiting page instead of being held.
func (e *Edge) wantsWaitingPage(r *http.Request) bool {
	if !e.opts.WaitingPage || r.Method != http.MethodGet {
		return false
	}
	for _, v := range r.Header["Accept"] {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

// serveWaitingPage starts the wake in the background and answers 503 at
// once (the browser's request is not held) with a page that listens to
// the wake event stream (WakeEventsPath) and reloads when it reports the
// function ready, failed or timed out; without JavaScript the page
// reloads itself every two seconds. When the last wake failed (the
// function does not start) it answers 502 with a page that says so and
// does not reload, while the background wake tries again (a new deploy
// may have fixed it).
func (e *Edge) serveWaitingPage(w http.ResponseWriter, a *fnActivity) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e.wakeTimeout())
		defer cancel()
		e.wake(ctx, a)
	}()
	h := w.Header()
	if a.wakeFailed.Load() {
		h["Content-Type"] = []string{"text/html; charset=utf-8"}
		h["Cache-Control"] = hdrNoStore
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>This preview failed to start</title></head>`+
			`<body style="font-family:system-ui,sans-serif;margin:3rem"><h1>This preview's function failed to start</h1><p>Its last start crashed or never listened. `+
			`<code>glimpse status</code> and <code>glimpse logs</code> show why; the next deploy starts it again.</p></body></html>`)
		return
	}
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Cache-Control"] = hdrNoStore
	h["Retry-After"] = hdrRetryAfter
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprint(w, waitingPage)
}

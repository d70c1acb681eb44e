package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/preview"
)

// WakeEventsPath is the path, on every routed host whose route names a
// function, of the edge's wake event stream (server-sent events): the
// waiting page listens to it and reloads when the function is ready,
// instead of reloading on a timer. The edge answers it itself, whatever
// the route's paths say, so an app cannot serve this one path.
//
// A GET of it wakes the function when it is asleep (joining a wake in
// progress, as requests do) without counting as a request to the
// function, and answers 200 text/event-stream at once. It then sends one
// event and ends the stream:
//
//   - "ready" when the function accepts requests (at once if it already
//     does);
//   - "failed" when its start failed (it crashes, or never listens) or it
//     is not deployed; the data is one line saying which;
//   - "timeout" when it did not wake within the wake timeout.
//
// A comment line is sent every WakeEventsKeepAlive meanwhile so that
// proxies do not close the stream. The data of every event is one line
// of text. Any number of clients may listen at once; they share one wake.
const WakeEventsPath = "/.well-known/glimpse/wake"

// WakeEventsKeepAlive is how often the wake event stream sends a comment
// while the function wakes.
const WakeEventsKeepAlive = 15 * time.Second

// Wake event names (the "event:" field of the stream).
const (
	WakeEventReady   = "ready"
	WakeEventFailed  = "failed"
	WakeEventTimeout = "timeout"
)

// serveWakeEvents answers WakeEventsPath for rt (see WakeEventsPath).
func (e *Edge) serveWakeEvents(w http.ResponseWriter, r *http.Request, rt *route) {
	if e.opts.Upstreams == nil {
		h1.TextError(w, http.StatusBadGateway, "502 this edge has no function runtime\n")
		return
	}
	if r.Method != http.MethodGet {
		w.Header()["Allow"] = []string{"GET"}
		h1.TextError(w, http.StatusMethodNotAllowed, "405 the wake event stream is read with GET\n")
		return
	}
	ctx := e.ctxOf(w, r)
	a := e.act.get(rt.function)
	done := make(chan error, 1)
	go func() { done <- e.awaitReady(ctx, a) }()
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = hdrNoStore
	h["X-Accel-Buffering"] = []string{"no"} // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	fmt.Fprint(w, ": waiting for the function to be ready\n\n")
	flush()
	tick := time.NewTicker(WakeEventsKeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fmt.Fprint(w, ": still waking\n\n")
			flush()
			continue
		case err := <-done:
			event, data := wakeEvent(err)
			if event == "" {
				return // the client went away
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
			flush()
			return
		}
	}
}

// awaitReady waits until a's function accepts requests, waking it when
// it is asleep, for at most the wake timeout. A runtime that only says
// "starting" (Unavailable, and no preview.EndpointWaiter) is asked again
// with a growing pause (50 ms to 1 s), so that the stream reports ready
// rather than a state the waiting page would reload into at once.
func (e *Edge) awaitReady(ctx context.Context, a *fnActivity) error {
	ctx, cancel := context.WithTimeoutCause(ctx, e.wakeTimeout(), errWakeTimeout)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		_, err := e.endpoint(ctx, a)
		if code := preview.CodeOf(err); err == nil || errors.Is(err, errStartFailed) ||
			code != preview.Unavailable && code != preview.FailedPrecondition {
			return err
		}
		select {
		case <-ctx.Done():
			return e.wakeErr(ctx, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// wakeEvent maps the result of waiting for a function's endpoint to the
// event that reports it; "" when the client went away.
func wakeEvent(err error) (event, data string) {
	switch {
	case err == nil:
		return WakeEventReady, "the function is ready"
	case errors.Is(err, errStartFailed):
		return WakeEventFailed, "the function failed to start (glimpse status and glimpse logs show why)"
	}
	switch preview.CodeOf(err) {
	case preview.DeadlineExceeded:
		return WakeEventTimeout, "the function did not wake up in time"
	case preview.Canceled:
		return "", ""
	case preview.NotFound:
		return WakeEventFailed, "the function of this preview is not deployed"
	}
	return WakeEventFailed, "the function cannot be reached"
}

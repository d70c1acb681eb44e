package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// History keeps the last Up the daemon ran of each preview, for the
// dashboard's detail page (its result and steps) and its redeploy action
// (running that Up again). It is in memory: a restarted daemon knows no
// deploys until it runs one. It is bounded: at most MaxEvents events per
// deploy (the first steps' events are kept, later build-log lines are
// dropped first) and MaxDeploys previews (the oldest deploy is forgotten).
// It is safe for concurrent use; the zero value is ready.
type History struct {
	mu   sync.Mutex
	last map[preview.Target]*Deploy // Commit empty in keys
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Bounds of a History.
const (
	MaxEvents  = 200
	MaxDeploys = 1000
	maxLogs    = 40 // build-log lines kept of a deploy
)

// Deploy is one Up the daemon ran, as the detail page shows it.
type Deploy struct {
	App    string
	PR     int
	Commit string
	// Started and Finished bound the Up; Finished is zero while it runs.
	Started, Finished time.Time
	// Err is the Up's failure, one line; empty when it succeeded or runs.
	Err string
	// Events are the Up's pipeline events in the order they came.
	Events []Event
	// Redeployable says the daemon can run this Up again (Redeploy).
	Redeployable bool

	redo func(context.Context) error
	logs int
}

// Event is a pipeline event with the time the History received it.
type Event struct {
	Time time.Time
	preview.Event
}

// Result is "running", "failed" or "done".
func (d Deploy) Result() string {
	switch {
	case d.Finished.IsZero():
		return "running"
	case d.Err != "":
		return "failed"
	}
	return "done"
}

// Run records one Up in a History.
type Run struct {
	h *History
	d *Deploy
}

func (h *History) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Start records that an Up of app's pull request pr at commit starts; it
// replaces the preview's previous deploy. redo, when not nil, runs the
// same Up again (from what the caller kept: the GitHub loop's work item,
// the spec and directory); Redeploy calls it. Feed the Up's events to
// Run.Event and its result to Run.Done.
func (h *History) Start(app string, pr int, commit string, redo func(context.Context) error) *Run {
	d := &Deploy{App: app, PR: pr, Commit: commit, Started: h.now(), redo: redo, Redeployable: redo != nil}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[preview.Target]*Deploy{}
	}
	k := preview.Target{App: app, PR: pr}
	if _, ok := h.last[k]; !ok && len(h.last) >= MaxDeploys {
		var oldest preview.Target
		first := true
		for k, o := range h.last {
			if first || o.Started.Before(h.last[oldest].Started) {
				oldest, first = k, false
			}
		}
		delete(h.last, oldest)
	}
	h.last[k] = d
	return &Run{h: h, d: d}
}

// Event records an event of the Up (a preview.Pipeline.OnEvent).
func (r *Run) Event(e preview.Event) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	if e.State == preview.EventLog {
		if r.d.logs >= maxLogs {
			return
		}
		r.d.logs++
	}
	if len(r.d.Events) >= MaxEvents {
		return
	}
	r.d.Events = append(r.d.Events, Event{Time: r.h.now(), Event: e})
}

// Done records the Up's result (nil: it succeeded).
func (r *Run) Done(err error) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	r.d.Finished = r.h.now()
	if err != nil {
		r.d.Err = oneLine(err.Error())
		if r.d.Err == "" {
			r.d.Err = "failed"
		}
	}
}

// Last returns a copy of the preview's last deploy; false when the
// History has none.
func (h *History) Last(app string, pr int) (Deploy, bool) {
	if h == nil {
		return Deploy{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.last[preview.Target{App: app, PR: pr}]
	if !ok {
		return Deploy{}, false
	}
	c := *d
	c.Events = append([]Event(nil), d.Events...)
	return c, true
}

// Forget drops the preview's deploy (after it is taken down).
func (h *History) Forget(app string, pr int) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, preview.Target{App: app, PR: pr})
}

// Redeploy runs the preview's last Up again, through the redo its Start
// was given, and returns its error. A preview whose deploy the History
// does not have, or whose Up cannot be run again (an `up` from the CLI,
// which the daemon only sees the results of), is FailedPrecondition.
func (h *History) Redeploy(ctx context.Context, app string, pr int) error {
	var redo func(context.Context) error
	if h != nil {
		h.mu.Lock()
		if d := h.last[preview.Target{App: app, PR: pr}]; d != nil {
			redo = d.redo
		}
		h.mu.Unlock()
	}
	if redo == nil {
		return preview.Errorf(preview.FailedPrecondition, "%s #%d: %s", app, pr, NoRedeployReason)
	}
	return redo(ctx)
}

// NoRedeployReason is why a preview has no redeploy action.
const NoRedeployReason = "the daemon did not deploy this preview (an up from the CLI): run glimpse up again where it came from"

package edge

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// fnActivity is the edge's per-function state: the activity counters the
// idle controller reads, and the sleep gate and wake call that make a
// scale-down and a wake-up safe against arriving requests. About 150 bytes
// per function; an entry lives while a route names its function, and is
// forgotten once none does and nothing is in flight for it
// (forgetUnroutedLocked).
type fnActivity struct {
	name     string
	started  atomic.Uint64
	finished atomic.Uint64
	inFlight atomic.Int64
	last     atomic.Int64 // unix nanoseconds of the last start or finish

	// gate is non-nil while the function is being put to sleep; requests
	// that see it wait for the channel to close.
	gate atomic.Pointer[chan struct{}]

	mu     sync.Mutex
	waking *wakeCall
	// wakeFailed is true while the last wake of the function failed (not
	// timed out): the function does not start, so the edge stops
	// promising a wake until one succeeds.
	wakeFailed atomic.Bool
	// dead is set while forgetUnroutedLocked takes the entry out of the
	// table: a request or a Sleep that finds it set after counting
	// itself in (inFlight, gate) backs out and takes the new entry.
	dead atomic.Bool
	// unrouted is when forgetUnroutedLocked first found no live route
	// naming the function (unix nanoseconds; 0: routed).
	unrouted atomic.Int64
}

// forgetAfter is how long a function's entry outlives the last route
// naming it: longer than a Down takes from burying the route to removing
// the function, so that the idle controller never sees a listed
// function's counters drop to zero (its sign of an edge restart).
const forgetAfter = 10 * time.Minute

// wakeCall is one scale-up shared by every request that finds the
// function asleep while it runs.
type wakeCall struct {
	done chan struct{}
	err  error
}

// activityTable maps function names to their state, and upstream
// addresses to their requests in flight; reads are lock-free.
type activityTable struct {
	m        sync.Map // string -> *fnActivity
	upstream sync.Map // "host:port" -> *atomic.Int64
	// hosts holds, per routed host, its static activity.
	hosts sync.Map // host -> *hostActivity
}

// hostActivity is the static activity of one host. A request only sets
// dirty (a load, and a store when it was clear: no shared-line writes on
// a busy host, no clock read); Activity turns a set flag into a time.
type hostActivity struct {
	dirty atomic.Bool
	last  atomic.Int64 // unix nanoseconds; 0: never
}

// forgetUnroutedLocked drops the activity of what table t (the one being
// served; e.mu held) no longer routes: the static cell of every host
// without a live route (none, or a tombstone) and the state of every
// function no live route has named for forgetAfter (e.forgetAfter) that
// has nothing in flight, no sleep and no wake running. A function still
// busy or within the grace is forgotten by a later call (every route
// change and every Activity call make one). Without this a
// long-running daemon would keep an entry for every preview it ever
// served. A request still running on a route that has just gone may
// record into a forgotten entry; it is the last of that route's.
func (e *Edge) forgetUnroutedLocked(t map[string]*route) {
	live := func(rt *route) bool { return rt != nil && !rt.spec.Deleted }
	e.act.hosts.Range(func(k, _ any) bool {
		if !live(t[k.(string)]) {
			e.act.hosts.Delete(k)
		}
		return true
	})
	var fns map[string]bool
	e.act.m.Range(func(k, v any) bool {
		if fns == nil {
			fns = make(map[string]bool, len(t))
			for _, rt := range t {
				if live(rt) && rt.function != "" {
					fns[rt.function] = true
				}
			}
		}
		a := v.(*fnActivity)
		if fns[a.name] {
			a.unrouted.Store(0)
			return true
		}
		now := time.Now().UnixNano()
		if since := a.unrouted.Load(); since == 0 {
			a.unrouted.Store(now)
			if e.forgetAfter > 0 {
				return true
			}
		} else if now-since < int64(e.forgetAfter) {
			return true
		}
		if a.quiet() {
			// Mark, then look again: a request (begin) or a Sleep that
			// came in between either is seen here, and the entry
			// stays, or sees the mark and backs out to a new entry.
			a.dead.Store(true)
			if !a.quiet() {
				a.dead.Store(false)
				return true
			}
			e.act.m.CompareAndDelete(k, v)
		}
		return true
	})
}

// quiet reports whether nothing is in flight for the function and no
// sleep or wake of it runs.
func (a *fnActivity) quiet() bool {
	a.mu.Lock()
	waking := a.waking != nil
	a.mu.Unlock()
	return !waking && a.inFlight.Load() == 0 && a.gate.Load() == nil
}

// touchStatic records a static request for rt's host as activity. The
// host's cell is cached on the route; the cost on the hot path is one
// atomic load (BenchmarkStaticActivity).
func (e *Edge) touchStatic(rt *route) {
	c := rt.static.Load()
	if c == nil {
		v, _ := e.act.hosts.LoadOrStore(rt.spec.Host, new(hostActivity))
		c = v.(*hostActivity)
		rt.static.Store(c)
	}
	if !c.dirty.Load() {
		c.dirty.Store(true)
	}
}

func (e *Edge) upstreamInFlight(addr string) *atomic.Int64 {
	if v, ok := e.act.upstream.Load(addr); ok {
		return v.(*atomic.Int64)
	}
	v, _ := e.act.upstream.LoadOrStore(addr, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// UpstreamBusy reports whether requests the edge forwarded to addr
// ("127.0.0.1:port") are still in flight, WebSockets included. A runtime
// that replaces a function's process asks it before stopping the old one
// (faas/localfaas's Options.Busy).
func (e *Edge) UpstreamBusy(addr string) bool {
	v, ok := e.act.upstream.Load(addr)
	return ok && v.(*atomic.Int64).Load() > 0
}

// begin counts a request for function name as started and in flight in
// its live entry (fnActivity.begin) and returns the entry, for the
// request's end.
func (t *activityTable) begin(ctx context.Context, name string) (*fnActivity, error) {
	for {
		a := t.get(name)
		if err := a.begin(ctx); err != errForgotten {
			return a, err
		}
	}
}

// errForgotten is fnActivity.begin's answer on an entry being forgotten.
var errForgotten = errors.New("activity entry forgotten")

func (t *activityTable) get(name string) *fnActivity {
	if v, ok := t.m.Load(name); ok {
		return v.(*fnActivity)
	}
	v, _ := t.m.LoadOrStore(name, &fnActivity{name: name})
	return v.(*fnActivity)
}

// begin counts a request as started and in flight. When the function is
// being put to sleep it first waits until the scale-down is over (the
// request then wakes the function like any other). It fails when ctx
// ends while waiting, and with errForgotten (counting nothing) when the
// entry is being forgotten: the caller begins in the table's next entry.
func (a *fnActivity) begin(ctx context.Context) error {
	for {
		a.inFlight.Add(1)
		if a.dead.Load() {
			a.inFlight.Add(-1)
			return errForgotten
		}
		g := a.gate.Load()
		if g == nil {
			break
		}
		// Sleep checks inFlight after publishing the gate, so either it
		// sees this request and gives up, or this request sees the gate.
		a.inFlight.Add(-1)
		select {
		case <-*g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.started.Add(1)
	a.last.Store(time.Now().UnixNano())
	return nil
}

// end counts a request as finished.
func (a *fnActivity) end() {
	a.last.Store(time.Now().UnixNano())
	a.finished.Add(1)
	a.inFlight.Add(-1)
}

func (a *fnActivity) snapshot() preview.Activity {
	s := preview.Activity{
		Function: a.name,
		Started:  a.started.Load(),
		InFlight: a.inFlight.Load(),
		Finished: a.finished.Load(),
	}
	if n := a.last.Load(); n != 0 {
		s.LastActivity = time.Unix(0, n)
	}
	return s
}

// Activity returns, per function the edge has proxied to since it
// started and a route still names (or with requests still in flight), the
// requests started, in flight and finished, and the time of
// the last start or finish. A WebSocket or streaming response is in flight
// for as long as it lasts. Then, per host that served a static request
// since the edge started, an entry with only Host and LastActivity: the
// time of the first Activity call after the host's latest static
// requests (so at most one call interval late; the idle controller calls
// it every cycle). Functions come first, sorted by name, then hosts. It never
// fails; the error is there to satisfy preview.ActivityReporter.
func (e *Edge) Activity(ctx context.Context) ([]preview.Activity, error) {
	e.mu.Lock()
	e.forgetUnroutedLocked(*e.table.Load())
	e.mu.Unlock()
	var out []preview.Activity
	e.act.m.Range(func(_, v any) bool {
		out = append(out, v.(*fnActivity).snapshot())
		return true
	})
	now := time.Now().UnixNano()
	e.act.hosts.Range(func(k, v any) bool {
		h := v.(*hostActivity)
		if h.dirty.Swap(false) {
			h.last.Store(now)
		}
		if n := h.last.Load(); n != 0 {
			out = append(out, preview.Activity{Host: k.(string), LastActivity: time.Unix(0, n)})
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if hi, hj := out[i].Function == "", out[j].Function == ""; hi != hj {
			return hj // functions first
		}
		return out[i].Function+" "+out[i].Host < out[j].Function+" "+out[j].Host
	})
	return out, ctx.Err()
}

// Sleep puts a function to sleep without racing arriving requests (it
// implements idle.Gate). If the function has nothing in flight and no
// request started after idleSince, Sleep holds new requests for it, runs
// scaleDown, and then releases them: they find the function asleep and
// wake it. Otherwise it runs nothing and reports false. A request is never
// dropped: at worst it waits for scaleDown and the wake that follows.
func (e *Edge) Sleep(ctx context.Context, name string, idleSince time.Time, scaleDown func(context.Context) error) (bool, error) {
	var a *fnActivity
	g := make(chan struct{})
	release := func() {
		a.gate.Store(nil)
		close(g)
	}
	for {
		a = e.act.get(name)
		if !a.gate.CompareAndSwap(nil, &g) {
			return false, nil // another Sleep is running
		}
		if !a.dead.Load() {
			break
		}
		// Being forgotten: gate the next entry instead (a request that
		// saw this gate goes on, and begins in the next entry).
		a.gate.Store(nil)
		close(g)
		g = make(chan struct{})
	}
	if a.inFlight.Load() > 0 || a.last.Load() > idleSince.UnixNano() {
		release()
		return false, nil
	}
	err := scaleDown(ctx)
	release()
	if err != nil {
		return false, err
	}
	e.metrics.sleep()
	return true, nil
}

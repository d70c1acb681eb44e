package idle

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Gate lets the controller scale a function down without racing requests
// that arrive meanwhile. Sleep checks, atomically with respect to arriving
// requests, that nothing is in flight for name and no request started
// after idleSince; if so it holds new requests for name, runs scaleDown,
// and releases them (they then wake the function again). It reports
// whether scaleDown ran. The edge implements it.
type Gate interface {
	Sleep(ctx context.Context, name string, idleSince time.Time, scaleDown func(context.Context) error) (bool, error)
}

// Controller puts idle functions to sleep: each cycle it lists the
// functions (one List call), reads the activity, asks the Policy, and
// scales the chosen functions to zero through the Gate.
//
// It does nothing in a cycle when the activity source fails or when every
// counter dropped to zero since the last cycle (the edge restarted and
// lost its counts): better to keep a preview awake a cycle longer than to
// put a busy one to sleep. Functions the edge has never seen count as
// active when the controller started or when they were deployed,
// whichever is later, so a restarted daemon does not put everything to
// sleep at once and a new preview gets its full idle duration.
//
// A deploy counts as activity: a function first deployed (CreatedAt) after
// its last request, or whose generation or commit changed since the last
// cycle (an Up of the preview), is active as of that deploy, so a fresh
// commit gets its full idle duration however long ago the last request
// was. A change is noticed at the first cycle that lists it and dated to
// that cycle, never earlier; the controller keeps one small entry per
// function it lists.
//
// A Controller must not be copied after first use; Cycle and Run are not
// meant to be called concurrently.
type Controller struct {
	Runtime  preview.FunctionRuntime
	Activity preview.ActivityReporter
	// Gate, when set, serialises scale-downs with arriving requests;
	// without it the controller calls Runtime.Scale directly.
	Gate   Gate
	Policy preview.IdlePolicy
	// Selector picks the functions the controller manages; default every
	// function managed by Glimpse.
	Selector preview.Labels
	// Interval between cycles; each wait is shortened by up to Jitter (a
	// fraction, default 0.1) at random. Zero means IntervalFor the
	// shortest idle duration in play: DefaultAfter or any function's
	// idle-after annotation seen in the last cycle.
	Interval time.Duration
	Jitter   float64
	// DefaultAfter is the idle duration of functions without an
	// idle-after annotation, used only to pace cycles (the Policy
	// decides); default DefaultAfter.
	DefaultAfter time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics, when set, counts cycles, skips and scale-downs.
	Metrics *Metrics

	started time.Time
	// lastStarted is each listed function's Started of the last cycle
	// (those above 0): the baseline a counter reset is told from.
	lastStarted  map[string]uint64
	haveBaseline bool
	shortest     time.Duration // shortest idle-after seen in the last cycle
	deploys      map[string]deployMark
}

// deployMark is what the controller last saw of a function's deploy: its
// generation and commit, and when it saw them change (zero: never, only
// the first sighting).
type deployMark struct {
	generation int64
	commit     string
	at         time.Time
}

// deployedAt records in seen f's generation and commit as of now and
// returns when the controller last saw them change; zero when they did
// not change since it first listed f.
func (c *Controller) deployedAt(f preview.FunctionStatus, now time.Time, seen map[string]deployMark) time.Time {
	m := deployMark{generation: preview.GenerationOf(f.Annotations), commit: f.Labels[preview.LabelCommit]}
	if prev, ok := c.deploys[f.Name]; ok {
		m.at = prev.at
		if prev.generation != m.generation || prev.commit != m.commit {
			m.at = now
		}
	}
	seen[f.Name] = m
	return m.at
}

// later returns the latest of ts.
func later(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// CycleResult says what one cycle did.
type CycleResult struct {
	// Observed is how many functions were considered.
	Observed int
	// Skipped names the circuit breaker's reason when the cycle did
	// nothing; empty otherwise.
	Skipped string
	// Slept are the functions scaled to zero.
	Slept []string
	// Clamped are functions the runtime refused to scale below one
	// replica (OpenFaaS CE).
	Clamped []string
	// Errors are per-function failures; other functions still proceed.
	Errors []error
}

// Circuit breaker reasons.
const (
	SkipActivityUnavailable = "activity source unavailable"
	SkipCountersReset       = "every activity counter dropped to zero (edge restarted)"
)

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Controller) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Cycle runs one observe-decide-act round. It returns an error only when
// the function list could not be read; per-function failures are in the
// result.
func (c *Controller) Cycle(ctx context.Context) (CycleResult, error) {
	now := c.now()
	if c.started.IsZero() {
		c.started = now
	}
	var res CycleResult
	sel := c.Selector
	if sel == nil {
		sel = preview.Labels{preview.LabelManagedBy: preview.ManagedByValue}
	}
	fns, err := c.Runtime.List(ctx, sel)
	if err != nil {
		return res, err
	}
	acts, err := c.Activity.Activity(ctx)
	if err != nil {
		res.Skipped = SkipActivityUnavailable
		c.Metrics.skip(res.Skipped)
		c.log().Warn("idle: skipping cycle", "reason", res.Skipped, "err", err)
		return res, nil
	}
	byName := make(map[string]preview.Activity, len(acts))
	for _, a := range acts {
		byName[a.Function] = a
	}
	// A reset (the edge restarted) is every function still listed that
	// had requests last cycle now reporting none. Functions no longer
	// listed do not count: an edge forgets the activity of what it no
	// longer routes.
	var before, after uint64
	started := make(map[string]uint64, len(fns))
	for _, f := range fns {
		if n := byName[f.Name].Started; n > 0 {
			started[f.Name] = n
		}
		if n := c.lastStarted[f.Name]; n > 0 {
			before += n
			after += byName[f.Name].Started
		}
	}
	if c.haveBaseline && before > 0 && after == 0 {
		c.lastStarted, c.started = nil, now
		res.Skipped = SkipCountersReset
		c.Metrics.skip(res.Skipped)
		c.log().Warn("idle: skipping cycle", "reason", res.Skipped)
		return res, nil
	}
	c.lastStarted, c.haveBaseline = started, true

	c.shortest = 0
	obs := make([]preview.Observation, 0, len(fns))
	seen := make(map[string]deployMark, len(fns))
	for _, f := range fns {
		a := byName[f.Name]
		a.Function = f.Name
		if a.LastActivity.IsZero() {
			// Never requested since the edge started: idle since the
			// controller started at the earliest.
			a.LastActivity = c.started
		}
		// A deploy is activity: the first one (CreatedAt) and every
		// later change of generation or commit.
		a.LastActivity = later(a.LastActivity, f.CreatedAt, c.deployedAt(f, now, seen))
		o := preview.Observation{Activity: a, Replicas: f.Replicas, AlwaysOn: f.Annotations[preview.AnnotationAlwaysOn] == "true"}
		if d, ok := preview.IdleAfterOf(f.Annotations); ok {
			o.IdleAfter = d
			if c.shortest == 0 || d < c.shortest {
				c.shortest = d
			}
		}
		obs = append(obs, o)
	}
	c.deploys = seen // functions no longer listed are forgotten
	res.Observed = len(obs)
	c.Metrics.cycle()
	policy := c.Policy
	if policy == nil {
		policy = Policy{}
	}
	last := make(map[string]time.Time, len(obs))
	for _, o := range obs {
		last[o.Function] = o.LastActivity
	}
	for _, name := range policy.Idle(now, obs) {
		if ctx.Err() != nil {
			res.Errors = append(res.Errors, ctx.Err())
			break
		}
		slept, clamped, err := c.sleep(ctx, name, last[name])
		switch {
		case err != nil:
			res.Errors = append(res.Errors, err)
			c.log().Error("idle: scale to zero failed", "function", name, "err", err)
		case clamped:
			res.Clamped = append(res.Clamped, name)
			c.Metrics.clamped()
			c.log().Warn("idle: the runtime kept one replica (it refuses to scale to zero)", "function", name)
		case slept:
			res.Slept = append(res.Slept, name)
			c.Metrics.sleep()
			c.log().Info("idle: scaled to zero", "function", name, "idle-since", last[name])
		}
	}
	return res, nil
}

// errClamped marks a Scale(0) that the runtime answered with replicas left.
var errClamped = errors.New("runtime kept replicas")

func (c *Controller) sleep(ctx context.Context, name string, idleSince time.Time) (slept, clamped bool, err error) {
	scale := func(ctx context.Context) error {
		got, err := c.Runtime.Scale(ctx, name, 0)
		if err != nil {
			return preview.IgnoreNotFound(err)
		}
		if got > 0 {
			return errClamped
		}
		return nil
	}
	if c.Gate == nil {
		err = scale(ctx)
		slept = err == nil
	} else {
		slept, err = c.Gate.Sleep(ctx, name, idleSince, scale)
	}
	if errors.Is(err, errClamped) {
		return false, true, nil
	}
	return slept, false, err
}

// Run calls Cycle every Interval (less up to Jitter) until ctx ends; it
// returns ctx's error. Cycle errors are logged, not returned.
func (c *Controller) Run(ctx context.Context) error {
	jitter := c.Jitter
	if jitter <= 0 || jitter >= 1 {
		jitter = 0.1
	}
	t := time.NewTimer(0) // the first cycle learns the idle durations in play
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := c.Cycle(ctx); err != nil && ctx.Err() == nil {
			c.log().Error("idle: cycle failed", "err", err)
		}
		t.Reset(time.Duration(float64(c.interval()) * (1 - jitter*rand.Float64())))
	}
}

func (c *Controller) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	d := c.DefaultAfter
	if d <= 0 {
		d = DefaultAfter
	}
	if c.shortest > 0 && c.shortest < d {
		d = c.shortest
	}
	return IntervalFor(d)
}

// IntervalFor returns a controller interval suited to an idle duration: a
// quarter of it, between 250 ms and 10 s, so that a preview sleeps at most
// about 25% later than its idle duration says, and a newly deployed preview
// with a short idle duration is noticed within 10 s. One cycle is one List
// call, so even the 10 s floor costs little.
func IntervalFor(after time.Duration) time.Duration {
	i := after / 4
	if i < 250*time.Millisecond {
		i = 250 * time.Millisecond
	}
	if i > 10*time.Second {
		i = 10 * time.Second
	}
	return i
}

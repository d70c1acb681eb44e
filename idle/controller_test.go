package idle_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/idle"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// activity is a recorded activity source: the test sets what the edge
// would report.
type activity struct {
	mu   sync.Mutex
	acts []preview.Activity
	err  error
}

func (a *activity) Activity(context.Context) ([]preview.Activity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.acts), a.err
}

func (a *activity) set(err error, acts ...preview.Activity) {
	a.mu.Lock()
	a.acts, a.err = acts, err
	a.mu.Unlock()
}

// deployed starts a local stack and deploys examples/hello for the given
// PRs with idle.after 2s; it returns the stack.
func deployed(t *testing.T, prs ...int) *daemon.Stack {
	st, _ := deployApp(t, "../examples/hello", prs...)
	return st
}

// deployApp starts a local stack served on loopback, deploys a copy of
// the app in src for the given PRs with idle.after 2s, and returns the
// stack and its server.
func deployApp(t testing.TB, src string, prs ...int) (*daemon.Stack, *httptest.Server) {
	t.Helper()
	return deployApps(t, []string{src}, prs...)
}

// deployApps deploys every app of srcs, for each of prs, on one local
// stack.
func deployApps(t testing.TB, srcs []string, prs ...int) (*daemon.Stack, *httptest.Server) {
	t.Helper()
	st, pl, srv := daemontest.Open(t, "", nil)
	ctx := context.Background()
	for _, src := range srcs {
		dir := testapp.Copy(t, src)
		f, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		f.Idle.After = "2s"
		for _, pr := range prs {
			if _, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: f.Spec, PR: pr, Commit: "abc1234"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st, srv
}

func replicas(t *testing.T, rt preview.FunctionRuntime, name string) int {
	t.Helper()
	st, err := rt.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Replicas
}

func TestControllerSleepsIdleFunctions(t *testing.T) {
	st := deployed(t, 1, 2)
	clock := time.Now()
	act := &activity{}
	c := &idle.Controller{Runtime: st.Runtime, Activity: act, Now: func() time.Time { return clock }}
	ctx := context.Background()

	// First cycle: nothing was seen yet; functions count as active now.
	res, err := c.Cycle(ctx)
	if err != nil || res.Observed != 2 || len(res.Slept) != 0 {
		t.Fatalf("first cycle = %+v, %v; want 2 observed, none slept", res, err)
	}
	// PR 1 had a request 1s ago; PR 2 is idle for 3s; idle.after is 2s.
	clock = clock.Add(3 * time.Second)
	act.set(nil,
		preview.Activity{Function: "hello-pr-1", Started: 1, Finished: 1, LastActivity: clock.Add(-time.Second)},
		preview.Activity{Function: "hello-pr-2", Started: 1, Finished: 1, LastActivity: clock.Add(-3 * time.Second)})
	res, err = c.Cycle(ctx)
	if err != nil || !slices.Equal(res.Slept, []string{"hello-pr-2"}) || len(res.Errors) != 0 {
		t.Fatalf("cycle = %+v, %v; want hello-pr-2 slept", res, err)
	}
	if replicas(t, st.Runtime, "hello-pr-2") != 0 || replicas(t, st.Runtime, "hello-pr-1") != 1 {
		t.Fatal("replicas after the cycle do not match the decision")
	}

	// A request in flight for longer than idle.after keeps PR 1 awake.
	clock = clock.Add(10 * time.Second)
	act.set(nil,
		preview.Activity{Function: "hello-pr-1", Started: 2, InFlight: 1, Finished: 1, LastActivity: clock.Add(-10 * time.Second)},
		preview.Activity{Function: "hello-pr-2", Started: 1, Finished: 1, LastActivity: clock.Add(-13 * time.Second)})
	if res, _ := c.Cycle(ctx); len(res.Slept) != 0 {
		t.Fatalf("a function with a request in flight was put to sleep: %+v", res)
	}
}

func TestControllerCircuitBreaker(t *testing.T) {
	st := deployed(t, 1)
	clock := time.Now()
	act := &activity{}
	c := &idle.Controller{Runtime: st.Runtime, Activity: act, Now: func() time.Time { return clock }}
	ctx := context.Background()
	act.set(nil, preview.Activity{Function: "hello-pr-1", Started: 5, Finished: 5, LastActivity: clock})
	if res, _ := c.Cycle(ctx); res.Skipped != "" {
		t.Fatalf("baseline cycle skipped: %+v", res)
	}

	// The activity source fails: nothing is scaled down.
	clock = clock.Add(time.Hour)
	act.set(errors.New("edge unreachable"))
	if res, err := c.Cycle(ctx); err != nil || res.Skipped != idle.SkipActivityUnavailable || len(res.Slept) != 0 {
		t.Fatalf("cycle with the activity source down = %+v, %v", res, err)
	}
	// Every counter dropped to zero (edge restarted): skip again.
	act.set(nil, preview.Activity{Function: "hello-pr-1"})
	if res, _ := c.Cycle(ctx); res.Skipped != idle.SkipCountersReset || replicas(t, st.Runtime, "hello-pr-1") != 1 {
		t.Fatalf("cycle after a counter reset = %+v; want skipped and the function awake", res)
	}
	// After the reset the controller counts from now: not yet idle ...
	clock = clock.Add(time.Second)
	if res, _ := c.Cycle(ctx); res.Skipped != "" || len(res.Slept) != 0 {
		t.Fatalf("cycle right after the reset = %+v; want no skip, nothing slept", res)
	}
	// ... and idle once idle.after has passed since the reset.
	clock = clock.Add(2 * time.Second)
	if res, _ := c.Cycle(ctx); !slices.Equal(res.Slept, []string{"hello-pr-1"}) {
		t.Fatalf("cycle 3s after the reset = %+v; want hello-pr-1 slept", res)
	}
}

// A function taken down whose activity the edge then forgets is no
// counter reset: the other previews' idle clocks keep running.
func TestControllerForgottenFunctionIsNoReset(t *testing.T) {
	st := deployed(t, 1, 2)
	clock := time.Now()
	act := &activity{}
	c := &idle.Controller{Runtime: st.Runtime, Activity: act, Now: func() time.Time { return clock }}
	ctx := context.Background()
	act.set(nil, preview.Activity{Function: "hello-pr-1", Started: 5, Finished: 5, LastActivity: clock})
	if res, _ := c.Cycle(ctx); res.Skipped != "" {
		t.Fatalf("baseline cycle skipped: %+v", res)
	}
	// PR 1 is taken down and forgotten; PR 2 was never requested and is
	// idle past idle.after (2s) since the controller started.
	if err := st.Runtime.Remove(ctx, "hello-pr-1"); err != nil {
		t.Fatal(err)
	}
	act.set(nil)
	clock = clock.Add(3 * time.Second)
	if res, _ := c.Cycle(ctx); res.Skipped != "" || !slices.Equal(res.Slept, []string{"hello-pr-2"}) {
		t.Fatalf("cycle after PR 1 went = %+v; want no skip and hello-pr-2 slept", res)
	}
}

func TestControllerAlwaysOnAndOptOut(t *testing.T) {
	st := deployed(t, 1)
	ctx := context.Background()
	fn, err := st.Runtime.Get(ctx, "hello-pr-1")
	if err != nil {
		t.Fatal(err)
	}
	fn.Annotations[preview.AnnotationAlwaysOn] = "true"
	if err := st.Runtime.Apply(ctx, fn.Function); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	c := &idle.Controller{Runtime: st.Runtime, Activity: &activity{}, Now: func() time.Time { return clock }}
	c.Cycle(ctx)
	clock = clock.Add(time.Hour)
	if res, _ := c.Cycle(ctx); len(res.Slept) != 0 || replicas(t, st.Runtime, "hello-pr-1") != 1 {
		t.Fatalf("an always-on function was put to sleep: %+v", res)
	}
}

func TestIntervalFor(t *testing.T) {
	for after, want := range map[time.Duration]time.Duration{
		2 * time.Second: 500 * time.Millisecond, 100 * time.Millisecond: 250 * time.Millisecond, time.Hour: 10 * time.Second,
	} {
		if got := idle.IntervalFor(after); got != want {
			t.Errorf("IntervalFor(%v) = %v, want %v", after, got, want)
		}
	}
}

func TestNewPreviewGetsItsFullIdleDuration(t *testing.T) {
	st := deployed(t, 1)
	deployedAt := time.Now()
	clock := deployedAt.Add(-time.Hour) // the controller has run for an hour
	c := &idle.Controller{Runtime: st.Runtime, Activity: &activity{}, Now: func() time.Time { return clock }}
	c.Cycle(context.Background())
	clock = deployedAt.Add(time.Second) // idle.after is 2s
	if res, _ := c.Cycle(context.Background()); len(res.Slept) != 0 {
		t.Fatalf("a preview deployed 1s ago and never requested was put to sleep: %+v", res)
	}
	clock = deployedAt.Add(3 * time.Second)
	if res, _ := c.Cycle(context.Background()); !slices.Equal(res.Slept, []string{"hello-pr-1"}) {
		t.Fatalf("3s after deployment: %+v; want it asleep", res)
	}
}

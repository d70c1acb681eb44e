//go:build unix

package localfaas

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// starts counts the process starts recorded in the function's log.
func starts(t *testing.T, rt *Runtime, name string) int {
	t.Helper()
	b, err := os.ReadFile(rt.logPath(name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), logHeader)
}

func withGeneration(fn preview.Function, g int) preview.Function {
	fn = cloneFunction(fn)
	fn.Annotations = preview.Labels(fn.Annotations).With(preview.AnnotationGeneration, strconv.Itoa(g))
	return fn
}

// TestApplyAtZeroTrialStart (reproduction 3): deploying a version that
// crashes at start onto a function scaled to zero fails Apply with a
// one-line error naming the exit status and the process's last output; the
// function stays at zero and keeps its deployed version, which a wake then
// starts. A version that starts is deployed and the function stays at zero.
func TestApplyAtZeroTrialStart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), func(o *Options) { o.ReadyTimeout = 2 * time.Second })
	fn := testFunction("trial-pr-1", echoImage(t, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}

	bad := cloneFunction(fn)
	bad.Env["ECHOFN_MODE"] = "exit"
	before := starts(t, rt, fn.Name)
	err := rt.Apply(ctx, bad)
	switch {
	case err == nil:
		t.Fatal("Apply of a version that crashes at start onto a function at zero succeeded")
	case preview.CodeOf(err) != preview.FailedPrecondition:
		t.Errorf("Apply = %v; want FailedPrecondition", err)
	case strings.Contains(err.Error(), "\n"):
		t.Errorf("Apply's error is not one line: %q", err)
	case !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "echofn: exiting as asked"):
		t.Errorf("Apply = %q; want the exit status and the last output", err)
	}
	t.Logf("error: %v", err)
	if n := starts(t, rt, fn.Name); n != before+1 {
		t.Errorf("%d starts for the trial, want 1", n-before)
	}
	st, _ := rt.Get(ctx, fn.Name)
	if st.Replicas != 0 || st.Env["ECHOFN_MODE"] != "" || rt.pid(fn.Name) != 0 {
		t.Fatalf("after the failed Apply: replicas %d env %v pid %d; want the old version at zero", st.Replicas, st.Env, rt.pid(fn.Name))
	}

	good := cloneFunction(fn)
	good.Env["GLIMPSE_PR"] = "2"
	if err := rt.Apply(ctx, good); err != nil {
		t.Fatalf("Apply of a version that starts onto a function at zero: %v", err)
	}
	if st, _ := rt.Get(ctx, fn.Name); st.Replicas != 0 || st.Env["GLIMPSE_PR"] != "2" || rt.pid(fn.Name) != 0 {
		t.Fatalf("after Apply at zero: replicas %d env %v pid %d; want the new version at zero, no process", st.Replicas, st.Env, rt.pid(fn.Name))
	}
	if _, err := rt.Scale(ctx, fn.Name, 1); err != nil {
		t.Fatal(err)
	}
	addr, _ := rt.Endpoint(fn.Name)
	if e := getEcho(t, "http://"+addr); e.Env["GLIMPSE_PR"] != "2" {
		t.Fatalf("woken function runs %v", e.Env)
	}

	// A version that never listens fails the trial after ReadyTimeout.
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	mute := cloneFunction(good)
	mute.Env["ECHOFN_MODE"] = "nolisten"
	if err := rt.Apply(ctx, mute); preview.CodeOf(err) != preview.DeadlineExceeded {
		t.Fatalf("Apply of a version that never listens = %v; want DeadlineExceeded", err)
	}
	if st, _ := rt.Get(ctx, fn.Name); st.Env["ECHOFN_MODE"] != "" {
		t.Fatalf("a failed trial changed the spec: %v", st.Env)
	}
}

// TestAnnotationOnlyApply: an Apply that changes only labels and
// annotations (the Pipeline stamps a new generation on every Up) records
// them, persistently, without restarting the process, and without a trial
// start at zero.
func TestAnnotationOnlyApply(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	home := t.TempDir()
	rt := newRuntime(t, home, nil)
	fn := withGeneration(testFunction("relabel-pr-1", echoImage(t, "a"), 1), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	pid, n := rt.pid(fn.Name), starts(t, rt, fn.Name)
	next := withGeneration(fn, 2)
	next.Labels = next.Labels.With("team", "web")
	if err := rt.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if rt.pid(fn.Name) != pid || starts(t, rt, fn.Name) != n || processGone(pid) {
		t.Fatalf("annotation-only Apply restarted the process: pid %d -> %d, %d starts", pid, rt.pid(fn.Name), starts(t, rt, fn.Name)-n)
	}
	st, _ := rt.Get(ctx, fn.Name)
	if preview.GenerationOf(st.Annotations) != 2 || st.Labels["team"] != "web" || st.Annotations["glimpse.dev/routes"] != "/graphql" {
		t.Fatalf("after annotation-only Apply: labels %v annotations %v", st.Labels, st.Annotations)
	}

	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	n = starts(t, rt, fn.Name)
	if err := rt.Apply(ctx, withGeneration(next, 3)); err != nil {
		t.Fatal(err)
	}
	if starts(t, rt, fn.Name) != n || rt.pid(fn.Name) != 0 {
		t.Fatalf("annotation-only Apply at zero started a process")
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt2 := newRuntime(t, home, nil)
	if st, err := rt2.Get(ctx, fn.Name); err != nil || preview.GenerationOf(st.Annotations) != 3 || st.Labels["team"] != "web" {
		t.Fatalf("annotation-only change not persisted: %+v, %v", st, err)
	}
}

// TestNoRollBack: Apply refuses a generation older than the deployed one
// (a missing annotation is generation 0) and changes nothing, also over the
// gateway API (412); equal and newer generations pass. Concurrent Applies
// of generations 1..n leave generation n, whatever their order.
func TestNoRollBack(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	fn := withGeneration(testFunction("order-pr-1", echoImage(t, "a"), 1), 5)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	pid := rt.pid(fn.Name)
	older := withGeneration(fn, 4)
	older.Env["GLIMPSE_PR"] = "old"
	unstamped := cloneFunction(older)
	delete(unstamped.Annotations, preview.AnnotationGeneration)
	for _, f := range []preview.Function{older, unstamped} {
		err := rt.Apply(ctx, f)
		if preview.CodeOf(err) != preview.FailedPrecondition || !errors.Is(err, preview.ErrStaleGeneration) {
			t.Fatalf("Apply of generation %q over 5 = %v; want ErrStaleGeneration (FailedPrecondition)", f.Annotations[preview.AnnotationGeneration], err)
		}
	}
	if st, _ := rt.Get(ctx, fn.Name); st.Env["GLIMPSE_PR"] != "1" || preview.GenerationOf(st.Annotations) != 5 || rt.pid(fn.Name) != pid {
		t.Fatalf("a refused roll-back changed the function: env %v annotations %v pid %d (was %d)", st.Env, st.Annotations, rt.pid(fn.Name), pid)
	}

	c := gatewayClient(t, rt)
	if err := c.Apply(ctx, older); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("roll-back over the gateway = %v; want FailedPrecondition", err)
	}
	same := withGeneration(fn, 5)
	same.Env["GLIMPSE_PR"] = "5b"
	if err := rt.Apply(ctx, same); err != nil {
		t.Fatalf("Apply of an equal generation: %v", err)
	}

	var wg sync.WaitGroup
	const n = 12
	for g := n; g >= 1; g-- { // mostly newest first: the older ones must lose
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := rt.Apply(ctx, withGeneration(same, 5+g))
			if err != nil && !errors.Is(err, preview.ErrStaleGeneration) {
				t.Errorf("Apply of generation %d: %v", 5+g, err)
			}
		}()
	}
	wg.Wait()
	if st, _ := rt.Get(ctx, fn.Name); preview.GenerationOf(st.Annotations) != 5+n {
		t.Fatalf("after concurrent Applies the function has generation %d, want %d", preview.GenerationOf(st.Annotations), 5+n)
	}
}

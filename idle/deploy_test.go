package idle_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
)

// A new deploy counts as activity: a preview whose last request is long
// past gets its full idle duration from an Up of a fresh commit, instead
// of being put to sleep at the next cycle. The embedded stack, a real Up
// (ko build, localfaas) and the stack's own controller, on a test clock.
func TestNewDeployCountsAsActivity(t *testing.T) {
	st, pl, srv := daemontest.Open(t, "", nil)
	ctx := context.Background()
	dir := testapp.Copy(t, "testdata/slowapp")
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	up := func(commit string) {
		t.Helper()
		if _, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: f.Spec, PR: 1, Commit: commit}); err != nil {
			t.Fatal(err)
		}
	}
	up("abc1234")
	if code, _ := call(t, srv, "/"); code != 200 {
		t.Fatalf("first request = %d", code)
	}
	clock := time.Now()
	c := controllerAt(st, &clock)
	if res, _ := c.Cycle(ctx); len(res.Slept) != 0 {
		t.Fatalf("slept right after a request: %+v", res)
	}

	// An hour without requests (idle.after is 2s), then a fresh commit.
	clock = clock.Add(time.Hour)
	up("def5678")
	if res, err := c.Cycle(ctx); err != nil || len(res.Slept) != 0 || res.Observed != 1 {
		t.Fatalf("cycle right after the Up of a new commit = %+v, %v; want the function awake", res, err)
	}
	if replicas(t, st.Runtime, slowFn) != 1 {
		t.Fatal("the freshly deployed function was scaled down")
	}
	// Still within its idle duration one second later; asleep once it
	// passed without a request.
	clock = clock.Add(time.Second)
	if res, _ := c.Cycle(ctx); len(res.Slept) != 0 {
		t.Fatalf("slept 1s after the deploy with idle.after 2s: %+v", res)
	}
	clock = clock.Add(2 * time.Second)
	if res, err := c.Cycle(ctx); err != nil || !slices.Equal(res.Slept, []string{slowFn}) {
		t.Fatalf("cycle 3s after the deploy = %+v, %v; want it asleep", res, err)
	}
}

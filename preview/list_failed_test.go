package preview_test

import (
	"context"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// crashedRuntime reports every function as crashed: no ready replica and
// a LastError, as localfaas does for a crash loop.
type crashedRuntime struct {
	*previewtest.MemRuntime
	available int
}

func (c crashedRuntime) List(ctx context.Context, sel preview.Labels) ([]preview.FunctionStatus, error) {
	l, err := c.MemRuntime.List(ctx, sel)
	for i := range l {
		l[i].LastError, l[i].AvailableReplicas = "function process exited: exit status 3", c.available
	}
	return l, err
}

func TestListFailed(t *testing.T) {
	ctx := context.Background()
	mem := previewtest.NewMemRuntime()
	router := previewtest.NewMemRouter()
	target := preview.Target{App: "hello", PR: 4, Commit: "abc1234"}
	fn := preview.Function{Name: "hello-pr-4", Image: "r/hello@sha256:1", Labels: preview.OwnerLabels("", target)}
	if err := mem.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	router.SetRoute(ctx, preview.Route{Host: "pr-4.hello.localhost", Function: fn.Name, Labels: fn.Labels, Generation: 1, Served: 1})
	for _, c := range []struct {
		replicas, available int
		want                preview.Status
	}{
		{1, 0, preview.StatusFailed},
		{0, 0, preview.StatusFailed}, // asleep after crashing: not sleeping
		{1, 1, preview.StatusReady},  // crashed once, back up
	} {
		if _, err := mem.Scale(ctx, fn.Name, c.replicas); err != nil {
			t.Fatal(err)
		}
		pl := &preview.Pipeline{Runtime: crashedRuntime{mem, c.available}, Router: router}
		l, err := pl.List(ctx, "")
		if err != nil || len(l) != 1 || l[0].Status != c.want || l[0].LastError == "" {
			t.Fatalf("replicas %d available %d: List = %+v, %v; want %s", c.replicas, c.available, l, err, c.want)
		}
	}
}

// A first Up whose function never started stops before the route switch:
// the route is claimed but serves nothing. The preview is failed with the
// runtime's reason, not partial (which the dashboard shows as deploying).
func TestListFailedBeforeRouted(t *testing.T) {
	ctx := context.Background()
	mem := previewtest.NewMemRuntime()
	router := previewtest.NewMemRouter()
	target := preview.Target{App: "hello", PR: 5, Commit: "abc1234"}
	fn := preview.Function{Name: "hello-pr-5", Image: "r/hello@sha256:1", Labels: preview.OwnerLabels("", target)}
	if err := mem.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	router.SetRoute(ctx, preview.Route{Host: "pr-5.hello.localhost", Labels: fn.Labels, Generation: 1})
	pl := &preview.Pipeline{Runtime: crashedRuntime{mem, 0}, Router: router}
	l, err := pl.List(ctx, "")
	if err != nil || len(l) != 1 || l[0].Status != preview.StatusFailed || l[0].LastError == "" || l[0].Function != fn.Name {
		t.Fatalf("List = %+v, %v; want hello #5 failed with its reason", l, err)
	}
	// Still in progress when nothing failed.
	pl.Runtime = mem
	if l, err := pl.List(ctx, ""); err != nil || len(l) != 1 || l[0].Status != preview.StatusPartial {
		t.Fatalf("List of an Up in progress = %+v, %v; want partial", l, err)
	}
}

// A first Up that failed and left no function (a runtime that creates
// nothing when the process does not start) recorded why on its claim:
// the preview is failed with that reason until the next claim.
func TestListFailedUpWithoutFunction(t *testing.T) {
	ctx := context.Background()
	router := previewtest.NewMemRouter()
	labels := preview.OwnerLabels("", preview.Target{App: "hello", PR: 6, Commit: "abc1234"})
	router.SetRoute(ctx, preview.Route{Host: "pr-6.hello.localhost", Labels: labels, Generation: 1, Failure: "deploy: function hello-pr-6: function process exited before listening"})
	pl := &preview.Pipeline{Runtime: previewtest.NewMemRuntime(), Router: router}
	l, err := pl.List(ctx, "")
	if err != nil || len(l) != 1 || l[0].Status != preview.StatusFailed || l[0].LastError != "deploy: function hello-pr-6: function process exited before listening" {
		t.Fatalf("List = %+v, %v; want hello #6 failed with the Up's reason", l, err)
	}
}

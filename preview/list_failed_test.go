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

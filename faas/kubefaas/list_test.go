package kubefaas_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/internal/kubescale"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestListCalls checks what List asks the API server for: one list (the
// Deployments) while every function has its replicas ready or is at
// zero, the idle controller's quiet cycle; a second (the pods) once a
// function is short of ready replicas, whose LastError it then reports.
func TestListCalls(t *testing.T) {
	c := cluster(t)
	ns := c.Namespace(t)
	var counter kubescale.Counter
	cfg := c.Config()
	cfg.WrapTransport = counter.Wrap
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: corev1.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	up := preview.Function{Name: "up-pr-1", Image: helloImage, Labels: preview.OwnerLabels("", preview.Target{App: "calls", PR: 1})}
	asleep := preview.Function{Name: "asleep-pr-2", Image: helloImage, Labels: preview.OwnerLabels("", preview.Target{App: "calls", PR: 2})}
	for _, fn := range []preview.Function{up, asleep} {
		if err := r.Apply(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Scale(ctx, asleep.Name, 0); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, r, up.Name, 1)
	waitAvailable(t, r, asleep.Name, 0)
	sel := preview.Selector("", "calls", 0)
	list := func() ([]preview.FunctionStatus, map[string]int) {
		t.Helper()
		counter.Take()
		l, err := r.List(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		calls, _ := counter.Take()
		return l, calls
	}
	// The Deployment controller may still be writing the status of the
	// scale-down; a settled fleet is one list.
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, calls := list()
		if len(l) != 2 {
			t.Fatalf("List = %+v, want two functions", l)
		}
		if calls["list"] == 1 && len(calls) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a settled List made %v, want one list", calls)
		}
		time.Sleep(50 * time.Millisecond)
	}

	broken := preview.Function{Name: "broken-pr-3", Image: "glimpse.test/missing:1", Labels: preview.OwnerLabels("", preview.Target{App: "calls", PR: 3})}
	if err := r.Apply(ctx, broken); err != nil {
		t.Fatal(err)
	}
	for {
		l, calls := list()
		var got string
		for _, f := range l {
			if f.Name == broken.Name {
				got = f.LastError
			}
		}
		if calls["list"] != 2 {
			t.Fatalf("List with a function short of ready replicas made %v, want two lists (deployments, pods)", calls)
		}
		if strings.Contains(got, "ErrImageNeverPull") {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("LastError of %s = %q, want ErrImageNeverPull", broken.Name, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

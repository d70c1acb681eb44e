package dashboard

import (
	"context"
	"errors"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// A History keeps the last Up of each preview, bounded, and redeploys
// only what it can run again.
func TestHistory(t *testing.T) {
	var h History
	ctx := context.Background()
	run := h.Start("hello", 1, "aaa", nil)
	for range maxLogs + 10 {
		run.Event(preview.Event{Step: preview.StepBuild, State: preview.EventLog, Message: "compiling"})
	}
	run.Event(preview.Event{Step: preview.StepBuild, State: preview.EventDone})
	if d, ok := h.Last("hello", 1); !ok || d.Result() != "running" || len(d.Events) != maxLogs+1 || d.Redeployable {
		t.Fatalf("running deploy = %+v, %v; want %d events (log lines capped), not redeployable", d, ok, maxLogs+1)
	}
	run.Done(errors.New("deploy:\n  boom"))
	if d, _ := h.Last("hello", 1); d.Result() != "failed" || d.Err != "deploy: boom" {
		t.Fatalf("failed deploy = %q %q", d.Result(), d.Err)
	}
	if err := h.Redeploy(ctx, "hello", 1); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Redeploy without redo = %v, want FailedPrecondition", err)
	}

	redos := 0
	run = h.Start("hello", 1, "bbb", func(context.Context) error { redos++; return nil })
	for range MaxEvents + 5 {
		run.Event(preview.Event{Step: preview.StepDeploy, State: preview.EventStarted})
	}
	run.Done(nil)
	d, _ := h.Last("hello", 1)
	if d.Commit != "bbb" || d.Result() != "done" || len(d.Events) != MaxEvents || !d.Redeployable {
		t.Fatalf("second deploy = %s %s, %d events, redeployable %v", d.Commit, d.Result(), len(d.Events), d.Redeployable)
	}
	if err := h.Redeploy(ctx, "hello", 1); err != nil || redos != 1 {
		t.Fatalf("Redeploy = %v, %d redos", err, redos)
	}
	h.Forget("hello", 1)
	if _, ok := h.Last("hello", 1); ok {
		t.Fatal("a forgotten deploy is still there")
	}
	for pr := 1; pr <= MaxDeploys+3; pr++ {
		h.Start("many", pr, "c", nil)
	}
	if len(h.last) != MaxDeploys {
		t.Fatalf("%d deploys kept, want at most %d", len(h.last), MaxDeploys)
	}
}

package main

import (
	"context"
	"errors"
	"testing"

	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/preview"
)

// fakeRunner is a githubloop.Runner whose Up emits two events and returns
// pv, err.
type fakeRunner struct {
	githubloop.Runner
	pv  preview.Preview
	err error
}

func (f fakeRunner) Up(ctx context.Context, job githubloop.Job, onEvent func(preview.Event)) (preview.Preview, error) {
	onEvent(preview.Event{Step: preview.StepBuild, State: preview.EventStarted})
	onEvent(preview.Event{Step: preview.StepBuild, State: preview.EventDone})
	return f.pv, f.err
}

type tracked struct {
	app    string
	pr     int
	events []preview.Event
	result error
	done   bool
	redo   func(context.Context) error
}

type fakeTracker struct {
	observed int
	ups      []*tracked
}

func (f *fakeTracker) ObserveEvent(preview.Event) { f.observed++ }
func (f *fakeTracker) TrackUp(app string, pr int, commit string, redo func(context.Context) error) (func(preview.Event), func(error)) {
	t := &tracked{app: app, pr: pr, redo: redo}
	f.ups = append(f.ups, t)
	return func(e preview.Event) { t.events = append(t.events, e) }, func(err error) { t.result, t.done = err, true }
}

// The GitHub loop's Ups reach the daemon: every event its step metrics,
// the Up (events, result, a redo that queues the job again) its
// dashboard, live when the app is pinned, at the end when a successful Up
// names it; a failed Up of an unpinned app is only in the metrics.
func TestObservedRunnerTracksUps(t *testing.T) {
	job := githubloop.Job{Kind: githubloop.JobUp, PR: githubloop.PullRequest{Number: 4, HeadSHA: "abc"}}
	var redone []githubloop.Job
	redo := func(j githubloop.Job) error { redone = append(redone, j); return nil }
	for _, c := range []struct {
		name, pinned string
		pv           preview.Preview
		err          error
		tracked      bool
	}{
		{"pinned, failed", "hello", preview.Preview{}, errors.New("deploy: boom"), true},
		{"unpinned, ok", "", preview.Preview{App: "hello", PR: 4}, nil, true},
		{"unpinned, failed", "", preview.Preview{}, errors.New("config: no glimpse.yaml"), false},
	} {
		tr := &fakeTracker{}
		r := observedRunner{Runner: fakeRunner{pv: c.pv, err: c.err}, track: tr, app: c.pinned, redo: redo}
		var forwarded int
		_, err := r.Up(context.Background(), job, func(preview.Event) { forwarded++ })
		if err != c.err || forwarded != 2 || tr.observed != 2 {
			t.Fatalf("%s: err %v, %d events forwarded, %d observed; want %v, 2, 2", c.name, err, forwarded, tr.observed, c.err)
		}
		if !c.tracked {
			if len(tr.ups) != 0 {
				t.Fatalf("%s: tracked %+v", c.name, tr.ups)
			}
			continue
		}
		if len(tr.ups) != 1 || tr.ups[0].app != "hello" || tr.ups[0].pr != 4 || len(tr.ups[0].events) != 2 || !tr.ups[0].done || tr.ups[0].result != c.err {
			t.Fatalf("%s: tracked %+v", c.name, tr.ups)
		}
		redone = nil
		if err := tr.ups[0].redo(context.Background()); err != nil || len(redone) != 1 || redone[0].PR.HeadSHA != "abc" {
			t.Fatalf("%s: redo queued %+v, %v", c.name, redone, err)
		}
	}
}

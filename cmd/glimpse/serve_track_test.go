package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
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

// glimpse status shows the events of the last Up the local daemon ran
// (a GitHub loop's), read from the daemon's API; with routes elsewhere,
// none.
func TestStatusShowsTheDaemonsDeploy(t *testing.T) {
	st, pl, home := inProcessDaemon(t)
	dir := staticApp(t, "tracked", "")
	upStatic(t, pl, dir, 4)
	onEvent, done := st.TrackUp("tracked", 4, "abcdef1", nil)
	onEvent(preview.Event{Step: preview.StepAssets, State: preview.EventDone, Message: "1 file, 1 new"})
	done(nil)

	d := daemonDeploy(context.Background(), home, config.Providers{}, "tracked", 4)
	if d == nil || d.Result != "done" || len(d.Events) != 1 || d.Events[0].Message != "1 file, 1 new" {
		t.Fatalf("the daemon's deploy: %+v", d)
	}
	if daemonDeploy(context.Background(), home, config.Providers{}, "tracked", 5) != nil {
		t.Fatal("a deploy for a pull request the daemon never deployed")
	}
	if daemonDeploy(context.Background(), home, config.Providers{Router: "k8s-ingress://glimpse"}, "tracked", 4) != nil {
		t.Fatal("a daemon deploy with routes elsewhere")
	}
	ps, err := readStatus(context.Background(), pl, "tracked", 4)
	if err != nil {
		t.Fatal(err)
	}
	ps.DaemonDeploy = d
	var out strings.Builder
	if err := printStatus(&out, ps); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"last deploy", "live (commit abcdef1)", "recent events", "done of abcdef1 by the daemon", "assets", "1 file, 1 new"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

package githubloop

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// fakeRunner records calls; an Up takes upTime and honours cancellation.
type fakeRunner struct {
	mu     sync.Mutex
	calls  []string
	upTime time.Duration
	fail   string
	known  map[int]Held
}

func (f *fakeRunner) Up(ctx context.Context, job Job, onEvent func(preview.Event)) (preview.Preview, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("up %d %s g%d", job.PR.Number, job.PR.HeadSHA[:1], job.Generation))
	fail := f.fail
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return preview.Preview{}, ctx.Err()
	case <-time.After(f.upTime):
	}
	if fail != "" {
		onEvent(preview.Event{Step: preview.StepBuild, State: preview.EventFailed, Message: fail})
		return preview.Preview{}, fmt.Errorf("build: %s", fail)
	}
	return preview.Preview{URL: fmt.Sprintf("http://pr-%d.app.localhost/", job.PR.Number)}, nil
}

func (f *fakeRunner) Down(ctx context.Context, pr int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("down %d", pr))
	return nil
}

func (f *fakeRunner) Known(ctx context.Context) (map[int]Held, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.known), nil
}

func (f *fakeRunner) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

type fakeReporter struct {
	mu      sync.Mutex
	reports []Report
	open    []PullRequest
}

func (f *fakeReporter) Report(ctx context.Context, r Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, r)
	return nil
}

func (f *fakeReporter) OpenPulls(ctx context.Context) ([]PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.open), nil
}

// Pull: open when listed, else unknown.
func (f *fakeReporter) Pull(ctx context.Context, n int) (PullRequest, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.open {
		if p.Number == n {
			return p, true, nil
		}
	}
	return PullRequest{}, false, nil
}

func (f *fakeReporter) states() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reports {
		out = append(out, fmt.Sprintf("%d %s", r.PR, r.State))
	}
	return out
}

func sha(c byte) string { return strings.Repeat(string(c), 40) }

func pr(n int, c byte) PullRequest {
	return PullRequest{Number: n, HeadSHA: sha(c), HeadRepo: "acme/app", BaseRepo: "acme/app", CloneURL: "file:///x"}
}

func newTestQueue(t *testing.T, ctx context.Context, r Runner, rep Reporter) *Queue {
	c, err := OpenCounter(filepath.Join(t.TempDir(), "generation"), 0)
	if err != nil {
		t.Fatal(err)
	}
	q := &Queue{Runner: r, Reporter: rep, Counter: c, Settle: time.Second}
	if rep == nil {
		q.Reporter = nil
	}
	q.Start(ctx)
	return q
}

func TestBurstBuildsOnlyTheNewest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{upTime: 10 * time.Second}
		rep := &fakeReporter{}
		q := newTestQueue(t, ctx, r, rep)
		for i, c := range []byte("abcde") {
			action := "synchronize"
			if i == 0 {
				action = "opened"
			}
			if err := q.Deliver(ctx, Delivery{ID: fmt.Sprint(i), Action: action, PR: pr(1, c)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // a burst: faster than Settle
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"up 1 e g5"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		if got, want := rep.states(), []string{"1 in_progress", "1 success"}; !slices.Equal(got, want) {
			t.Errorf("reports %v, want %v", got, want)
		}
		// A push while building cancels the running build for the newer.
		q.Deliver(ctx, Delivery{Action: "synchronize", PR: pr(1, 'f')})
		time.Sleep(2 * time.Second) // f is building
		q.Deliver(ctx, Delivery{Action: "synchronize", PR: pr(1, 'g')})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"up 1 e g5", "up 1 f g6", "up 1 g g7"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		rep.mu.Lock()
		sup := rep.reports[3]
		rep.mu.Unlock()
		if sup.State != StateInactive || !sup.Superseded {
			t.Errorf("superseded build reported %+v", sup)
		}
		cancel()
		q.Wait()
	})
}

func TestCloseCancelsPendingAndDowns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{upTime: 10 * time.Second}
		rep := &fakeReporter{}
		q := newTestQueue(t, ctx, r, rep)
		q.Deliver(ctx, Delivery{Action: "opened", PR: pr(2, 'a')})
		q.Deliver(ctx, Delivery{Action: "synchronize", PR: pr(2, 'b')})
		q.Deliver(ctx, Delivery{Action: "closed", PR: pr(2, 'b')})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"down 2"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		// A close during a build cancels the build, then downs.
		q.Deliver(ctx, Delivery{Action: "reopened", PR: pr(2, 'c')})
		time.Sleep(3 * time.Second)
		q.Deliver(ctx, Delivery{Action: "closed", PR: pr(2, 'c')})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"down 2", "up 2 c g4", "down 2"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		if got, want := rep.states(), []string{"2 inactive", "2 in_progress", "2 inactive", "2 inactive"}; !slices.Equal(got, want) {
			t.Errorf("reports %v, want %v", got, want)
		}
		if !q.Idle() {
			t.Error("queue not idle")
		}
		cancel()
		q.Wait()
	})
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	fork := pr(3, 'a')
	fork.HeadRepo = "mallory/app"
	draft := pr(4, 'a')
	draft.Draft = true
	labelled := pr(5, 'a')
	labelled.Labels = []string{"Preview"}
	for _, tc := range []struct {
		p    Policy
		pr   PullRequest
		skip bool
	}{
		{Policy{}, pr(1, 'a'), false},
		{Policy{}, fork, true},
		{Policy{AllowForks: true}, fork, false},
		{Policy{}, draft, true},
		{Policy{BuildDrafts: true}, draft, false},
		{Policy{RequireLabel: true}, pr(1, 'a'), true},
		{Policy{RequireLabel: true}, labelled, false},
		{Policy{RequireLabel: true, Label: "deploy"}, labelled, true},
	} {
		if got := tc.p.Skip(tc.pr) != ""; got != tc.skip {
			t.Errorf("%+v skips #%d %v = %v", tc.p, tc.pr.Number, tc.pr.Labels, got)
		}
	}
}

func TestForkNotBuiltAndLabels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{}
		rep := &fakeReporter{}
		q := newTestQueue(t, ctx, r, rep)
		fork := pr(3, 'a')
		fork.HeadRepo = "mallory/app"
		q.Deliver(ctx, Delivery{Action: "opened", PR: fork})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.got(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "up") }) {
			t.Errorf("fork built: %v", got)
		}
		rep.mu.Lock()
		last := rep.reports[len(rep.reports)-1]
		rep.mu.Unlock()
		if last.State != StateSkipped || !strings.Contains(last.Message, "fork") {
			t.Errorf("fork reported %+v", last)
		}

		// requireLabel: labelling builds, unlabelling downs, other labels
		// do nothing.
		q.Policy = Policy{RequireLabel: true}
		p := pr(4, 'b')
		q.Deliver(ctx, Delivery{Action: "opened", PR: p})
		p.Labels = []string{"bug"}
		q.Deliver(ctx, Delivery{Action: "labeled", Label: "bug", PR: p})
		time.Sleep(time.Minute)
		p.Labels = []string{"bug", "preview"}
		q.Deliver(ctx, Delivery{Action: "labeled", Label: "preview", PR: p})
		time.Sleep(time.Minute)
		p.Labels = []string{"bug"}
		q.Deliver(ctx, Delivery{Action: "unlabeled", Label: "preview", PR: p})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"down 3", "down 4", "up 4 b g3", "down 4"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		cancel()
		q.Wait()
	})
}

func TestFailureReportsTheStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{fail: "go build: undefined: x"}
		rep := &fakeReporter{}
		q := newTestQueue(t, ctx, r, rep)
		q.Deliver(ctx, Delivery{Action: "opened", PR: pr(6, 'a')})
		time.Sleep(time.Minute)
		synctest.Wait()
		rep.mu.Lock()
		last := rep.reports[len(rep.reports)-1]
		rep.mu.Unlock()
		if last.State != StateFailure || last.Message != "build: go build: undefined: x" {
			t.Errorf("reported %+v", last)
		}
		cancel()
		q.Wait()
	})
}

// A head whose build failed is not rebuilt by every reconcile; a push of
// the same head (a redelivery) or a new one is.
func TestReconcileDoesNotRetryFailedHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{fail: "go build: undefined: x", known: map[int]Held{6: {Commit: sha('0')}}}
		rep := &fakeReporter{open: []PullRequest{pr(6, 'a')}}
		q := newTestQueue(t, ctx, r, rep)
		for range 3 {
			if err := q.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
		}
		q.Deliver(ctx, Delivery{Action: "synchronize", PR: pr(6, 'a')})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"up 6 a g1", "up 6 a g2"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		cancel()
		q.Wait()
	})
}

// The jobs a Reconcile queues end with its context (a leadership term):
// one still settling is dropped, one running is cancelled; a delivery's
// job is not bound to it.
func TestReconcileJobsEndWithTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{upTime: time.Hour, known: map[int]Held{}}
		rep := &fakeReporter{open: []PullRequest{pr(20, 'a'), pr(21, 'b')}}
		q := newTestQueue(t, ctx, r, rep)

		term, endTerm := context.WithCancel(ctx)
		if err := q.Reconcile(term); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // past Settle: both Ups run
		synctest.Wait()
		if got := len(r.got()); got != 2 {
			t.Fatalf("runs %v, want two Ups running", r.got())
		}
		endTerm()
		synctest.Wait()
		if !q.Idle() {
			t.Fatal("the reconcile's Ups still run after its term ended")
		}
		rep.mu.Lock()
		for _, r := range rep.reports {
			if r.State != StateInProgress {
				t.Errorf("reported %+v: a term's end is neither a failure nor a newer push (the next leader reports)", r)
			}
		}
		rep.mu.Unlock()

		term2, endTerm2 := context.WithCancel(ctx)
		rep.mu.Lock()
		rep.open = []PullRequest{pr(22, 'c')}
		rep.mu.Unlock()
		if err := q.Reconcile(term2); err != nil {
			t.Fatal(err)
		}
		endTerm2() // before it settled
		q.Deliver(ctx, Delivery{Action: "synchronize", PR: pr(23, 'd')})
		time.Sleep(time.Minute)
		synctest.Wait()
		got := r.got()
		if slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "up 22 ") }) {
			t.Errorf("runs %v: the Up queued by an ended term ran", got)
		}
		if !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "up 23 ") }) || q.Idle() {
			t.Errorf("runs %v: the delivery's Up is not running", got)
		}
		cancel()
		q.Wait()
	})
}

func TestRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		fork := pr(13, 'a')
		fork.HeadRepo = "mallory/app"
		r := &fakeRunner{known: map[int]Held{10: {Commit: sha('a')}, 11: {Commit: sha('a')}, 12: {Commit: sha('a')}, 13: {}}}
		rep := &fakeReporter{open: []PullRequest{pr(10, 'a'), pr(11, 'b'), pr(14, 'c'), fork}}
		q := newTestQueue(t, ctx, r, rep)
		if err := q.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		got := r.got()
		slices.Sort(got)
		// 10 is current; 11 is stale; 12 was closed while down; 13 is a
		// fork that somehow has a checkout; 14 was opened while down.
		want := []string{"down 12", "down 13", "up 11 b", "up 14 c"}
		for i := range got {
			if j := strings.LastIndex(got[i], " g"); j > 0 {
				got[i] = got[i][:j]
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("recovered %v, want %v", got, want)
		}
		cancel()
		q.Wait()
	})
}

func TestCounterPersists(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gh", "generation")
	c, _ := OpenCounter(path, 0)
	c.Next()
	c.Next()
	c2, err := OpenCounter(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c2.Next(); n != 3 {
		t.Errorf("after restart Next = %d, want 3", n)
	}
	c3, _ := OpenCounter(path, 40)
	if n, _ := c3.Next(); n != 41 {
		t.Errorf("with floor 40 Next = %d, want 41", n)
	}
}

// A redeploy (the dashboard's) while a newer push is pending or building
// changes nothing: the newest commit wins. Once the PR is idle it builds
// the head GitHub reports; a PR that is no longer open is not built (a
// Down stays final); without the GitHub API it is refused.
func TestRedeployDefersToNewerWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &fakeRunner{upTime: 10 * time.Second}
		rep := &fakeReporter{}
		q := newTestQueue(t, ctx, r, rep)
		q.Deliver(ctx, Delivery{ID: "1", Action: "opened", PR: pr(1, 'a')})
		time.Sleep(time.Minute)
		synctest.Wait()
		q.Deliver(ctx, Delivery{ID: "2", Action: "synchronize", PR: pr(1, 'b')})
		if queued, err := q.Redeploy(1, "redeployed"); err != nil || queued {
			t.Fatalf("redeploy with b pending = %v, %v; want not queued", queued, err)
		}
		time.Sleep(2 * time.Second) // b is building
		if queued, err := q.Redeploy(1, "redeployed"); err != nil || queued {
			t.Fatalf("redeploy with b building = %v, %v; want not queued", queued, err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		rep.mu.Lock()
		rep.open = []PullRequest{pr(1, 'c')} // GitHub's head now
		rep.mu.Unlock()
		if queued, err := q.Redeploy(1, "redeployed"); err != nil || !queued {
			t.Fatalf("redeploy of an idle PR = %v, %v; want queued", queued, err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		rep.mu.Lock()
		rep.open = nil // closed
		rep.mu.Unlock()
		if _, err := q.Redeploy(1, "redeployed"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.got(), []string{"up 1 a g1", "up 1 b g2", "up 1 c g3"}; !slices.Equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
		cancel()
		q.Wait()

		noAPI := newTestQueue(t, t.Context(), r, nil)
		if _, err := noAPI.Redeploy(1, "redeployed"); preview.CodeOf(err) != preview.FailedPrecondition {
			t.Errorf("redeploy without the GitHub API: %v, want FailedPrecondition", err)
		}
	})
}

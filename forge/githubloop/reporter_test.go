package githubloop

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
)

func TestReporterOneCommentAndDeploymentStatuses(t *testing.T) {
	t.Parallel()
	gh, srv := newFakeGitHub(t)
	// Someone else's comments first, more than a page of them.
	for i := range 130 {
		gh.AddComment(9, fmt.Sprintf("lgtm %d", i))
	}
	rep, err := NewGitHubReporter("acme/app", "tok", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i, c := range []byte("abc") {
		commit := sha(c)
		if err := rep.Report(ctx, Report{PR: 9, Commit: commit, State: StateInProgress}); err != nil {
			t.Fatal(err)
		}
		st, url, msg := StateSuccess, "http://pr-9.app.localhost:8080/", ""
		if i == 1 {
			st, url, msg = StateFailure, "", "build: "+strings.Repeat("compile error ", 30)
		}
		if err := rep.Report(ctx, Report{PR: 9, Commit: commit, State: st, URL: url, Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	ours := func() []githubfake.Comment {
		var out []githubfake.Comment
		for _, c := range gh.Comments(9) {
			if strings.Contains(c.Body, CommentMarker) {
				out = append(out, c)
			}
		}
		return out
	}
	if got := ours(); len(got) != 1 || !strings.Contains(got[0].Body, "Ready: http://pr-9.app.localhost:8080/") || !strings.Contains(got[0].Body, sha('c')[:7]) {
		t.Fatalf("preview comments after 3 pushes: %+v", got)
	}
	if n := len(gh.Comments(9)); n != 131 {
		t.Errorf("PR has %d comments, want 131", n)
	}

	// A restarted daemon (a new reporter) finds the comment past the first
	// page by following the Link header, edits it, and marks the PR's
	// newest deployment inactive.
	rep2, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
	if err := rep2.Report(ctx, Report{PR: 9, State: StateInactive, Message: "pull request closed: preview removed"}); err != nil {
		t.Fatal(err)
	}
	if got := ours(); len(got) != 1 || !strings.Contains(got[0].Body, "pull request closed") {
		t.Fatalf("preview comments after the close: %+v", got)
	}
	want := [][]string{{"in_progress", "success", "inactive"}, {"in_progress", "failure", "inactive"}, {"in_progress", "success", "inactive"}}
	if got := gh.States(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("deployment statuses %v, want %v", got, want)
	}
	ds := gh.Deployments()
	d := ds[2]
	okEnv := d.Environment == "preview/pr-9" && d.Ref == sha('c') && d.Transient && d.Statuses[1].EnvironmentURL == "http://pr-9.app.localhost:8080/"
	failDesc := ds[1].Statuses[1].Description
	if !okEnv {
		t.Errorf("deployment %+v", d)
	}
	if !strings.HasPrefix(failDesc, "build: compile error") || len(failDesc) > 140 {
		t.Errorf("failure description %q", failDesc)
	}

	// A skip only comments, without a deployment.
	if err := rep2.Report(ctx, Report{PR: 10, Commit: sha('d'), State: StateSkipped, Message: "pull requests from forks are not built"}); err != nil {
		t.Fatal(err)
	}
	if cs := gh.Comments(10); len(cs) != 1 || !strings.Contains(cs[0].Body, "forks are not built") || len(gh.States()) != 3 {
		t.Errorf("skip: comments %+v, %d deployments", cs, len(gh.States()))
	}

	// A deleted comment is made again; a bad token is an error.
	gh.DeleteComments(10)
	if err := rep2.Report(ctx, Report{PR: 10, State: StateSkipped, Message: "again"}); err != nil || len(gh.Comments(10)) != 1 {
		t.Errorf("recreate after delete: %v, %d comments", err, len(gh.Comments(10)))
	}
	bad, _ := NewGitHubReporter("acme/app", "wrong", srv.URL)
	if err := bad.Report(ctx, Report{PR: 11, Commit: sha('e'), State: StateInProgress}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad token: %v", err)
	}
}

func TestOpenPullsPaginates(t *testing.T) {
	t.Parallel()
	gh, srv := newFakeGitHub(t)
	for i := range 150 {
		repo := map[string]any{"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"}
		head := map[string]any{"sha": sha('a'), "ref": "f", "repo": repo}
		if i == 7 {
			head["repo"] = map[string]any{"full_name": "mallory/app"}
		}
		gh.SetPull(map[string]any{"number": i + 1, "draft": i == 3, "head": head,
			"base": map[string]any{"ref": "main", "repo": repo}, "labels": []any{map[string]any{"name": "preview"}}})
	}
	rep, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
	prs, err := rep.OpenPulls(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 150 || !prs[3].Draft || !prs[7].Fork() || prs[0].Fork() || !prs[0].HasLabel("preview") || prs[149].Number != 150 || prs[0].CloneURL == "" {
		t.Errorf("%d PRs: %+v %+v", len(prs), prs[3], prs[7])
	}
}

func TestReporterWaitsForRateLimitReset(t *testing.T) {
	t.Parallel()
	gh, srv := newFakeGitHub(t)
	gh.RateLimit(1, time.Now().Add(time.Second))
	rep, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
	start := time.Now()
	if err := rep.Report(t.Context(), Report{PR: 1, State: StateSkipped, Message: "x"}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 500*time.Millisecond || len(gh.Comments(1)) != 1 {
		t.Errorf("did not wait for the reset (%s) or did not comment", time.Since(start))
	}
	// A reset further away than MaxWait fails the call.
	gh.RateLimit(1, time.Now().Add(time.Hour))
	rep2, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
	rep2.MaxWait = time.Second
	if err := rep2.Report(t.Context(), Report{PR: 2, State: StateSkipped, Message: "x"}); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("long reset: %v", err)
	}
}

// A build a killed daemon left in progress is reported failed by the
// next daemon's first report of the PR; finished deployments are left as
// they are, and a second restart changes nothing more.
func TestReporterFailsInterruptedDeployments(t *testing.T) {
	t.Parallel()
	gh, srv := newFakeGitHub(t)
	ctx := t.Context()
	rep, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
	for _, r := range []Report{
		{PR: 3, Commit: sha('a'), State: StateInProgress}, {PR: 3, Commit: sha('a'), State: StateSuccess, URL: "http://x/"},
		{PR: 3, Commit: sha('b'), State: StateInProgress}, // killed here
		{PR: 4, Commit: sha('c'), State: StateInProgress}, // another PR: left alone
	} {
		if err := rep.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		rep2, _ := NewGitHubReporter("acme/app", "tok", srv.URL)
		if err := rep2.Report(ctx, Report{PR: 3, Commit: sha('b'), State: StateInProgress}); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"in_progress", "success"}, {"in_progress", "error"}, {"in_progress"}, {"in_progress", "error"}, {"in_progress"}}
	if got := gh.States(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("deployment statuses %v, want %v", got, want)
	}
	if d := gh.Deployments()[1]; d.Statuses[1].Description != InterruptedMessage {
		t.Errorf("interrupted description %q", d.Statuses[1].Description)
	}
}

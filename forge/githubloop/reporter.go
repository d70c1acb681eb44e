package githubloop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v89/github"
)

// CommentMarker is the hidden line that marks the one preview comment of a
// PR; the comment is found by it and edited in place.
const CommentMarker = "<!-- glimpse:preview -->"

// Environment variables of the GitHub API client.
const (
	EnvToken  = "GLIMPSE_GITHUB_TOKEN"
	EnvAPIURL = "GLIMPSE_GITHUB_API_URL"
)

// GitHubReporter reports to GitHub's REST API through go-github: one
// comment per PR (found by CommentMarker among the PR's comments, paging
// through them by their Link headers, and edited in place afterwards) and
// one Deployment per built commit in the environment "preview/pr-<N>"
// (transient, so GitHub shows it as a preview), with statuses in_progress,
// success (environment_url), failure (the failing step) and inactive.
// Rate limits are honoured: a call answered with GitHub's primary rate
// limit (403/429, X-RateLimit-Remaining: 0) waits for X-RateLimit-Reset,
// a secondary one for Retry-After (default 1m), then retries, up to three
// times and at most MaxWait per wait.
// It is safe for concurrent use.
type GitHubReporter struct {
	Client      *github.Client
	Owner, Repo string

	// MaxWait caps one wait for a rate limit to reset; default 1m. A
	// longer wait fails the call instead.
	MaxWait time.Duration

	mu       sync.Mutex
	comments map[int]int64 // PR -> comment ID
	deploys  map[int]int64 // PR -> newest deployment ID
}

// NewGitHubReporter returns a reporter for repo ("owner/name") with token;
// apiURL "" is api.github.com (else GitHub Enterprise's or a test's base
// URL).
func NewGitHubReporter(repo, token, apiURL string) (*GitHubReporter, error) {
	var opts []github.ClientOptionsFunc
	if token != "" {
		opts = append(opts, github.WithAuthToken(token))
	}
	return newReporter(repo, apiURL, opts...)
}

// NewAppReporter returns a reporter for repo that authenticates as the
// GitHub App installation of app (AppAuth.Transport); apiURL as for
// NewGitHubReporter. app.Owner, app.Repo and app.APIURL are set from repo
// and apiURL when empty.
func NewAppReporter(repo string, app *AppAuth, apiURL string) (*GitHubReporter, error) {
	g, err := newReporter(repo, apiURL, github.WithTransport(app.Transport(nil)))
	if err != nil {
		return nil, err
	}
	if app.Owner == "" && app.Repo == "" {
		app.Owner, app.Repo = g.Owner, g.Repo
	}
	if app.APIURL == "" {
		app.APIURL = apiURL
	}
	return g, nil
}

func newReporter(repo, apiURL string, opts ...github.ClientOptionsFunc) (*GitHubReporter, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("github repository %q: want owner/name", repo)
	}
	if apiURL != "" {
		u := strings.TrimSuffix(apiURL, "/") + "/"
		opts = append(opts, github.WithURLs(&u, &u))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &GitHubReporter{Client: c, Owner: owner, Repo: name}, nil
}

func envName(pr int) string { return fmt.Sprintf("preview/pr-%d", pr) }

// Report updates the PR's deployment (a new one for in_progress, skipped
// reports make none) and then its comment. Both are attempted; the
// errors are joined. A success or failure for a PR this reporter made no
// deployment for finishes the newest unfinished deployment of that
// commit (one another process started: the CI path runs one `glimpse
// notify` per state), else makes one (after failing those a stopped
// daemon left unfinished).
func (g *GitHubReporter) Report(ctx context.Context, r Report) error {
	var errs []error
	if r.State != StateSkipped {
		errs = append(errs, g.deployment(ctx, r))
	}
	if !r.Superseded {
		errs = append(errs, g.comment(ctx, r.PR, CommentBody(r)))
	}
	return errors.Join(errs...)
}

func (g *GitHubReporter) deployment(ctx context.Context, r Report) error {
	g.mu.Lock()
	id, ok := g.deploys[r.PR]
	g.mu.Unlock()
	if !ok && r.State != StateInProgress && r.State != StateInactive && r.Commit != "" {
		// Another process may have started this commit's deployment (a
		// CI job's earlier `glimpse notify in_progress`): finish that one.
		found, err := g.unfinishedDeployment(ctx, r.PR, r.Commit)
		if err != nil {
			return err
		}
		if found != 0 {
			id, ok = found, true
			g.rememberDeployment(r.PR, id)
		}
	}
	if r.State == StateInProgress || (!ok && r.State != StateInactive) {
		if r.Commit == "" {
			return nil
		}
		if !ok {
			// First report of this PR since the daemon started: a build
			// a killed daemon left in progress is reported failed.
			if err := g.failInterrupted(ctx, r.PR); err != nil {
				return err
			}
		}
		d, _, err := call(ctx, g, func() (*github.Deployment, *github.Response, error) {
			return g.Client.Repositories.CreateDeployment(ctx, g.Owner, g.Repo, github.DeploymentRequest{
				Ref: r.Commit, Environment: github.Ptr(envName(r.PR)), AutoMerge: github.Ptr(false),
				RequiredContexts: []string{}, TransientEnvironment: github.Ptr(true),
				Description: github.Ptr("glimpse preview"),
			})
		})
		if err != nil {
			return fmt.Errorf("creating the deployment: %w", err)
		}
		id = d.GetID()
		g.rememberDeployment(r.PR, id)
	}
	st := github.DeploymentStatusRequest{State: string(r.State), Environment: github.Ptr(envName(r.PR))}
	if r.Message != "" {
		st.Description = github.Ptr(truncate(r.Message, 140)) // GitHub's limit
	}
	if r.URL != "" {
		st.EnvironmentURL = github.Ptr(r.URL)
	}
	ids := []int64{id}
	if r.State == StateInactive && !r.Superseded {
		// The preview is gone: every deployment of the PR's environment
		// goes inactive (also after a restart, when id is not known).
		ds, _, err := call(ctx, g, func() ([]*github.Deployment, *github.Response, error) {
			return g.Client.Repositories.ListDeployments(ctx, g.Owner, g.Repo, &github.DeploymentsListOptions{
				Environment: envName(r.PR), ListOptions: github.ListOptions{PerPage: 100}})
		})
		if err != nil {
			return fmt.Errorf("listing deployments: %w", err)
		}
		ids = ids[:0]
		for _, d := range ds {
			ids = append(ids, d.GetID())
		}
	}
	var errs []error
	for _, id := range ids {
		if id == 0 {
			continue
		}
		if _, _, err := call(ctx, g, func() (*github.DeploymentStatus, *github.Response, error) {
			return g.Client.Repositories.CreateDeploymentStatus(ctx, g.Owner, g.Repo, id, st)
		}); err != nil {
			errs = append(errs, fmt.Errorf("deployment status %s: %w", r.State, err))
		}
	}
	return errors.Join(errs...)
}

// InterruptedMessage is the description of a deployment whose build a
// stopped daemon left unfinished.
const InterruptedMessage = "interrupted: the daemon stopped during this build"

// failInterrupted sets every deployment of the PR's environment whose
// newest status is unfinished (queued, pending, in_progress) to error with
// InterruptedMessage. It is idempotent.
func (g *GitHubReporter) failInterrupted(ctx context.Context, pr int) error {
	ds, _, err := call(ctx, g, func() ([]*github.Deployment, *github.Response, error) {
		return g.Client.Repositories.ListDeployments(ctx, g.Owner, g.Repo, &github.DeploymentsListOptions{
			Environment: envName(pr), ListOptions: github.ListOptions{PerPage: 100}})
	})
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	var errs []error
	for _, d := range ds {
		// Statuses come newest first; the first one is the state.
		ss, _, err := call(ctx, g, func() ([]*github.DeploymentStatus, *github.Response, error) {
			return g.Client.Repositories.ListDeploymentStatuses(ctx, g.Owner, g.Repo, d.GetID(), &github.ListOptions{PerPage: 1})
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("listing deployment statuses: %w", err))
			continue
		}
		if len(ss) == 0 || !unfinished(ss[0].GetState()) {
			continue
		}
		if _, _, err := call(ctx, g, func() (*github.DeploymentStatus, *github.Response, error) {
			return g.Client.Repositories.CreateDeploymentStatus(ctx, g.Owner, g.Repo, d.GetID(), github.DeploymentStatusRequest{
				State: "error", Environment: github.Ptr(envName(pr)), Description: github.Ptr(InterruptedMessage)})
		}); err != nil {
			errs = append(errs, fmt.Errorf("deployment status error: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (g *GitHubReporter) rememberDeployment(pr int, id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deploys == nil {
		g.deploys = map[int]int64{}
	}
	g.deploys[pr] = id
}

// unfinishedDeployment returns the newest deployment of the PR's
// environment at commit sha whose newest status is unfinished (queued,
// pending, in_progress), or 0.
func (g *GitHubReporter) unfinishedDeployment(ctx context.Context, pr int, sha string) (int64, error) {
	ds, _, err := call(ctx, g, func() ([]*github.Deployment, *github.Response, error) {
		return g.Client.Repositories.ListDeployments(ctx, g.Owner, g.Repo, &github.DeploymentsListOptions{
			Environment: envName(pr), SHA: sha, ListOptions: github.ListOptions{PerPage: 1}})
	})
	if err != nil || len(ds) == 0 {
		if err != nil {
			err = fmt.Errorf("listing deployments: %w", err)
		}
		return 0, err
	}
	ss, _, err := call(ctx, g, func() ([]*github.DeploymentStatus, *github.Response, error) {
		return g.Client.Repositories.ListDeploymentStatuses(ctx, g.Owner, g.Repo, ds[0].GetID(), &github.ListOptions{PerPage: 1})
	})
	if err != nil {
		return 0, fmt.Errorf("listing deployment statuses: %w", err)
	}
	if len(ss) == 0 || !unfinished(ss[0].GetState()) {
		return 0, nil
	}
	return ds[0].GetID(), nil
}

func unfinished(state string) bool {
	return state == "queued" || state == "pending" || state == "in_progress"
}

// comment edits the PR's preview comment to body, or creates it.
func (g *GitHubReporter) comment(ctx context.Context, pr int, body string) error {
	g.mu.Lock()
	id := g.comments[pr]
	g.mu.Unlock()
	if id == 0 {
		var err error
		if id, err = g.findComment(ctx, pr); err != nil {
			return err
		}
	}
	if id != 0 {
		_, resp, err := call(ctx, g, func() (*github.IssueComment, *github.Response, error) {
			return g.Client.Issues.EditComment(ctx, g.Owner, g.Repo, id, &github.IssueComment{Body: github.Ptr(body)})
		})
		if err == nil {
			g.remember(pr, id)
			return nil
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("editing the preview comment: %w", err)
		}
		// Deleted by someone: make a new one.
	}
	c, _, err := call(ctx, g, func() (*github.IssueComment, *github.Response, error) {
		return g.Client.Issues.CreateComment(ctx, g.Owner, g.Repo, pr, &github.IssueComment{Body: github.Ptr(body)})
	})
	if err != nil {
		return fmt.Errorf("creating the preview comment: %w", err)
	}
	g.remember(pr, c.GetID())
	return nil
}

func (g *GitHubReporter) remember(pr int, id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.comments == nil {
		g.comments = map[int]int64{}
	}
	g.comments[pr] = id
}

func (g *GitHubReporter) findComment(ctx context.Context, pr int) (int64, error) {
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := call(ctx, g, func() ([]*github.IssueComment, *github.Response, error) {
			return g.Client.Issues.ListComments(ctx, g.Owner, g.Repo, pr, opts)
		})
		if err != nil {
			return 0, fmt.Errorf("listing comments: %w", err)
		}
		for _, c := range cs {
			if strings.Contains(c.GetBody(), CommentMarker) {
				return c.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}

// OpenPulls lists the open pull requests, every page.
func (g *GitHubReporter) OpenPulls(ctx context.Context) ([]PullRequest, error) {
	var out []PullRequest
	opts := &github.PullRequestListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
	for {
		ps, resp, err := call(ctx, g, func() ([]*github.PullRequest, *github.Response, error) {
			return g.Client.PullRequests.List(ctx, g.Owner, g.Repo, opts)
		})
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out = append(out, pullRequest(p))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// Pull reads pull request n (GET /pulls/{n}) and whether it is open; a
// 404 is a PR GitHub does not know, returned as not open.
func (g *GitHubReporter) Pull(ctx context.Context, n int) (PullRequest, bool, error) {
	p, resp, err := call(ctx, g, func() (*github.PullRequest, *github.Response, error) {
		return g.Client.PullRequests.Get(ctx, g.Owner, g.Repo, n)
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return PullRequest{}, false, nil
		}
		return PullRequest{}, false, err
	}
	return pullRequest(p), p.GetState() == "open", nil
}

func pullRequest(p *github.PullRequest) PullRequest {
	pr := PullRequest{Number: p.GetNumber(), Draft: p.GetDraft(), HeadSHA: p.GetHead().GetSHA(), HeadRef: p.GetHead().GetRef(),
		HeadRepo: p.GetHead().GetRepo().GetFullName(), BaseRepo: p.GetBase().GetRepo().GetFullName(), CloneURL: p.GetBase().GetRepo().GetCloneURL()}
	for _, l := range p.Labels {
		pr.Labels = append(pr.Labels, l.GetName())
	}
	return pr
}

// CommentBody renders the preview comment for r, CommentMarker first.
func CommentBody(r Report) string {
	var b strings.Builder
	b.WriteString(CommentMarker + "\n")
	b.WriteString("**Glimpse preview**\n\n")
	short := r.Commit
	if len(short) > 7 {
		short = short[:7]
	}
	switch r.State {
	case StateInProgress:
		fmt.Fprintf(&b, "Building commit `%s`…\n", short)
		if r.Message != "" {
			fmt.Fprintf(&b, "\n%s\n", r.Message)
		}
	case StateSuccess:
		fmt.Fprintf(&b, "Ready: %s\n\nCommit: `%s`\n", r.URL, short)
	case StateFailure:
		if short != "" {
			fmt.Fprintf(&b, "Failed at commit `%s`:\n\n", short)
		} else {
			b.WriteString("Failed:\n\n")
		}
		fmt.Fprintf(&b, "```\n%s\n```\n", strings.ReplaceAll(truncate(r.Message, 2000), "```", "'''"))
	case StateInactive:
		fmt.Fprintf(&b, "No preview: %s\n", r.Message)
	case StateSkipped:
		fmt.Fprintf(&b, "Not built: %s\n", r.Message)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// call runs f, waiting out GitHub's rate limits between attempts.
func call[T any](ctx context.Context, g *GitHubReporter, f func() (T, *github.Response, error)) (T, *github.Response, error) {
	limit := g.MaxWait
	if limit <= 0 {
		limit = time.Minute
	}
	for attempt := 0; ; attempt++ {
		v, resp, err := f()
		var wait time.Duration
		var rle *github.RateLimitError
		var arle *github.AbuseRateLimitError
		switch {
		case errors.As(err, &rle):
			wait = time.Until(rle.Rate.Reset.Time) + time.Second // reset has second resolution
		case errors.As(err, &arle):
			wait = arle.GetRetryAfter()
			if wait <= 0 {
				wait = time.Minute
			}
		default:
			return v, resp, err
		}
		if attempt == 3 || wait > limit {
			return v, resp, err
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return v, resp, err
		case <-t.C:
		}
	}
}

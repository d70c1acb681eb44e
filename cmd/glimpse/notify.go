package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/preview"
)

// The CI path of issue #12: a separate `glimpse notify` rather than
// `glimpse up --github-comment`, because a CI job must also report what
// happens outside `up` (a failing install or test step before it, a
// cancelled job), and the close job reports after `glimpse down`; one
// command reports every state, through githubloop.GitHubReporter, so the
// comment and the deployment are the daemon's.

// githubEnv is the GitHub repository, token and API base URL, from the
// environment as GitHub Actions provides it (GITHUB_REPOSITORY,
// GITHUB_TOKEN, GITHUB_API_URL), Glimpse's own variables first.
type githubEnv struct {
	repo, token, apiURL string
}

// githubFromEnv reads githubEnv; repo, when not empty, wins over
// GITHUB_REPOSITORY.
func githubFromEnv(getenv func(string) string, repo string) githubEnv {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	if repo == "" {
		repo = getenv("GITHUB_REPOSITORY")
	}
	return githubEnv{repo: repo, token: first(githubloop.EnvToken, "GITHUB_TOKEN"), apiURL: first(githubloop.EnvAPIURL, "GITHUB_API_URL")}
}

type notifyFlags struct {
	pr, commit, url, step, message, repo string
}

var notifyStates = map[string]githubloop.State{
	"in_progress": githubloop.StateInProgress, "success": githubloop.StateSuccess,
	"failure": githubloop.StateFailure, "inactive": githubloop.StateInactive,
}

func newNotify() *cobra.Command {
	f := &notifyFlags{}
	c := &cobra.Command{
		Use:   "notify in_progress|success|failure|inactive [--url URL] [--step NAME --message TEXT]",
		Short: "Report a preview on its pull request from a CI job (one comment, a deployment)",
		Long: "notify keeps the pull request's one preview comment (created once, edited in place) and\n" +
			"its GitHub Deployment in environment preview/pr-N up to date, as the daemon does:\n" +
			"in_progress makes a deployment of the commit; success (with --url, the preview's URL)\n" +
			"or failure (with --step and --message, the failing step) finishes it; inactive (after\n" +
			"`glimpse down`) marks every deployment of the PR inactive.\n\n" +
			"It reads what GitHub Actions provides: the token from " + githubloop.EnvToken + " or GITHUB_TOKEN\n" +
			"(needs pull-requests: write and deployments: write), the repository from\n" +
			"GITHUB_REPOSITORY (or --github-repo), the API from " + githubloop.EnvAPIURL + " or GITHUB_API_URL,\n" +
			"the PR number and head commit from the event (GITHUB_EVENT_PATH) unless --pr and\n" +
			"--commit are given. See docs/github-actions.md.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runNotify(cmd.Context(), os.Getenv, args[0], f, cmd.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&f.pr, "pr", "", "pull request number (default: the event's)")
	c.Flags().StringVar(&f.commit, "commit", "", "the commit previewed (default: the event's pull request head)")
	c.Flags().StringVar(&f.url, "url", "", "the preview's URL (success; `glimpse up` prints it last on stdout)")
	c.Flags().StringVar(&f.step, "step", "", "the failing step (failure)")
	c.Flags().StringVar(&f.message, "message", "", "what failed (failure), or a note")
	c.Flags().StringVar(&f.repo, "github-repo", "", "the repository (owner/name; default $GITHUB_REPOSITORY)")
	return c
}

// runNotify sends one report. Each state is idempotent on GitHub's side
// as far as GitHub allows: the comment is edited in place, success and
// failure finish the newest unfinished deployment of the commit (a
// repeated success adds a status to the same deployment), inactive
// marks every deployment of the PR; only in_progress always makes a new
// deployment (and fails an unfinished older one as interrupted).
func runNotify(ctx context.Context, getenv func(string) string, stateArg string, f *notifyFlags, stderr io.Writer) error {
	state, ok := notifyStates[stateArg]
	if !ok {
		return preview.Errorf(preview.InvalidArgument, "state %q: want in_progress, success, failure or inactive", stateArg)
	}
	gh := githubFromEnv(getenv, f.repo)
	if gh.token == "" {
		return preview.Errorf(preview.InvalidArgument, "notify needs a GitHub token in GITHUB_TOKEN or %s (in a workflow: env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})", githubloop.EnvToken)
	}
	if gh.repo == "" {
		return preview.Errorf(preview.InvalidArgument, "notify needs the repository: GITHUB_REPOSITORY or --github-repo owner/name")
	}
	ev, err := readEvent(getenv("GITHUB_EVENT_PATH"))
	if err != nil {
		return err
	}
	prStr := cmpOrStr(f.pr, ev.number(), prOfRef(getenv("GITHUB_REF")))
	if prStr == "" {
		return preview.Errorf(preview.InvalidArgument, "--pr is required outside a pull_request event")
	}
	pr, err := parsePR(prStr)
	if err != nil {
		return err
	}
	commit := cmpOrStr(f.commit, ev.PullRequest.Head.SHA, getenv("GITHUB_SHA"))
	if commit != "" {
		if err := preview.ValidateCommit(commit); err != nil {
			return preview.Errorf(preview.InvalidArgument, "--commit: %v", err)
		}
	}
	r := githubloop.Report{PR: pr, Commit: commit, State: state, URL: f.url, Message: f.message}
	switch state {
	case githubloop.StateSuccess:
		if f.url == "" {
			return preview.Errorf(preview.InvalidArgument, "success needs --url, the preview's URL")
		}
	case githubloop.StateFailure:
		if f.step != "" {
			r.Message = f.step + ": " + cmpOrStr(f.message, "failed")
		} else if r.Message == "" {
			r.Message = "failed"
		}
	case githubloop.StateInactive:
		r.Message = cmpOrStr(f.message, "pull request closed: preview removed")
	}
	if state != githubloop.StateInactive && commit == "" {
		return preview.Errorf(preview.InvalidArgument, "--commit is required outside a pull_request event")
	}
	rep, err := githubloop.NewGitHubReporter(gh.repo, gh.token, gh.apiURL)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "%v", err)
	}
	if err := rep.Report(ctx, r); err != nil {
		msg := oneLine(err.Error())
		if strings.Contains(msg, " 403 ") {
			msg += " (the token cannot write this pull request's comments or deployments: give the job permissions pull-requests: write and deployments: write; a fork's pull_request token is read-only, see docs/github-actions.md)"
		}
		return preview.Errorf(preview.Unavailable, "notify %s on pull request #%d: %s", stateArg, pr, msg)
	}
	fmt.Fprintf(stderr, "notified pull request #%d of %s: %s\n", pr, gh.repo, stateArg)
	return nil
}

// event is the part of a GitHub Actions event payload notify reads.
type event struct {
	Number      int `json:"number"`
	PullRequest struct {
		Number int `json:"number"`
		Head   struct {
			SHA string `json:"sha"`
		} `json:"head"`
	} `json:"pull_request"`
}

func (e event) number() string {
	if n := max(e.PullRequest.Number, e.Number); n > 0 {
		return strconv.Itoa(n)
	}
	return ""
}

// readEvent reads the event payload at path; "" is no event.
func readEvent(path string) (event, error) {
	var e event
	if path == "" {
		return e, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return e, preview.Errorf(preview.InvalidArgument, "GITHUB_EVENT_PATH: %v", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, preview.Errorf(preview.InvalidArgument, "GITHUB_EVENT_PATH %s: not a JSON event payload", path)
	}
	return e, nil
}

// prOfRef returns N of refs/pull/N/merge (GITHUB_REF of a pull_request
// event), or "".
func prOfRef(ref string) string {
	rest, ok := strings.CutPrefix(ref, "refs/pull/")
	if n, _, ok2 := strings.Cut(rest, "/"); ok && ok2 {
		return n
	}
	return ""
}

func cmpOrStr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

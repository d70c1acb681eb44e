package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/preview"
)

// githubFlags configure the GitHub webhook loop of `glimpse serve`; without
// --github-repo there is none and serve is unchanged.
type githubFlags struct {
	repo   string
	appDir string
	app    string
	policy githubloop.Policy
	settle time.Duration
}

func (f *githubFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "github-repo", "", "build previews of this repository's pull requests (owner/name) from GitHub webhooks at "+githubloop.WebhookPath+";\n"+
		"needs "+githubloop.EnvWebhookSecret+" (or _FILE); "+githubloop.EnvToken+" for the PR comment, deployments and restarts")
	fs.StringVar(&f.appDir, "github-app-dir", ".", "the app's directory (with glimpse.yaml) inside the repository")
	fs.StringVar(&f.app, "github-app", "", "the app's name: a pull request whose glimpse.yaml names another app is refused (recommended; without it a PR can rename its app)")
	fs.BoolVar(&f.policy.AllowForks, "github-allow-forks", false, "build pull requests from forks too (their code runs with this daemon's credentials in reach)")
	fs.StringVar(&f.policy.Label, "github-label", "preview", "the label that opts a pull request in, with --github-require-label")
	fs.BoolVar(&f.policy.RequireLabel, "github-require-label", false, "build only pull requests that carry --github-label")
	fs.BoolVar(&f.policy.BuildDrafts, "github-drafts", false, "build draft pull requests too")
	fs.DurationVar(&f.settle, "github-settle", 2*time.Second, "wait this long for a newer push before building a pull request's head")
}

// start wires the loop into srv (the webhook path on every host), recovers
// the work of open pull requests in the background, and returns a stop
// function that waits for running jobs. Call it once the daemon's API is
// listening (the pipeline talks to it).
func (f *githubFlags) start(ctx context.Context, home string, srv *http.Server, log *slog.Logger) (func(), error) {
	secret, ok, err := githubloop.SecretFromEnv(os.Getenv)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%v", err)
	}
	if !ok {
		return nil, preview.Errorf(preview.InvalidArgument, "--github-repo needs the webhook secret in %s or %s", githubloop.EnvWebhookSecret, githubloop.EnvWebhookSecretFile)
	}
	owner, name, _ := strings.Cut(f.repo, "/")
	root := filepath.Join(home, "github", owner, name)
	token := os.Getenv(githubloop.EnvToken)
	q := &githubloop.Queue{
		Runner: &githubloop.PipelineRunner{Root: root, AppDir: f.appDir, App: f.app, Token: token,
			Open: func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
				return openPipeline(ctx, home, p)
			}},
		Policy: f.policy, Settle: f.settle, Logger: log.With("github", f.repo),
	}
	if token != "" {
		rep, err := githubloop.NewGitHubReporter(f.repo, token, os.Getenv(githubloop.EnvAPIURL))
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "--github-repo: %v", err)
		}
		q.Reporter = rep
	} else {
		log.Warn("no " + githubloop.EnvToken + ": pull requests get no comment or deployment, and a restart does not recover their work")
	}
	if q.Counter, err = githubloop.OpenCounter(filepath.Join(root, "generation"), 0); err != nil {
		return nil, err
	}
	qctx, cancel := context.WithCancel(ctx)
	q.Start(qctx)
	srv.Handler = githubloop.Mount(srv.Handler, &githubloop.Handler{Secret: secret, Repo: f.repo, Deliver: q, Logger: log})
	go func() {
		if err := q.Recover(qctx); err != nil {
			log.Warn("github: recovering pull requests", "err", err)
		}
	}()
	log.Info("github webhooks", "repo", f.repo, "path", githubloop.WebhookPath)
	return func() { cancel(); q.Wait() }, nil
}

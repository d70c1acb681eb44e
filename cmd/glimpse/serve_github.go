package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/preview"
)

// githubFlags configure the GitHub webhook loop of `glimpse serve`; without
// --github-repo there is none and serve is unchanged.
type githubFlags struct {
	repo       string
	appDir     string
	app        string
	policy     githubloop.Policy
	settle     time.Duration
	staleAfter time.Duration
	reconcile  time.Duration
	githubAppFlags
}

// githubAppFlags are the GitHub App credentials (instead of a token) that
// `serve --github-repo` and `gc` take.
type githubAppFlags struct {
	appID           string
	appKeyFile      string
	appInstallation int64
}

func (f *githubAppFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.appID, "github-app-id", "", "authenticate as this GitHub App (its app ID or client ID) instead of "+githubloop.EnvToken+";\n"+
		"needs --github-app-key-file (or "+githubloop.EnvAppKeyFile+")")
	fs.StringVar(&f.appKeyFile, "github-app-key-file", "", "the GitHub App's private key (PEM, as GitHub lets you download it)")
	fs.Int64Var(&f.appInstallation, "github-app-installation", 0, "the GitHub App's installation ID (default: the installation on --github-repo)")
}

func (f *githubFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "github-repo", "", "build previews of this repository's pull requests (owner/name) from GitHub webhooks at "+githubloop.WebhookPath+";\n"+
		"needs "+githubloop.EnvWebhookSecret+" (or _FILE); "+githubloop.EnvToken+" (or --github-app-id) for the PR comment, deployments and restarts")
	fs.StringVar(&f.appDir, "github-app-dir", ".", "the app's directory (with glimpse.yaml) inside the repository")
	fs.StringVar(&f.app, "github-app", "", "the app's name in glimpse.yaml (not a GitHub App: see --github-app-id): a pull request whose glimpse.yaml names another app is refused,\n"+
		"and previews of this app for pull requests GitHub does not know are removed (recommended; without it a PR can rename its app)")
	fs.BoolVar(&f.policy.AllowForks, "github-allow-forks", false, "build pull requests from forks too (their code runs with this daemon's credentials in reach)")
	fs.StringVar(&f.policy.Label, "github-label", "preview", "the label that opts a pull request in, with --github-require-label")
	fs.BoolVar(&f.policy.RequireLabel, "github-require-label", false, "build only pull requests that carry --github-label")
	fs.BoolVar(&f.policy.BuildDrafts, "github-drafts", false, "build draft pull requests too")
	fs.DurationVar(&f.settle, "github-settle", 2*time.Second, "wait this long for a newer push before building a pull request's head")
	fs.DurationVar(&f.staleAfter, "github-stale-after", 0, "take an open pull request's preview down after this long without a push or a request, static ones included (0: never); a push or a \""+githubloop.CommandUp+"\" comment brings it back")
	f.githubAppFlags.register(fs)
	fs.DurationVar(&f.reconcile, "github-reconcile", 10*time.Minute, "reconcile with GitHub this often: build missed pushes, remove previews of closed or deleted pull requests, stale ones and those past their glimpse.yaml ttl")
}

// start wires the loop into srv (the webhook path on every host: any
// replica takes deliveries) and returns reconcile, which reconciles with
// GitHub at once (recovering the work of open pull requests) and then
// every --github-reconcile until its context ends: the daemon runs it on
// the leading replica only (leaderWork), so that two replicas do not both
// build a missed push; the jobs it queued end with the term
// (Queue.Reconcile). stop ends a running reconcile and waits for it and
// for running jobs. Call start once the daemon's API is listening (the
// pipeline talks to it).
func (f *githubFlags) start(ctx context.Context, home string, srv *http.Server, log *slog.Logger, track upTracker) (stop func(), reconcile func(context.Context), err error) {
	secret, ok, err := githubloop.SecretFromEnv(os.Getenv)
	if err != nil {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "%v", err)
	}
	if !ok {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "--github-repo needs the webhook secret in %s or %s", githubloop.EnvWebhookSecret, githubloop.EnvWebhookSecretFile)
	}
	owner, name, _ := strings.Cut(f.repo, "/")
	root := filepath.Join(home, "github", owner, name)
	token := os.Getenv(githubloop.EnvToken)
	runner := &githubloop.PipelineRunner{Root: root, AppDir: f.appDir, App: f.app, Token: token,
		Open: func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
			return openPipeline(ctx, home, p)
		}}
	q := &githubloop.Queue{
		Policy: f.policy, Settle: f.settle, StaleAfter: f.staleAfter, Logger: log.With("github", f.repo),
	}
	q.Runner = observedRunner{Runner: runner, track: track, app: f.app, redo: func(job githubloop.Job) error {
		_, err := q.Redeploy(job.PR.Number, "redeployed from the dashboard")
		return err
	}}
	if f.reconcile <= 0 {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "--github-reconcile %s: want a positive duration", f.reconcile)
	}
	app, err := f.appAuth()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case app != nil:
		rep, err := githubloop.NewAppReporter(f.repo, app, os.Getenv(githubloop.EnvAPIURL))
		if err != nil {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "--github-repo: %v", err)
		}
		q.Reporter = rep
		runner.Token, runner.TokenFunc = "", app.Token
		log.Info("github: authenticating as a GitHub App installation", "app", f.appID)
	case token != "":
		rep, err := githubloop.NewGitHubReporter(f.repo, token, os.Getenv(githubloop.EnvAPIURL))
		if err != nil {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "--github-repo: %v", err)
		}
		q.Reporter = rep
	default:
		log.Warn("neither " + githubloop.EnvToken + " nor --github-app-id: pull requests get no comment or deployment, and a restart does not recover their work")
	}
	if q.Counter, err = githubloop.OpenCounter(filepath.Join(root, "generation"), 0); err != nil {
		return nil, nil, err
	}
	if q.Parked, err = githubloop.OpenParked(filepath.Join(root, "parked.json")); err != nil {
		return nil, nil, err
	}
	qctx, cancel := context.WithCancel(ctx)
	q.Start(qctx)
	// A preview taken down from the dashboard stays down until the PR's
	// next push or "/glimpse up": its reconcile would build it again.
	if ad, ok := track.(afterDowner); ok {
		ad.SetAfterDown(func(app string, pr int, commit string) {
			if f.app != "" && app != f.app {
				return // not this repository's app
			}
			if err := q.Park(pr, commit); err != nil {
				log.Warn("github: parking a pull request taken down from the dashboard", "pr", pr, "err", err)
			}
		})
	}
	srv.Handler = githubloop.Mount(srv.Handler, &githubloop.Handler{Secret: secret, Repo: f.repo, Deliver: q, Logger: log})
	var (
		reconciling sync.WaitGroup
		mu          sync.Mutex
		stopped     bool // stop ran: a reconcile starting later does nothing
	)
	reconcile = func(lctx context.Context) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		reconciling.Add(1)
		mu.Unlock()
		defer reconciling.Done()
		rctx, end := context.WithCancel(lctx)
		defer end()
		defer context.AfterFunc(qctx, end)()
		// On start (recovering what a stop or a crash left), then on a
		// schedule.
		t := time.NewTicker(f.reconcile)
		defer t.Stop()
		for {
			if err := q.Reconcile(rctx); err != nil && rctx.Err() == nil {
				log.Warn("github: reconciling pull requests", "err", err)
			}
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
		}
	}
	log.Info("github webhooks", "repo", f.repo, "path", githubloop.WebhookPath)
	stop = func() {
		cancel()
		mu.Lock()
		stopped = true
		mu.Unlock()
		reconciling.Wait()
		q.Wait()
	}
	return stop, reconcile, nil
}

// appAuth returns the GitHub App auth the flags ask for, or nil.
func (f *githubAppFlags) appAuth() (*githubloop.AppAuth, error) {
	keyFile := f.appKeyFile
	if keyFile == "" {
		keyFile = os.Getenv(githubloop.EnvAppKeyFile)
	}
	if f.appID == "" {
		if f.appKeyFile != "" {
			return nil, preview.Errorf(preview.InvalidArgument, "--github-app-key-file needs --github-app-id")
		}
		return nil, nil
	}
	if keyFile == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "--github-app-id needs the app's private key: --github-app-key-file or %s", githubloop.EnvAppKeyFile)
	}
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "--github-app-key-file: %v", err)
	}
	key, err := githubloop.ParseAppKey(pemBytes)
	if err != nil {
		return nil, preview.WithCode(preview.InvalidArgument, fmt.Errorf("%s: %w", keyFile, err))
	}
	return &githubloop.AppAuth{AppID: f.appID, InstallationID: f.appInstallation, Key: key}, nil
}

// afterDowner is the daemon's hook for Downs outside the loop (the
// dashboard's Delete): daemon.Stack.SetAfterDown.
type afterDowner interface {
	SetAfterDown(func(app string, pr int, commit string))
}

// upTracker is where the loop's Ups report besides GitHub: the daemon's
// step metrics (ObserveEvent) and its dashboard (TrackUp).
type upTracker interface {
	ObserveEvent(preview.Event)
	TrackUp(app string, pr int, commit string, redo func(context.Context) error) (onEvent func(preview.Event), done func(error))
}

// observedRunner is a githubloop.Runner whose Ups also report their
// pipeline events to the daemon: every event to its step metrics, and
// the Up with its events and result to its dashboard, with redo (queue
// the PR's job again) as the dashboard's redeploy. The app is known
// before the Up when pinned (--github-app), else once a successful Up
// returns its preview: an Up that fails before naming its app is not on
// the dashboard's detail page (the preview's route still says it failed).
type observedRunner struct {
	githubloop.Runner
	track upTracker
	app   string
	redo  func(githubloop.Job) error
}

func (r observedRunner) Up(ctx context.Context, job githubloop.Job, onEvent func(preview.Event)) (preview.Preview, error) {
	if r.track == nil {
		return r.Runner.Up(ctx, job, onEvent)
	}
	redo := func(context.Context) error { return r.redo(job) }
	var early []preview.Event
	record := func(e preview.Event) { early = append(early, e) }
	var done func(error)
	if r.app != "" {
		record, done = r.track.TrackUp(r.app, job.PR.Number, job.PR.HeadSHA, redo)
	}
	pv, err := r.Runner.Up(ctx, job, func(e preview.Event) {
		r.track.ObserveEvent(e)
		record(e)
		onEvent(e)
	})
	if done == nil && pv.App != "" {
		rec, d := r.track.TrackUp(pv.App, job.PR.Number, job.PR.HeadSHA, redo)
		for _, e := range early {
			rec(e)
		}
		done = d
	}
	if done != nil {
		done(err)
	}
	return pv, err
}

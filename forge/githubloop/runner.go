package githubloop

import (
	"bytes"
	"context"
	"encoding/base64"

	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

// PipelineRunner is the Runner that checks a PR's head out and runs a
// preview.Pipeline over it.
//
// Source: the git binary (git init; git fetch --depth 1 <clone URL>
// <sha>; git checkout FETCH_HEAD) into Root/pr-<N>, one directory per PR
// reused by its later pushes. The git binary rather than go-git: no new
// dependency, and a shallow fetch of exactly one SHA (GitHub serves every
// PR head, forks' included, from the base repository) is what git does
// best; the checkout is plain files, what Pipeline.Up reads.
type PipelineRunner struct {
	// Root holds the per-PR checkouts (under the daemon's home).
	Root string
	// AppDir is the app's directory inside the repository; default ".".
	AppDir string
	// App, when set, pins the app: a PR whose glimpse.yaml names another
	// app is refused, so a pull request cannot take over another app's
	// previews (pr-N of that app) by renaming its own.
	App string
	// Open opens the pipeline for an app's glimpse.yaml providers.
	Open func(ctx context.Context, p config.Providers) (*preview.Pipeline, error)
	// Token, when set, authenticates git fetches over https (a GitHub
	// token), passed in git's environment, never on its command line.
	Token string
	// TokenFunc, when set and Token is not, returns the token for each
	// fetch (AppAuth.Token: installation tokens expire).
	TokenFunc func(ctx context.Context) (string, error)
	// Git is the git binary; default "git".
	Git string
}

func (r *PipelineRunner) dir(pr int) string {
	return filepath.Join(r.Root, "pr-"+strconv.Itoa(pr))
}

func (r *PipelineRunner) appDir(pr int) string {
	return filepath.Join(r.dir(pr), filepath.FromSlash(cmpOr(r.AppDir, ".")))
}

// Up checks job.PR.HeadSHA out and runs Pipeline.Up with the job's
// generation, forced past whatever a manual up stored (see below).
func (r *PipelineRunner) Up(ctx context.Context, job Job, onEvent func(preview.Event)) (preview.Preview, error) {
	if err := r.checkout(ctx, job.PR.Number, job.PR.CloneURL, job.PR.HeadSHA); err != nil {
		onEvent(preview.Event{Step: "checkout", State: preview.EventFailed, Message: err.Error()})
		return preview.Preview{}, err
	}
	// The push is the preview's activity until a request is newer.
	if err := os.WriteFile(r.activeStamp(job.PR.Number), nil, 0o600); err != nil {
		return preview.Preview{}, err
	}
	if job.PR.Fork() {
		// Marked inside .git, which checkouts and git clean leave alone.
		if err := os.WriteFile(r.untrusted(job.PR.Number), nil, 0o600); err != nil {
			return preview.Preview{}, err
		}
	}
	dir := r.appDir(job.PR.Number)
	file, err := r.load(job.PR.Number)
	if err != nil {
		onEvent(preview.Event{Step: "config", State: preview.EventFailed, Message: err.Error()})
		return preview.Preview{}, err
	}
	pl, err := r.Open(ctx, file.Providers)
	if err != nil {
		return preview.Preview{}, err
	}
	pl.OnEvent = onEvent
	// Force: the job is the newest delivery for its PR (the queue runs
	// one job per PR at a time, the newest), so it must also win over a
	// generation a manual `glimpse up --generation` or `--force` put on
	// the route since: it claims max(job.Generation, stored+1).
	return pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: file.Spec, PR: job.PR.Number, Commit: job.PR.HeadSHA, Generation: job.Generation, Force: true})
}

// Down takes the PR's preview down, using the app and providers of its
// last checkout, collects the image tags no live preview uses (Pipeline.GC
// for the app), then removes the checkout. Without a checkout, the
// preview of the pinned App (if any) is taken down with the default
// providers (a preview made by hand, or whose checkout was lost);
// without either nothing was built here, and Down succeeds.
func (r *PipelineRunner) Down(ctx context.Context, pr int) error {
	if _, err := os.Stat(r.dir(pr)); os.IsNotExist(err) {
		if r.App == "" {
			return nil
		}
		pl, err := r.Open(ctx, config.Providers{})
		if err != nil {
			return err
		}
		return downAndCollect(ctx, pl, r.App, pr)
	}
	file, err := r.load(pr)
	if err == nil {
		pl, err := r.Open(ctx, file.Providers)
		if err != nil {
			return err
		}
		if err := downAndCollect(ctx, pl, file.App, pr); err != nil {
			return err
		}
	}
	// A checkout without a glimpse.yaml built nothing.
	return os.RemoveAll(r.dir(pr))
}

// downAndCollect runs Pipeline.Down and then collects the image tags only
// this PR's preview used (GC keeps every tag a live preview runs, and a
// registry that refuses deletes is reported, not failed).
func downAndCollect(ctx context.Context, pl *preview.Pipeline, app string, pr int) error {
	if err := pl.Down(ctx, app, pr); err != nil {
		return err
	}
	if pl.Registry != nil && pl.Runtime != nil && pl.Router != nil {
		if _, err := pl.GC(ctx, preview.GCOptions{Apps: []string{app}}); err != nil {
			return err
		}
	}
	return nil
}

// Known lists the PRs with a checkout, and (with App pinned) those with a
// preview of App on the default providers, each with the commit its
// preview serves (from the pipeline's labelled resources; "" when none is
// served) and its last activity: the newer of the last Up's start (a
// stamp file in the checkout) and the edge's last request, which is
// written to the stamp so that it survives a restart of the edge.
func (r *PipelineRunner) Known(ctx context.Context) (map[int]Held, error) {
	out := map[int]Held{}
	ents, err := os.ReadDir(r.Root)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range ents {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "pr-"))
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "pr-") || err != nil || n <= 0 {
			continue
		}
		h := Held{}
		if fi, err := os.Stat(r.activeStamp(n)); err == nil {
			h.Active = fi.ModTime()
		}
		out[n] = h
		file, err := r.load(n)
		if err != nil {
			continue
		}
		pl, err := r.Open(ctx, file.Providers)
		if err != nil {
			return nil, err
		}
		pvs, err := pl.List(ctx, file.App)
		if err != nil {
			return nil, err
		}
		for _, pv := range pvs {
			if pv.PR != n || pv.Status == preview.StatusPartial {
				continue
			}
			h.Commit = pv.Commit
			h.TTL, h.Pushed = pv.Lifetime().TTL, pv.Lifetime().Pushed
			if pv.LastRequest != nil && pv.LastRequest.After(h.Active) {
				h.Active = *pv.LastRequest
				// Best effort: a failed write only loses the request
				// time at the next restart.
				_ = os.Chtimes(r.activeStamp(n), h.Active, h.Active)
			}
		}
		out[n] = h
	}
	if r.App == "" {
		return out, nil
	}
	pl, err := r.Open(ctx, config.Providers{})
	if err != nil {
		return nil, err
	}
	pvs, err := pl.List(ctx, r.App)
	if err != nil {
		return nil, err
	}
	for _, pv := range pvs {
		if _, ok := out[pv.PR]; ok || pv.PR <= 0 {
			continue
		}
		h := Held{}
		if pv.Status != preview.StatusPartial {
			h.Commit = pv.Commit
		}
		l := pv.Lifetime()
		h.TTL, h.Pushed, h.Active = l.TTL, l.Pushed, l.Active
		out[pv.PR] = h
	}
	return out, nil
}

func (r *PipelineRunner) activeStamp(pr int) string {
	return filepath.Join(r.dir(pr), ".git", "glimpse-active")
}

func (r *PipelineRunner) untrusted(pr int) string {
	return filepath.Join(r.dir(pr), ".git", "glimpse-fork")
}

// load reads the checkout's glimpse.yaml. The providers of a fork's
// glimpse.yaml are ignored (the daemon's defaults are used): a fork must
// not point the daemon's credentials (GLIMPSE_PASSWORD, the AWS chain) at
// servers of its choosing.
func (r *PipelineRunner) load(pr int) (*config.File, error) {
	file, err := config.Load(r.appDir(pr))
	if err != nil {
		return nil, err
	}
	if r.App != "" && file.App != r.App {
		return nil, preview.Errorf(preview.PermissionDenied, "glimpse.yaml of pull request #%d names app %q; this daemon builds app %q (--github-app)", pr, file.App, r.App)
	}
	if _, err := os.Stat(r.untrusted(pr)); err == nil {
		file.Providers = config.Providers{}
	}
	return file, nil
}

// checkout makes r.dir(pr) hold exactly commit sha of url.
func (r *PipelineRunner) checkout(ctx context.Context, pr int, url, sha string) error {
	if !validSHA(sha) {
		return preview.Errorf(preview.InvalidArgument, "head SHA %q is not a commit SHA", sha)
	}
	if url == "" || strings.HasPrefix(url, "-") {
		return preview.Errorf(preview.InvalidArgument, "pull request #%d has no clone URL (got %q)", pr, url)
	}
	dir := r.dir(pr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	steps := [][]string{
		{"init", "--quiet"},
		{"fetch", "--quiet", "--depth", "1", "--no-tags", url, sha},
		{"checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"},
		{"clean", "--quiet", "-ffdx"},
	}
	for _, args := range steps {
		if err := r.git(ctx, dir, url, args...); err != nil {
			return err
		}
	}
	return nil
}

func (r *PipelineRunner) git(ctx context.Context, dir, url string, args ...string) error {
	cmd := exec.CommandContext(ctx, cmpOr(r.Git, "git"), append([]string{"-C", dir}, args...)...)
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	token := r.Token
	if token == "" && r.TokenFunc != nil && strings.HasPrefix(url, "https://") {
		var err error
		if token, err = r.TokenFunc(ctx); err != nil {
			return err
		}
	}
	if token != "" && strings.HasPrefix(url, "https://") {
		auth := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+auth)
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := stderr.String()
		if strings.Contains(msg, "could not read Username") || strings.Contains(msg, "Authentication failed") {
			// A 401 to the token: git fell back to asking for a password.
			return preview.Errorf(preview.PermissionDenied, "git %s: %s refused the credentials (HTTP 401): the token is missing, wrong, expired or cannot read the repository", args[0], redactURL(url))
		}
		return preview.Errorf(preview.Unavailable, "git %s: %v: %s", args[0], err, oneLine(msg))
	}
	return nil
}

// redactURL returns url without its user information, if any.
func redactURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 && (strings.IndexByte(rest, '/') < 0 || at < strings.IndexByte(rest, '/')) {
		rest = rest[at+1:]
	}
	return scheme + "://" + rest
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

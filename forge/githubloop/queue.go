package githubloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Policy decides which pull requests are built.
type Policy struct {
	// AllowForks builds PRs whose head is in another repository. Off by
	// default: a fork's code would be built and run with the daemon's
	// credentials in reach of its build.
	AllowForks bool
	// Label opts a PR in when RequireLabel is set; default "preview".
	Label string
	// RequireLabel builds only PRs that carry Label; removing the label
	// takes the preview down, adding it builds the head. Without it every
	// (non-fork, non-draft) PR is built and labels are ignored.
	RequireLabel bool
	// BuildDrafts builds draft PRs too.
	BuildDrafts bool
}

func (p Policy) label() string {
	if p.Label == "" {
		return "preview"
	}
	return p.Label
}

// Skip returns why pr is not built under p, or "" when it is.
func (p Policy) Skip(pr PullRequest) string {
	switch {
	case pr.Fork() && !p.AllowForks:
		return "pull requests from forks are not built (allowForks is off): their code would run with the daemon's credentials"
	case pr.Draft && !p.BuildDrafts:
		return "draft pull requests are not built; mark it ready for review"
	case p.RequireLabel && !pr.HasLabel(p.label()):
		return fmt.Sprintf("add the label %q to build a preview", p.label())
	}
	return ""
}

// JobKind is what a Job does.
type JobKind string

// Job kinds.
const (
	JobUp   JobKind = "up"
	JobDown JobKind = "down"
	// JobSkip reports on the PR why it is not built, and takes down a
	// preview it may have (a label removed, a policy changed).
	JobSkip JobKind = "skip"
)

// Job is one unit of work for a pull request.
type Job struct {
	Kind JobKind
	PR   PullRequest
	// Generation is the delivery's number, passed as UpRequest.Generation.
	Generation int64
	// Reason says why a JobSkip is skipped.
	Reason   string
	Delivery string
}

// Runner runs the preview side of Jobs; PipelineRunner is the real one.
// Up and Down must honour ctx (a newer delivery for the PR cancels it).
type Runner interface {
	// Up builds and routes the preview of job.PR at job.PR.HeadSHA with
	// job.Generation. onEvent receives the pipeline's progress.
	Up(ctx context.Context, job Job, onEvent func(preview.Event)) (preview.Preview, error)
	// Down removes the preview of PR number pr; a preview already gone
	// (or never made) is success.
	Down(ctx context.Context, pr int) error
	// Known returns the PRs the runner holds something for, with the
	// commit their preview serves ("" when nothing is served), so that a
	// restarted daemon can tell what is missing, stale or left over.
	Known(ctx context.Context) (map[int]string, error)
}

// Reporter tells GitHub about a PR's preview; GitHubReporter is the real
// one. Failures are logged by the Queue and never fail the preview work.
type Reporter interface {
	// Report updates the PR's one preview comment (created on the first
	// call, edited in place afterwards) and its deployment status.
	Report(ctx context.Context, r Report) error
	// OpenPulls lists the repository's open pull requests.
	OpenPulls(ctx context.Context) ([]PullRequest, error)
}

// State is the deployment state of a Report, named as GitHub's
// deployment statuses are.
type State string

// Report states.
const (
	StateInProgress State = "in_progress"
	StateSuccess    State = "success"
	StateFailure    State = "failure"
	StateInactive   State = "inactive"
	// StateSkipped: the PR is not built (a fork, a draft, no label); only
	// the comment says why, no deployment is made.
	StateSkipped State = "skipped"
)

// Report is one status update of a PR's preview.
type Report struct {
	PR     int
	Commit string
	State  State
	URL    string
	// Message is the failing step's message, the skip reason, or a note.
	Message string
	// Superseded marks the inactive report of an Up that a newer delivery
	// replaced: the deployment goes inactive, the comment is left to the
	// newer Up.
	Superseded bool
}

// Queue turns deliveries into per-PR work: a burst of deliveries for a PR
// coalesces into one job for the newest (after Settle without a newer
// delivery), a newer delivery cancels the PR's running job, and a close
// drops the PR's pending work for a Down. Each delivery gets the next
// number of a persisted counter as its generation, so webhook order is the
// order of previews (a job superseded by a newer delivery fails its claim
// or is cancelled, never routes). PRs run concurrently with each other,
// each PR's jobs one at a time.
type Queue struct {
	Runner   Runner
	Reporter Reporter // may be nil
	Policy   Policy
	Counter  *Counter
	// Settle is how long a PR's newest delivery waits for a newer one
	// before it runs; default 2s.
	Settle time.Duration
	Logger *slog.Logger

	mu     sync.Mutex
	prs    map[int]*prState
	ctx    context.Context
	wg     sync.WaitGroup
	closed bool
}

type prState struct {
	pending *Job
	running *Job
	cancel  context.CancelFunc
	active  bool // a worker goroutine owns this PR
}

// Start makes the queue run jobs under ctx; cancelling ctx stops running
// jobs (Wait waits for them).
func (q *Queue) Start(ctx context.Context) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ctx = ctx
	if q.prs == nil {
		q.prs = map[int]*prState{}
	}
}

// Wait waits for every worker to finish.
func (q *Queue) Wait() { q.wg.Wait() }

// Idle reports whether no job is pending or running.
func (q *Queue) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.prs {
		if s.active {
			return false
		}
	}
	return true
}

// Deliver decides what d asks for under the Policy, numbers it and
// enqueues it. It returns an error only when the generation could not be
// persisted (the delivery is then not queued).
func (q *Queue) Deliver(ctx context.Context, d Delivery) error {
	var job Job
	switch {
	case d.Action == "closed":
		job = Job{Kind: JobDown}
	case (d.Action == "labeled" || d.Action == "unlabeled") &&
		(!q.Policy.RequireLabel || !strings.EqualFold(d.Label, q.Policy.label())):
		return nil // a label that decides nothing
	default:
		if why := q.Policy.Skip(d.PR); why != "" {
			job = Job{Kind: JobSkip, Reason: why}
		} else {
			job = Job{Kind: JobUp}
		}
	}
	job.PR, job.Delivery = d.PR, d.ID
	return q.Enqueue(job)
}

// Enqueue numbers job (unless it has a generation) and queues it for its
// PR, replacing the PR's pending job and cancelling its running one.
func (q *Queue) Enqueue(job Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx == nil {
		return errors.New("queue not started")
	}
	// Numbered under the queue's lock: the order of generations is the
	// order in which deliveries are queued.
	if job.Generation == 0 {
		g, err := q.Counter.Next()
		if err != nil {
			return err
		}
		job.Generation = g
	}
	s := q.prs[job.PR.Number]
	if s == nil {
		s = &prState{}
		q.prs[job.PR.Number] = s
	}
	if (s.pending != nil && s.pending.Generation > job.Generation) || (s.running != nil && s.running.Generation > job.Generation) {
		return nil // an older job (numbered by the caller) arrived late
	}
	s.pending = &job
	if s.cancel != nil {
		s.cancel() // the running job is superseded
	}
	if !s.active {
		s.active = true
		q.wg.Add(1)
		go q.work(job.PR.Number, s)
	}
	return nil
}

func (q *Queue) settle() time.Duration {
	if q.Settle <= 0 {
		return 2 * time.Second
	}
	return q.Settle
}

// work runs the PR's pending jobs until none is left.
func (q *Queue) work(pr int, s *prState) {
	defer q.wg.Done()
	for {
		// Wait for the burst to settle: the pending job runs once no
		// newer one replaced it for Settle.
		for {
			q.mu.Lock()
			before := s.pending
			q.mu.Unlock()
			t := time.NewTimer(q.settle())
			select {
			case <-q.ctx.Done():
				t.Stop()
				q.mu.Lock()
				s.active = false
				q.mu.Unlock()
				return
			case <-t.C:
			}
			q.mu.Lock()
			same := s.pending == before
			q.mu.Unlock()
			if same {
				break
			}
		}
		q.mu.Lock()
		job := s.pending
		if job == nil {
			s.active = false
			q.mu.Unlock()
			return
		}
		s.pending = nil
		ctx, cancel := context.WithCancel(q.ctx)
		s.running, s.cancel = job, cancel
		q.mu.Unlock()

		q.run(ctx, *job)
		cancel()

		q.mu.Lock()
		s.running, s.cancel = nil, nil
		if s.pending == nil {
			s.active = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
}

func (q *Queue) log() *slog.Logger {
	if q.Logger != nil {
		return q.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (q *Queue) report(r Report) {
	if q.Reporter == nil {
		return
	}
	// Reports go out even when the job's context was cancelled (the
	// superseded build says so), bounded on their own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.ctx), 30*time.Second)
	defer cancel()
	if err := q.Reporter.Report(ctx, r); err != nil {
		q.log().Warn("github report failed", "pr", r.PR, "state", r.State, "err", err)
	}
}

func (q *Queue) run(ctx context.Context, job Job) {
	log := q.log().With("pr", job.PR.Number, "generation", job.Generation, "job", job.Kind)
	switch job.Kind {
	case JobSkip:
		log.Info("pull request not built", "reason", job.Reason)
		// A preview it may still have (label removed) goes.
		if err := q.Runner.Down(ctx, job.PR.Number); err != nil {
			log.Warn("down of a skipped pull request failed", "err", err)
		}
		q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateSkipped, Message: job.Reason})
	case JobDown:
		log.Info("taking the preview down")
		if err := q.Runner.Down(ctx, job.PR.Number); err != nil {
			log.Error("down failed", "err", err)
			if q.ctx.Err() != nil {
				return
			}
			q.report(Report{PR: job.PR.Number, State: StateFailure, Message: "down: " + err.Error()})
			return
		}
		q.report(Report{PR: job.PR.Number, State: StateInactive, Message: "pull request closed: preview removed"})
	case JobUp:
		log.Info("building the preview", "commit", job.PR.HeadSHA)
		q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateInProgress})
		var failed string
		pv, err := q.Runner.Up(ctx, job, func(e preview.Event) {
			if e.State == preview.EventFailed && failed == "" {
				failed = e.Step + ": " + e.Message
			}
		})
		switch {
		case err == nil:
			log.Info("preview ready", "url", pv.URL)
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateSuccess, URL: pv.URL})
		case q.ctx.Err() != nil:
			// The daemon is stopping: Recover redoes the work on start.
			log.Info("stopped by shutdown", "err", err)
		case ctx.Err() != nil || errors.Is(err, preview.ErrSuperseded):
			log.Info("superseded by a newer delivery", "err", err)
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateInactive, Message: "superseded by a newer push", Superseded: true})
		default:
			log.Error("preview failed", "err", err)
			msg := failed
			if msg == "" {
				msg = err.Error()
			}
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateFailure, Message: msg})
		}
	}
}

// Recover re-derives work after a (re)start from GitHub's open pull
// requests and what the Runner holds: an open PR that the Policy builds
// and whose preview is missing or serves another commit is built; an open
// PR the Policy skips, or a PR that is no longer open, is taken down when
// the Runner holds something for it. It needs a Reporter (for the open
// PRs); without one it does nothing.
func (q *Queue) Recover(ctx context.Context) error {
	if q.Reporter == nil {
		return nil
	}
	open, err := q.Reporter.OpenPulls(ctx)
	if err != nil {
		return fmt.Errorf("listing open pull requests: %w", err)
	}
	known, err := q.Runner.Known(ctx)
	if err != nil {
		return fmt.Errorf("listing previews: %w", err)
	}
	isOpen := map[int]bool{}
	var errs []error
	for _, pr := range open {
		isOpen[pr.Number] = true
		commit, has := known[pr.Number]
		switch {
		case q.Policy.Skip(pr) != "":
			if has {
				errs = append(errs, q.Enqueue(Job{Kind: JobSkip, PR: pr, Reason: q.Policy.Skip(pr)}))
			}
		case !has || commit != pr.HeadSHA:
			errs = append(errs, q.Enqueue(Job{Kind: JobUp, PR: pr}))
		}
	}
	for n := range known {
		if !isOpen[n] {
			errs = append(errs, q.Enqueue(Job{Kind: JobDown, PR: PullRequest{Number: n}}))
		}
	}
	return errors.Join(errs...)
}

// Counter hands out increasing generations, persisted in a file so that a
// restarted daemon never reuses one. Next writes the file (atomically)
// before it returns.
type Counter struct {
	path string
	mu   sync.Mutex
	n    int64
}

// OpenCounter reads the counter in path (0 when the file is missing) and
// raises it to at least floor (say, the newest generation already on a
// route, so that Ups made by hand do not make the daemon's older).
func OpenCounter(path string, floor int64) (*Counter, error) {
	c := &Counter{path: path}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, err
	default:
		if c.n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || c.n < 0 {
			return nil, fmt.Errorf("generation counter %s: not a number", path)
		}
	}
	c.n = max(c.n, floor)
	return c, nil
}

// Next returns the next generation after persisting it.
func (c *Counter) Next() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n + 1
	if c.path != "" {
		if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
			return 0, err
		}
		tmp := c.path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.FormatInt(n, 10)+"\n"), 0o600); err != nil {
			return 0, err
		}
		if err := os.Rename(tmp, c.path); err != nil {
			return 0, err
		}
	}
	c.n = n
	return n, nil
}

package githubloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
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
	// JobStale takes down the preview of an open PR that expired (no push
	// and no request for Queue.StaleAfter, or past its ttl), and parks
	// the PR: reconciles leave it down until a push (or a reopen) builds
	// it again.
	JobStale JobKind = "stale"
)

// Job is one unit of work for a pull request.
type Job struct {
	Kind JobKind
	PR   PullRequest
	// Generation is the delivery's number, passed as UpRequest.Generation.
	Generation int64
	// Reason says why a JobSkip is skipped, or why a JobUp runs when no
	// delivery asked for it (shown while it builds).
	Reason   string
	Delivery string

	// term is the context of the Reconcile that queued the job: when it
	// ends (the daemon's leadership term), the job is dropped if still
	// pending and cancelled if running, so that a replica that lost the
	// lease does not go on with work the new leader's reconcile redoes.
	// Nil for deliveries, which bind to the queue alone.
	term context.Context
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
	// commit their preview serves and when it was last active, so that
	// the Queue's reconcile can tell what is missing, outdated, stale or
	// left over.
	Known(ctx context.Context) (map[int]Held, error)
}

// Held is what a Runner holds for one pull request.
type Held struct {
	// Commit is the commit the preview serves; "" when nothing is served
	// (never built, or an interrupted first Up).
	Commit string
	// Active is the newest of the preview's last push (an Up of it) and
	// its last request (function or static) the Runner knows of; zero
	// when unknown. It must survive daemon restarts (the edge's request
	// counters do not).
	Active time.Time
	// Pushed is the preview's last deploy and TTL its glimpse.yaml ttl
	// (0: none), both read from its route's labels (preview.LabelTTL,
	// preview.LabelDeployedAt); zero when unknown.
	Pushed time.Time
	TTL    time.Duration
}

// Lifetime is h as the preview.Lifetime that Reconcile expires by.
func (h Held) Lifetime() preview.Lifetime {
	return preview.Lifetime{TTL: h.TTL, Pushed: h.Pushed, Active: h.Active}
}

// Reporter tells GitHub about a PR's preview; GitHubReporter is the real
// one. Failures are logged by the Queue and never fail the preview work.
type Reporter interface {
	// Report updates the PR's one preview comment (created on the first
	// call, edited in place afterwards) and its deployment status.
	Report(ctx context.Context, r Report) error
	// OpenPulls lists the repository's open pull requests.
	OpenPulls(ctx context.Context) ([]PullRequest, error)
	// Pull returns pull request n and whether it is open; a PR GitHub
	// does not know (404: never existed, or its repository is gone) is
	// returned as not open, without an error.
	Pull(ctx context.Context, n int) (pr PullRequest, open bool, err error)
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
	// StaleAfter, when positive, takes down the preview of an open PR
	// with no push and no request for that long (Reconcile finds them).
	StaleAfter time.Duration
	// Parked persists which PRs StaleAfter took down, at which head, so
	// that a reconcile (or a restart) does not build them again; nil
	// keeps them in memory only.
	Parked *Parked
	// Now is the clock of StaleAfter; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	mu     sync.Mutex
	prs    map[int]*prState
	failed map[int]string // PR -> head whose Up failed (not retried by Reconcile)
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
	case d.Command == CommandUp:
		// The head is read when the job runs (Deliver must be quick).
		job = Job{Kind: JobUp, Reason: "asked for with " + CommandUp}
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
	if job.Kind != JobSkip {
		// A push, a reopen or a close ends a stale PR's parking.
		if err := q.parked().Unpark(d.PR.Number); err != nil {
			return err
		}
	}
	return q.Enqueue(job)
}

func (q *Queue) parked() *Parked {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Parked == nil {
		q.Parked = &Parked{}
	}
	return q.Parked
}

func (q *Queue) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

// Enqueue numbers job (unless it has a generation) and queues it for its
// PR, replacing the PR's pending job and cancelling its running one.
func (q *Queue) Enqueue(job Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.enqueueLocked(job)
}

func (q *Queue) enqueueLocked(job Job) error {
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

// Redeploy builds PR number pr again, as a "/glimpse up" comment does:
// the job reads the PR from GitHub when it runs, so it builds the PR's
// newest head, and a PR that is no longer open is not built (a Down
// stays final). While the PR has work pending or running it does
// nothing: that work is for a head at least as new. It ends the PR's
// parking (an explicit ask, like the comment). It reports whether it
// queued a job; without the GitHub API (Reporter) it is
// FailedPrecondition. It is safe for concurrent use.
func (q *Queue) Redeploy(pr int, reason string) (bool, error) {
	if q.Reporter == nil {
		return false, preview.Errorf(preview.FailedPrecondition, "redeploy needs the GitHub API (a token or a GitHub App) to read pull request #%d", pr)
	}
	parked := q.parked()
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.prs[pr]; s != nil && (s.pending != nil || s.running != nil) {
		return false, nil
	}
	if err := parked.Unpark(pr); err != nil {
		return false, err
	}
	return true, q.enqueueLocked(Job{Kind: JobUp, PR: PullRequest{Number: pr}, Reason: reason})
}

// Park records that PR number pr's preview at head was taken down
// outside the queue (the dashboard's Delete), so that Reconcile does not
// build that head again; a push, a reopen or a "/glimpse up" unparks it,
// as after a stale preview's removal.
func (q *Queue) Park(pr int, head string) error {
	if head == "" {
		return nil
	}
	return q.parked().Park(pr, head)
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
		if job.termEnded() {
			// Its reconcile's term is over: the next leader decides.
			s.active = false
			q.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancel(q.ctx)
		endTerm := func() bool { return false }
		if job.term != nil {
			endTerm = context.AfterFunc(job.term, cancel)
		}
		s.running, s.cancel = job, cancel
		q.mu.Unlock()

		q.run(ctx, *job)
		endTerm()
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
	case JobStale:
		log.Info("taking a stale preview down", "after", q.StaleAfter)
		if err := q.Runner.Down(ctx, job.PR.Number); err != nil {
			log.Error("down of a stale preview failed", "err", err)
			// Unparked, so that the next reconcile tries again.
			if err := q.parked().Unpark(job.PR.Number); err != nil {
				log.Error("unparking", "err", err)
			}
			return
		}
		q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateInactive, Message: job.Reason})
	case JobDown:
		log.Info("taking the preview down")
		if err := q.Runner.Down(ctx, job.PR.Number); err != nil {
			log.Error("down failed", "err", err)
			if q.ctx.Err() != nil || job.termEnded() {
				return
			}
			q.report(Report{PR: job.PR.Number, State: StateFailure, Message: "down: " + err.Error()})
			return
		}
		q.report(Report{PR: job.PR.Number, State: StateInactive, Message: "pull request closed: preview removed"})
	case JobUp:
		if job.PR.HeadSHA == "" { // a command: read the PR now
			if !q.resolve(ctx, &job) {
				return
			}
		}
		log.Info("building the preview", "commit", job.PR.HeadSHA)
		q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateInProgress, Message: job.Reason})
		var failed string
		pv, err := q.Runner.Up(ctx, job, func(e preview.Event) {
			if e.State == preview.EventFailed && failed == "" {
				failed = e.Step + ": " + e.Message
			}
		})
		q.setFailed(job.PR.Number, "")
		switch {
		case err == nil:
			log.Info("preview ready", "url", pv.URL)
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateSuccess, URL: pv.URL})
		case q.ctx.Err() != nil:
			// The daemon is stopping: Reconcile redoes the work on start.
			log.Info("stopped by shutdown", "err", err)
		case job.termEnded():
			// Another replica leads now: its reconcile redoes the work
			// and reports it.
			log.Info("stopped: the term of the reconcile that queued it ended", "err", err)
		case ctx.Err() != nil || errors.Is(err, preview.ErrSuperseded):
			log.Info("superseded by a newer delivery", "err", err)
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateInactive, Message: "superseded by a newer push", Superseded: true})
		default:
			log.Error("preview failed", "err", err)
			q.setFailed(job.PR.Number, job.PR.HeadSHA)
			msg := failed
			if msg == "" {
				msg = err.Error()
			}
			q.report(Report{PR: job.PR.Number, Commit: job.PR.HeadSHA, State: StateFailure, Message: msg})
		}
	}
}

// resolve fills job.PR from GitHub for a command's JobUp and checks it
// like a delivery: a PR that is not open is not built, one the Policy
// skips is reported skipped. It reports whether the job goes on.
func (q *Queue) resolve(ctx context.Context, job *Job) bool {
	log := q.log().With("pr", job.PR.Number)
	if q.Reporter == nil {
		log.Warn(CommandUp + " needs the GitHub API (a token or a GitHub App)")
		return false
	}
	pr, open, err := q.Reporter.Pull(ctx, job.PR.Number)
	switch {
	case err != nil:
		log.Error("reading the pull request", "err", err)
		q.report(Report{PR: job.PR.Number, State: StateFailure, Message: CommandUp + ": reading the pull request: " + err.Error()})
		return false
	case !open:
		log.Info(CommandUp + " on a pull request that is not open: nothing built")
		return false
	}
	job.PR = pr
	if why := q.Policy.Skip(pr); why != "" {
		q.report(Report{PR: pr.Number, Commit: pr.HeadSHA, State: StateSkipped, Message: why})
		return false
	}
	return true
}

// RecoveredMessage is the note of a build Reconcile started: the PR's
// head is not what its preview serves, and no delivery is pending for it.
const RecoveredMessage = "building again: the daemon restarted, or missed a webhook, before this commit was served"

// StaleMessage is the comment of a preview StaleAfter took down.
func StaleMessage(after time.Duration) string {
	return fmt.Sprintf("taken down after %s without a push or a request; push a commit or comment `%s` to bring it back", after, CommandUp)
}

// ExpiredMessage is the comment of a preview Reconcile took down because
// it expired (see preview.Lifetime.Expired): StaleMessage for a stale
// one, the ttl for one past its glimpse.yaml ttl.
func ExpiredMessage(e preview.Expiry) string {
	if e.Kind == preview.ExpiredStale {
		return StaleMessage(e.Limit)
	}
	return fmt.Sprintf("taken down: its %s; push a commit or comment `%s` to bring it back", e, CommandUp)
}

// Reconcile re-derives the work from GitHub and what the Runner holds;
// the daemon runs it on start (recovering what a stop or a crash left)
// and on a schedule. For each PR with no job pending or running:
//   - an open PR the Policy builds, whose preview is missing or serves
//     another commit, is built, unless StaleAfter parked it at that head
//     or this queue's last Up of that head failed (a push, or CommandUp,
//     builds it; a restart retries it once);
//   - an open PR whose preview expired (preview.Lifetime.Expired: past
//     its glimpse.yaml ttl since its last push, or without a push and a
//     request for StaleAfter) is taken down and parked, and the PR says
//     why and how to bring it back;
//   - an open PR the Policy skips is taken down when the Runner holds
//     something for it;
//   - a PR the Runner holds that is not open (closed, or unknown to
//     GitHub: an orphan) is taken down, after Reporter.Pull confirms it, so a
//     PR opened since the list is left alone.
//
// Each decision is queued as a job, so Reconcile is idempotent and safe to
// run concurrently with deliveries. The jobs are bound to ctx: when it
// ends, those still pending are dropped and those running are cancelled
// (a daemon runs Reconcile under its leadership term, so a replica that
// loses the lease stops the work the next leader's reconcile takes over). It needs a Reporter; without one it
// does nothing. Errors of single PRs are joined; the others still run.
func (q *Queue) Reconcile(ctx context.Context) error {
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
		if q.busy(pr.Number) {
			continue
		}
		held, has := known[pr.Number]
		switch {
		case q.Policy.Skip(pr) != "":
			if has {
				errs = append(errs, q.enqueueTerm(ctx, Job{Kind: JobSkip, PR: pr, Reason: q.Policy.Skip(pr)}))
			}
		case q.parked().Is(pr.Number, pr.HeadSHA), q.failedAt(pr.Number, pr.HeadSHA):
		case !has || held.Commit != pr.HeadSHA:
			errs = append(errs, q.enqueueTerm(ctx, Job{Kind: JobUp, PR: pr, Reason: RecoveredMessage}))
		default:
			exp, expired := held.Lifetime().Expired(q.now(), q.StaleAfter)
			if !expired {
				continue
			}
			if err := q.parked().Park(pr.Number, pr.HeadSHA); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, q.enqueueTerm(ctx, Job{Kind: JobStale, PR: pr, Reason: ExpiredMessage(exp)}))
		}
	}
	for n := range known {
		if isOpen[n] || q.busy(n) {
			continue
		}
		_, stillOpen, err := q.Reporter.Pull(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("pull request #%d: %w", n, err))
			continue
		}
		if !stillOpen {
			errs = append(errs, q.parked().Unpark(n), q.enqueueTerm(ctx, Job{Kind: JobDown, PR: PullRequest{Number: n}}))
		}
	}
	return errors.Join(errs...)
}

// termEnded reports whether the job was queued by a Reconcile whose
// context has ended.
func (j Job) termEnded() bool { return j.term != nil && j.term.Err() != nil }

// enqueueTerm is Enqueue for a job Reconcile queues under ctx, its term.
func (q *Queue) enqueueTerm(ctx context.Context, job Job) error {
	job.term = ctx
	return q.Enqueue(job)
}

// setFailed records that the Up of PR n at head sha failed ("" clears).
func (q *Queue) setFailed(n int, sha string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed == nil {
		q.failed = map[int]string{}
	}
	if sha == "" {
		delete(q.failed, n)
	} else {
		q.failed[n] = sha
	}
}

// failedAt reports whether this queue's last Up of PR n, at head sha,
// failed: a reconcile does not build it again (a broken commit would be
// rebuilt, and reported failed, on every schedule); a push or
// CommandUp does.
func (q *Queue) failedAt(n int, sha string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed[n] != "" && q.failed[n] == sha
}

// busy reports whether PR n has a job pending or running.
func (q *Queue) busy(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.prs[n]
	return s != nil && s.active
}

// Parked is the set of PRs whose stale preview was taken down, each with
// the head it was taken down at, persisted in a file (when it has a path)
// with internal/atomicfile, so a restarted daemon leaves them down too.
// It is safe for concurrent use.
type Parked struct {
	path string
	mu   sync.Mutex
	m    map[int]string
}

// OpenParked reads the set in path (empty when the file is missing).
func OpenParked(path string) (*Parked, error) {
	p := &Parked{path: path, m: map[int]string{}}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return p, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &p.m); err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "parked pull requests %s: not JSON (remove the file to unpark every pull request)", path)
	}
	return p, nil
}

// Is reports whether PR n is parked at head sha.
func (p *Parked) Is(n int, sha string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[n] != "" && p.m[n] == sha
}

// Park records PR n as parked at head sha; it is idempotent.
func (p *Parked) Park(n int, sha string) error { return p.set(n, sha) }

// Unpark removes PR n; unparking a PR that is not parked is success.
func (p *Parked) Unpark(n int) error { return p.set(n, "") }

func (p *Parked) set(n int, sha string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[int]string{}
	}
	if p.m[n] == sha {
		return nil
	}
	old, had := p.m[n]
	if sha == "" {
		delete(p.m, n)
	} else {
		p.m[n] = sha
	}
	if p.path == "" {
		return nil
	}
	b, _ := json.Marshal(p.m)
	if err := atomicfile.Write(p.path, b, &atomicfile.Options{MkdirAll: true}); err != nil {
		if had {
			p.m[n] = old
		} else {
			delete(p.m, n)
		}
		return err
	}
	return nil
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
			return nil, preview.Errorf(preview.FailedPrecondition, "generation counter %s: not a number", path)
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
		if err := atomicfile.Write(c.path, []byte(strconv.FormatInt(n, 10)+"\n"), &atomicfile.Options{MkdirAll: true}); err != nil {
			return 0, err
		}
	}
	c.n = n
	return n, nil
}

package localfaas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// maxLogSize is the size past which a function's log is truncated when
// its next process starts.
const maxLogSize = 8 << 20

// process is one running function process.
type process struct {
	cmd     *exec.Cmd
	pid     int
	addr    string        // "127.0.0.1:port"
	exited  chan struct{} // closed once the process is reaped and its group killed
	waitErr error         // valid after exited is closed
	logged  chan struct{} // closed once its output is all in the log
	started time.Time
}

// launch starts a process for plan on a fresh loopback port and waits until
// it accepts TCP connections there. On any failure the process (and its
// group) is killed and the error, one line, carries the last line the
// process wrote and the log's path.
func (r *Runtime) launch(ctx context.Context, plan launchPlan) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, preview.Errorf(preview.ResourceExhausted, "function %s: no free port: %v", plan.name, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fi, err := os.Stat(plan.logPath); err == nil && fi.Size() > maxLogSize {
		flags |= os.O_TRUNC // keep the log bounded across restarts
	}
	logf, err := os.OpenFile(plan.logPath, flags, 0o600)
	if err != nil {
		return nil, preview.WithCode(preview.Internal, err)
	}
	fmt.Fprintf(logf, "%s "+logHeader+"%s: starting %s on %s\n", logStamp(time.Now()), time.Now().UTC().Format(time.RFC3339), plan.args[0], addr)
	// The process writes into a pipe whose lines are stamped with the time
	// they arrive (see logCopy), so Logs can answer since= and timestamps.
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, preview.WithCode(preview.Internal, err)
	}
	var cmd *exec.Cmd
	for attempt := 1; ; attempt++ {
		cmd = &exec.Cmd{
			Path:        plan.path,
			Args:        plan.args,
			Dir:         plan.dir,
			Env:         append(plan.env[:len(plan.env):len(plan.env)], "PORT="+strconv.Itoa(port)),
			Stdout:      pw,
			Stderr:      pw,
			SysProcAttr: sysProcAttr(plan.sandbox, plan.chroot),
		}
		err = startCmd(cmd)
		// ETXTBSY: a process forked elsewhere in the daemon while an image
		// was being extracted still holds a write descriptor of the binary
		// until it execs (golang.org/issue/22315). It passes in moments.
		if !isTextBusy(err) || attempt == 50 {
			break
		}
		t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			logf.Close()
			pr.Close()
			pw.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	pw.Close() // the child holds its own descriptor
	if err != nil {
		logf.Close()
		pr.Close()
		return nil, preview.Errorf(preview.FailedPrecondition, "function %s: start %s: %v", plan.name, plan.args[0], err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, addr: addr, exited: make(chan struct{}), logged: make(chan struct{}), started: time.Now()}
	go func() {
		logCopy(logf, pr)
		close(p.logged)
	}()
	go func() {
		awaitExit(p.pid)
		signalGroup(p.pid, syscall.SIGKILL) // children the leader left behind
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := r.awaitReady(ctx, p); err != nil {
		p.stop(0)
		p.awaitLogged()
		return nil, fmt.Errorf("%w%s", err, lastOutput(plan.logPath))
	}
	return p, nil
}

// awaitReady polls the process's port until it accepts a connection, the
// process exits, ctx ends or the ready timeout passes.
func (r *Runtime) awaitReady(ctx context.Context, p *process) error {
	deadline := time.NewTimer(r.opts.ReadyTimeout)
	defer deadline.Stop()
	// Refused connections cost microseconds: poll often at first, when
	// most processes become ready, then every 5ms.
	delay := 250 * time.Microsecond
	d := net.Dialer{Timeout: time.Second}
	for {
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err == nil {
			c.Close()
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-p.exited:
			t.Stop()
			return preview.Errorf(preview.FailedPrecondition, "function process exited before listening on %s: %v", p.addr, exitText(p.waitErr))
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-deadline.C:
			t.Stop()
			return preview.Errorf(preview.DeadlineExceeded, "function process did not listen on %s within %v", p.addr, r.opts.ReadyTimeout)
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Millisecond)
	}
}

// stop asks the process group to terminate and kills it after grace (at
// once when the process has no SIGTERM handler: as a sandboxed PID 1 it
// would not die of SIGTERM, which would cost the whole grace period). It
// returns once the process is reaped.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	if grace > 0 && handlesSignal(p.pid, syscall.SIGTERM) {
		signalGroup(p.pid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
	}
	signalGroup(p.pid, syscall.SIGKILL)
	<-p.exited
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logHeader starts the line launch writes to a function's log before each
// start.
const logHeader = "--- localfaas "

// lastOutput returns, formatted to follow an error message on the same
// line, the last non-empty line a function's process wrote to its log
// since the runtime's last start line (at most 200 bytes of it), and the
// log's path; or "" when the log cannot be read.
func lastOutput(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tailSize = 4096
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-tailSize, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		_, l = parseLogLine(l)
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, logHeader):
			last = "" // an earlier start's output
		case l != "":
			last = l
		}
	}
	if last == "" {
		return " (no output; log " + p + ")"
	}
	if len(last) > 200 {
		last = last[:200] + "..."
	}
	return fmt.Sprintf("; last output: %q (log %s)", last, p)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// replica supervises the process of one function: it restarts the process
// with exponential backoff when it exits, and stops it when asked.
type replica struct {
	r      *Runtime
	name   string
	ctx    context.Context // cancelled to stop the replica
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor has stopped its process

	// prepare computes the launch plan; nil once plan is known.
	prepare func(ctx context.Context) (launchPlan, error)
	plan    launchPlan

	mu      sync.Mutex
	proc    *process      // the ready process, nil while (re)starting
	readyCh chan struct{} // closed when proc becomes non-nil
	// What FunctionStatus reports: the last failed start or crash, how
	// many crashes, when the current (or last) process started.
	lastErr   string
	restarts  int
	startedAt time.Time
}

// newReplica starts supervising. first is an already ready process (from a
// synchronous start) or nil, in which case the supervisor prepares and
// starts one in the background.
func (r *Runtime) newReplica(name string, plan launchPlan, prepare func(context.Context) (launchPlan, error), first *process) *replica {
	ctx, cancel := context.WithCancel(r.bg)
	rp := &replica{r: r, name: name, ctx: ctx, cancel: cancel, done: make(chan struct{}), prepare: prepare, plan: plan, readyCh: make(chan struct{})}
	if first != nil {
		rp.setProc(first) // ready before the caller publishes the replica
	}
	go rp.run(first)
	return rp
}

func (rp *replica) run(p *process) {
	defer close(rp.done)
	log := rp.r.log.With("function", rp.name)
	backoff := rp.r.opts.RestartBackoff
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-rp.ctx.Done():
			return false
		case <-t.C:
		}
		if backoff *= 2; backoff > rp.r.opts.MaxRestartBackoff {
			backoff = rp.r.opts.MaxRestartBackoff
		}
		return true
	}
	for {
		if p == nil {
			if rp.prepare != nil {
				plan, err := rp.prepare(rp.ctx)
				if err != nil {
					if rp.ctx.Err() != nil {
						return
					}
					log.Warn("localfaas: cannot prepare function", "err", err, "retry_in", backoff)
					if !wait() {
						return
					}
					continue
				}
				rp.plan, rp.prepare = plan, nil
			}
			var err error
			if p, err = rp.r.launch(rp.ctx, rp.plan); err != nil {
				if rp.ctx.Err() != nil {
					return
				}
				rp.noteFailure(err.Error(), false)
				log.Warn("localfaas: function did not start", "err", err, "retry_in", backoff)
				if !wait() {
					return
				}
				continue
			}
		}
		rp.setProc(p)
		started := time.Now()
		select {
		case <-rp.ctx.Done():
			rp.setProc(nil)
			p.stop(rp.r.opts.StopTimeout)
			return
		case <-p.exited:
			rp.setProc(nil)
			if time.Since(started) > rp.r.opts.MaxRestartBackoff {
				backoff = rp.r.opts.RestartBackoff // it ran fine for a while
			}
			p.awaitLogged()
			rp.noteFailure(fmt.Sprintf("function process exited: %s%s", exitText(p.waitErr), lastOutput(rp.plan.logPath)), true)
			log.Warn("localfaas: function exited; restarting", "pid", p.pid, "err", exitText(p.waitErr), "restart_in", backoff)
			p = nil
			if !wait() {
				return
			}
		}
	}
}

func (rp *replica) setProc(p *process) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if p != nil && rp.proc == nil {
		rp.proc = p
		rp.startedAt = p.started
		close(rp.readyCh)
	} else if p == nil && rp.proc != nil {
		rp.proc = nil
		rp.readyCh = make(chan struct{})
	}
}

// noteFailure records a failed start or, when crashed, a crash.
func (rp *replica) noteFailure(msg string, crashed bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.lastErr = strings.Join(strings.Fields(msg), " ")
	if crashed {
		rp.restarts++
	}
}

// health returns what noteFailure and setProc recorded.
func (rp *replica) health() (lastErr string, restarts int, startedAt time.Time) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.lastErr, rp.restarts, rp.startedAt
}

// state returns the ready process (nil while starting) and a channel closed
// when a process becomes ready.
func (rp *replica) state() (*process, <-chan struct{}) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.proc, rp.readyCh
}

// stop stops supervising and the process; it returns when the process is
// gone.
func (rp *replica) stop() {
	rp.cancel()
	<-rp.done
}

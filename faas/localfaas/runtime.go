package localfaas

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// Options configure a Runtime. The zero value (or nil) means defaults.
type Options struct {
	// Logger receives the runtime's logs; nil means slog.Default(). The
	// functions' own output goes to home/functions/logs/<name>.log.
	Logger *slog.Logger
	// ReadyTimeout bounds how long a starting process may take to accept
	// TCP connections on its port. Default 30s.
	ReadyTimeout time.Duration
	// StopTimeout is how long a process may take to exit after SIGTERM
	// before it is killed. Default 5s.
	StopTimeout time.Duration
	// RestartBackoff is the first delay before restarting a crashed
	// process; it doubles on every crash up to MaxRestartBackoff and resets
	// when a process ran longer than MaxRestartBackoff. Defaults 100ms, 30s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// Keychain supplies registry credentials for pulls; nil means
	// ociregistry.Keychain(nil, "") (GLIMPSE registry variables, then the
	// Docker configuration). Loopback registries are spoken to over HTTP.
	Keychain authn.Keychain
	// RemoteOptions are added to every image pull (a transport, say); not
	// for credentials, which go in Keychain.
	RemoteOptions []remote.Option
	// Busy, when set, reports whether requests are still in flight to an
	// upstream address ("127.0.0.1:port"); the edge's UpstreamBusy fits.
	// When Apply replaces a function's process, it stops the old one only
	// once Busy says it is idle, or after DrainTimeout (default 30s), so
	// requests that started before the switch finish on it.
	Busy         func(addr string) bool
	DrainTimeout time.Duration
	// Sandbox chooses whether function processes run sandboxed (own PID
	// namespace, chroot into their image, unprivileged user; see the
	// package documentation). The zero value, SandboxAuto, sandboxes
	// where the machine allows it and logs one warning where it does not.
	Sandbox Sandbox
	// SandboxUID and SandboxGID are the user and group that sandboxed
	// processes run as; 0 means DefaultSandboxID (65534, nobody). No
	// other process should run as them.
	SandboxUID, SandboxGID uint32
}

// Errors of Endpoint and WaitEndpoint, matched with errors.Is. Their codes
// are FailedPrecondition and Unavailable.
var (
	// ErrScaledToZero: the function exists but has no replica; Scale it to
	// one to get an endpoint.
	ErrScaledToZero = preview.Errorf(preview.FailedPrecondition, "function is scaled to zero")
	// ErrNotReady: the function's process is starting or restarting.
	ErrNotReady = preview.Errorf(preview.Unavailable, "function process is not ready")
	// errClosed is returned by every call after Close.
	errClosed = preview.Errorf(preview.FailedPrecondition, "localfaas runtime is closed")
)

// Runtime runs functions as local processes. It implements
// preview.FunctionRuntime and is safe for concurrent use; calls for the same
// function are serialized, calls for different functions run in parallel.
// A function has at most one replica.
type Runtime struct {
	home      string
	imagesDir string
	logsDir   string
	statePath string
	opts      Options
	log       *slog.Logger

	bg     context.Context // cancelled by Close
	cancel context.CancelFunc
	ops    sync.WaitGroup // mutating calls in flight

	mu     sync.RWMutex
	closed bool
	fns    map[string]*entry
	locks  map[string]*keyLock
	pins   map[string]int // image digests in use by calls in flight

	saveMu   sync.Mutex
	gen      atomic.Uint64
	savedGen uint64

	lockFile *os.File // holds the home's lock until Close

	sandbox *sandboxConfig // nil: functions run unsandboxed
}

type entry struct {
	fn       preview.Function
	replicas int
	digest   string // the image manifest the function runs
	created  time.Time
	rp       *replica // nil when replicas == 0
	// lastErr is the failed wake (or the crash loop put to sleep) that
	// FunctionStatus.LastError reports while replicas == 0; not persisted.
	lastErr string
	// tree is the private tree (secrets.go) of the running process as
	// this runtime started it; "" when none or not known.
	tree string

	invocations atomic.Uint64
}

var _ preview.FunctionRuntime = (*Runtime)(nil)

// New opens the runtime whose state lives under home (created if missing):
// home/functions.json (desired state), home/functions/images (extracted
// images by digest) and home/functions/logs. Functions recorded with one
// replica are started again in the background; Apply, Scale and
// WaitEndpoint see them as not ready until their process listens. Only one
// Runtime (in any process) may use a home at a time: New fails with
// FailedPrecondition while another holds it.
//
// home and home/functions are made accessible to the daemon's user only
// (mode 0700, also when they existed with a wider mode), and the files
// the runtime writes there are mode 0600, so that neither a function (when
// sandboxed it runs as another user) nor other users of the machine can
// read the daemon's state and secrets. New decides whether functions run
// sandboxed (Options.Sandbox); with SandboxRequired it fails with
// FailedPrecondition when they cannot be.
func New(home string, opts *Options) (*Runtime, error) {
	if home == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "localfaas: home directory is required")
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, preview.WithCode(preview.InvalidArgument, err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Keychain == nil {
		o.Keychain = ociregistry.Keychain(nil, "")
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = 100 * time.Millisecond
	}
	if o.MaxRestartBackoff < o.RestartBackoff {
		o.MaxRestartBackoff = max(30*time.Second, o.RestartBackoff)
	}
	r := &Runtime{
		home:      home,
		imagesDir: filepath.Join(home, "functions", "images"),
		logsDir:   filepath.Join(home, "functions", "logs"),
		statePath: filepath.Join(home, "functions.json"),
		opts:      o,
		log:       o.Logger,
		fns:       map[string]*entry{},
		locks:     map[string]*keyLock{},
		pins:      map[string]int{},
	}
	for _, d := range []string{home, filepath.Join(home, "functions")} {
		if err := tightenHome(d); err != nil {
			return nil, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
		}
	}
	for _, d := range []string{r.imagesDir, r.logsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
		}
	}
	lock, err := lockHome(filepath.Join(home, "functions", ".lock"))
	if err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "localfaas: %s: %v", home, err)
	}
	r.lockFile = lock
	if r.sandbox, err = r.setupSandbox(); err != nil {
		unlockHome(lock)
		return nil, err
	}
	// Leftovers of an interrupted pull or prune.
	if des, err := os.ReadDir(r.imagesDir); err == nil {
		for _, de := range des {
			if strings.HasPrefix(de.Name(), pullTempPrefix) || strings.HasPrefix(de.Name(), trashPrefix) {
				os.RemoveAll(filepath.Join(r.imagesDir, de.Name()))
			}
		}
	}
	st, err := loadState(r.statePath)
	if err != nil {
		unlockHome(lock)
		return nil, err
	}
	r.bg, r.cancel = context.WithCancel(context.Background())
	for _, sf := range st.Functions {
		if sf.Secrets, err = r.loadFunctionSecrets(sf.Name); err != nil {
			r.log.Warn("localfaas: a function's secrets cannot be read: it starts without them", "function", sf.Name, "err", err.Error())
		}
		e := &entry{fn: sf.Function, replicas: sf.Replicas, digest: sf.Digest, created: sf.CreatedAt}
		if e.replicas > 0 {
			e.replicas = 1
			fn, digest := sf.Function, sf.Digest
			e.rp = r.newReplica(fn.Name, launchPlan{}, func(ctx context.Context) (launchPlan, error) {
				img, release, err := r.image(ctx, fn.Image, digest)
				if err != nil {
					return launchPlan{}, err
				}
				defer release()
				return r.plan(fn, img)
			}, nil)
		}
		r.fns[sf.Name] = e
	}
	r.removeStraySecrets()
	return r, nil
}

// Close stops every function process and waits until they are gone. It
// does not change the persisted state, so a new Runtime on the same home
// starts them again. Calls after Close fail with FailedPrecondition. Close
// is idempotent.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cancel()
	r.mu.Unlock()
	r.ops.Wait()

	r.mu.Lock()
	var rps []*replica
	for _, e := range r.fns {
		if e.rp != nil {
			rps = append(rps, e.rp)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, rp := range rps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp.stop()
		}()
	}
	wg.Wait()
	return unlockHome(r.lockFile)
}

// begin registers a mutating call; end must be called when it returns.
// The returned context is also cancelled by Close.
func (r *Runtime) begin(ctx context.Context) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, errClosed
	}
	r.ops.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.bg, cancel)
	return ctx, func() {
		stop()
		cancel()
		r.ops.Done()
	}, nil
}

type applyMode int

const (
	applyAny applyMode = iota
	applyCreate
	applyUpdate
)

// Apply creates fn with one replica or updates it (see
// preview.FunctionRuntime). It pulls fn.Image (by digest, or resolving a
// tag) and, when the function has a replica, starts the new process and
// waits until it accepts connections before the endpoint switches to it and
// the old process stops, so there is no moment without a ready process.
//
// An update of a function scaled to zero starts the new version once, as a
// wake would, waits until it accepts connections and stops it again, so a
// version that cannot start fails Apply now rather than the next wake; the
// function stays at zero either way.
//
// Apply with the same image, env, labels and annotations as the current
// state does nothing; one that changes only labels or annotations (the
// same Image string and env) records them without pulling and without
// restarting the process. A tag reference is resolved only when the image
// or env changed; pass a digest, as the Pipeline does, to pin an image.
//
// Apply never rolls a function back: when the deployed function's
// generation (annotation preview.AnnotationGeneration) is greater than
// fn's, it fails with preview.ErrStaleGeneration (FailedPrecondition) and
// changes nothing. The check and the write happen under the function's
// lock, which every Apply, Scale and Remove of that function holds, so no
// other call can slip in between.
//
// On failure nothing changes: a new function is not created, an existing
// one keeps its spec and process. Errors of a process that does not start
// are one line with its exit status and last line of output. If only
// persisting the new state fails, the new process runs and the error is
// returned; the next successful call persists it.
func (r *Runtime) Apply(ctx context.Context, fn preview.Function) error {
	return r.apply(ctx, fn, applyAny)
}

func (r *Runtime) apply(ctx context.Context, fn preview.Function, mode applyMode) error {
	if err := preview.ValidateDNSLabel(fn.Name); err != nil {
		return preview.Errorf(preview.InvalidArgument, "function name %q: %v", fn.Name, err)
	}
	if fn.Image == "" {
		return preview.Errorf(preview.InvalidArgument, "function %s: image is required", fn.Name)
	}
	if err := fn.Validate(); err != nil { // the secrets' names
		return err
	}
	ctx, end, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	unlock, err := r.lock(ctx, fn.Name)
	if err != nil {
		return err
	}
	defer unlock()

	// The function's lock is held from here to the write below: e and
	// e.fn change only under it.
	r.mu.RLock()
	e := r.fns[fn.Name]
	var cur preview.Function
	if e != nil {
		cur = e.fn
	}
	r.mu.RUnlock()
	switch {
	case mode == applyCreate && e != nil:
		return preview.Errorf(preview.AlreadyExists, "function %s already exists", fn.Name)
	case mode == applyUpdate && e == nil:
		return preview.Errorf(preview.NotFound, "function %s not found", fn.Name)
	}
	if e != nil {
		if err := preview.CheckGeneration(cur, fn); err != nil {
			return err
		}
		if r.sameSecrets(e, fn) {
			if sameSpec(cur, fn) {
				return nil
			}
			if sameProcess(cur, fn) {
				return r.relabel(e, fn)
			}
		}
	}
	fn = cloneFunction(fn)
	img, release, err := r.image(ctx, fn.Image, "")
	if err != nil {
		return fmt.Errorf("function %s: %w", fn.Name, err)
	}
	defer release()
	plan, err := r.plan(fn, img)
	if err != nil {
		return err
	}

	var rp *replica
	if e == nil || e.replicas > 0 {
		p, err := r.launch(ctx, plan)
		if err != nil {
			return fmt.Errorf("function %s: %w", fn.Name, err)
		}
		rp = r.newReplica(fn.Name, plan, nil, p)
	} else if err := r.trial(ctx, plan); err != nil {
		return fmt.Errorf("function %s is scaled to zero and keeps its deployed version: the new version did not start: %w", fn.Name, err)
	}

	if err := r.saveFunctionSecrets(fn); err != nil {
		if rp != nil {
			rp.stop()
		}
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if rp != nil {
			rp.stop()
		}
		return errClosed
	}
	var old *replica
	if e == nil {
		e = &entry{replicas: 1, created: time.Now().UTC()}
		r.fns[fn.Name] = e
	}
	old = e.rp // nil at zero replicas, where rp is nil too
	e.fn, e.digest, e.rp, e.lastErr, e.tree = fn, img.Digest, rp, "", plan.tree
	r.mu.Unlock()

	err = r.save()
	if old != nil {
		r.drain(ctx, old)
		old.stop()
	}
	r.pruneTrees(fn.Name, plan.tree)
	release()
	r.prune()
	return err
}

// relabel records fn's labels and annotations on e, whose process (image
// and env) fn leaves as it is. The caller holds the function's lock.
func (r *Runtime) relabel(e *entry, fn preview.Function) error {
	fn = cloneFunction(fn)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed
	}
	e.fn.Labels, e.fn.Annotations = fn.Labels, fn.Annotations
	r.mu.Unlock()
	return r.save()
}

// trial starts a process for plan as a wake would, waits until it accepts
// connections (the same readiness check) and stops it again.
func (r *Runtime) trial(ctx context.Context, plan launchPlan) error {
	p, err := r.launch(ctx, plan)
	if err != nil {
		return err
	}
	p.stop(r.opts.StopTimeout)
	return nil
}

// Get returns the function's status, or NotFound. AvailableReplicas is 1
// while a process accepts connections.
func (r *Runtime) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	if err := ctx.Err(); err != nil {
		return preview.FunctionStatus{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.fns[name]
	if !ok {
		return preview.FunctionStatus{}, preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	return e.status(), nil
}

// List returns the functions whose labels match selector, sorted by name.
func (r *Runtime) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.RLock()
	out := make([]preview.FunctionStatus, 0, len(r.fns))
	for _, e := range r.fns {
		if e.fn.Labels.Matches(selector) {
			out = append(out, e.status())
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (e *entry) status() preview.FunctionStatus {
	fn := cloneFunction(e.fn)
	fn.Secrets = nil // values never leave the runtime
	st := preview.FunctionStatus{
		Function:        fn,
		Replicas:        e.replicas,
		InvocationCount: float64(e.invocations.Load()),
		CreatedAt:       e.created,
	}
	if e.rp != nil {
		if p, _ := e.rp.state(); p != nil {
			st.AvailableReplicas = 1
		}
		st.LastError, st.Restarts, st.StartedAt = e.rp.health()
		st.StartedAt = st.StartedAt.UTC()
	} else {
		st.LastError = e.lastErr
	}
	return st
}

// Scale sets the function's replicas to 0 or 1 and returns the count
// accepted: values above 1 are clamped to 1, negative ones are
// InvalidArgument, an unknown function is NotFound. Scaling to one starts
// the process and returns when it accepts connections (on failure the
// function stays at zero); scaling to zero returns when the process is
// gone. Scaling to the current count does nothing.
func (r *Runtime) Scale(ctx context.Context, name string, replicas int) (int, error) {
	if replicas < 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "function %s: replicas must not be negative, got %d", name, replicas)
	}
	replicas = min(replicas, 1)
	ctx, end, err := r.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	unlock, err := r.lock(ctx, name)
	if err != nil {
		return 0, err
	}
	defer unlock()

	r.mu.RLock()
	e := r.fns[name]
	r.mu.RUnlock()
	if e == nil {
		return 0, preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	if e.replicas == replicas {
		return replicas, nil
	}
	if replicas == 0 {
		r.mu.Lock()
		rp := e.rp
		e.rp, e.replicas = nil, 0
		if rp != nil {
			// A crash loop put to sleep stays failed: a wake would crash.
			if p, _ := rp.state(); p == nil {
				e.lastErr, _, _ = rp.health()
			}
		}
		r.mu.Unlock()
		err := r.save()
		if rp != nil {
			rp.stop()
		}
		return 0, err
	}

	img, release, err := r.image(ctx, e.fn.Image, e.digest)
	if err != nil {
		return 0, fmt.Errorf("function %s: %w", name, err)
	}
	defer release()
	plan, err := r.plan(e.fn, img)
	if err != nil {
		return 0, err
	}
	p, err := r.launch(ctx, plan)
	if err != nil {
		err = fmt.Errorf("function %s: %w", name, err)
		if ctx.Err() == nil {
			r.mu.Lock()
			e.lastErr = strings.Join(strings.Fields(err.Error()), " ")
			r.mu.Unlock()
		}
		return 0, err
	}
	rp := r.newReplica(name, plan, nil, p)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		rp.stop()
		return 0, errClosed
	}
	e.rp, e.replicas, e.lastErr, e.tree = rp, 1, "", plan.tree
	r.mu.Unlock()
	return 1, r.save()
}

// Remove stops the function's process, forgets the function and deletes
// its log; its image leaves the cache when no other function uses it. A
// missing function is success.
func (r *Runtime) Remove(ctx context.Context, name string) error {
	_, err := r.remove(ctx, name, 0)
	return err
}

// RemoveOlder removes the function when its generation is lower than
// below, checked and removed under the function's lock, so an Apply of a
// newer generation is never undone (preview.GenerationRemover).
func (r *Runtime) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	if below <= 0 {
		return false, nil
	}
	return r.remove(ctx, name, below)
}

var _ preview.GenerationRemover = (*Runtime)(nil)

// remove removes name; when below > 0 only if its generation is lower.
func (r *Runtime) remove(ctx context.Context, name string, below int64) (existed bool, err error) {
	ctx, end, err := r.begin(ctx)
	if err != nil {
		return false, err
	}
	defer end()
	unlock, err := r.lock(ctx, name)
	if err != nil {
		return false, err
	}
	defer unlock()
	r.mu.Lock()
	e := r.fns[name]
	if e != nil && below > 0 && preview.GenerationOf(e.fn.Annotations) >= below {
		e = nil
	}
	if e != nil {
		delete(r.fns, name)
	}
	r.mu.Unlock()
	if e == nil {
		return false, nil
	}
	err = r.save()
	if e.rp != nil {
		e.rp.stop()
	}
	r.removeFunctionSecrets(name)
	os.Remove(r.logPath(name))
	r.prune()
	return true, err
}

// Endpoint returns "127.0.0.1:port" of the function's ready process. It
// does not wait: an unknown function is NotFound, one scaled to zero
// ErrScaledToZero, one whose process is (re)starting ErrNotReady.
func (r *Runtime) Endpoint(name string) (string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.fns[name]
	if !ok {
		return "", preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	if e.replicas == 0 || e.rp == nil {
		return "", fmt.Errorf("function %s: %w", name, ErrScaledToZero)
	}
	p, _ := e.rp.state()
	if p == nil {
		return "", fmt.Errorf("function %s: %w", name, ErrNotReady)
	}
	return p.addr, nil
}

// WaitEndpoint is Endpoint that waits, until ctx ends, while the function's
// process is (re)starting. It does not scale: a function at zero replicas
// fails at once with ErrScaledToZero.
func (r *Runtime) WaitEndpoint(ctx context.Context, name string) (string, error) {
	for {
		r.mu.RLock()
		e, ok := r.fns[name]
		var rp *replica
		if ok {
			rp = e.rp
		}
		closed := r.closed
		r.mu.RUnlock()
		switch {
		case closed:
			return "", errClosed
		case !ok:
			return "", preview.Errorf(preview.NotFound, "function %s not found", name)
		case rp == nil:
			return "", fmt.Errorf("function %s: %w", name, ErrScaledToZero)
		}
		p, ready := rp.state()
		if p != nil {
			return p.addr, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-ready:
		case <-rp.done: // replaced or stopped: look again
		}
	}
}

// CountInvocation adds one to the function's InvocationCount (not
// persisted). The gateway's /function proxy calls it; an edge proxying to
// Endpoint may too. Unknown names are ignored.
func (r *Runtime) CountInvocation(name string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.fns[name]; ok {
		e.invocations.Add(1)
	}
}

// pid returns the PID of the function's ready process, or 0 (for tests).
func (r *Runtime) pid(name string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.fns[name]; ok && e.rp != nil {
		if p, _ := e.rp.state(); p != nil {
			return p.pid
		}
	}
	return 0
}

func (r *Runtime) logPath(name string) string {
	return filepath.Join(r.logsDir, name+".log")
}

// prune deletes cached images that no function and no call in flight uses.
func (r *Runtime) prune() {
	r.mu.Lock()
	used := map[string]bool{}
	for _, e := range r.fns {
		used[cacheDirName(e.digest)] = true
	}
	for d := range r.pins {
		used[cacheDirName(d)] = true
	}
	des, err := os.ReadDir(r.imagesDir)
	var trash []string
	if err == nil {
		for _, de := range des {
			n := de.Name()
			if strings.HasPrefix(n, ".") || used[n] {
				continue
			}
			t, err := os.MkdirTemp(r.imagesDir, trashPrefix)
			if err != nil {
				continue
			}
			if err := os.Rename(filepath.Join(r.imagesDir, n), filepath.Join(t, n)); err != nil {
				os.Remove(t)
				continue
			}
			trash = append(trash, t)
		}
	}
	r.mu.Unlock()
	for _, t := range trash {
		if err := os.RemoveAll(t); err != nil {
			r.log.Warn("localfaas: cannot delete cached image", "dir", t, "err", err)
		}
	}
}

// keyLock serializes the calls for one key; waiting honours ctx.
type keyLock struct {
	ch   chan struct{}
	refs int
}

func (r *Runtime) lock(ctx context.Context, key string) (func(), error) {
	r.mu.Lock()
	kl := r.locks[key]
	if kl == nil {
		kl = &keyLock{ch: make(chan struct{}, 1)}
		r.locks[key] = kl
	}
	kl.refs++
	r.mu.Unlock()
	release := func() {
		r.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(r.locks, key)
		}
		r.mu.Unlock()
	}
	select {
	case kl.ch <- struct{}{}:
		return func() { <-kl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

func sameSpec(a, b preview.Function) bool {
	return sameProcess(a, b) && mapsEqual(a.Labels, b.Labels) && mapsEqual(a.Annotations, b.Annotations)
}

// sameProcess reports whether a and b run the same process: the same image
// reference, environment and secrets. Labels and annotations do not reach
// the process.
func sameProcess(a, b preview.Function) bool {
	return a.Image == b.Image && mapsEqual(a.Env, b.Env) && preview.SecretsHash(a) == preview.SecretsHash(b)
}

// mapsEqual treats nil and empty maps as equal.
func mapsEqual[M ~map[string]string](a, b M) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

func cloneFunction(f preview.Function) preview.Function {
	f.Env = cloneMap(f.Env)
	f.Secrets = cloneMap(f.Secrets)
	f.SecretNames = slices.Clone(f.SecretNames)
	f.Labels = cloneMap(f.Labels)
	f.Annotations = cloneMap(f.Annotations)
	return f
}

func cloneMap[M ~map[string]string](m M) M {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// drain waits until no request is in flight to the replica's process (see
// Options.Busy), up to DrainTimeout or ctx's end. New requests already go
// to the new process, so the wait only lets started ones finish.
func (r *Runtime) drain(ctx context.Context, rp *replica) {
	if r.opts.Busy == nil {
		return
	}
	p, _ := rp.state()
	if p == nil {
		return
	}
	timeout := r.opts.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for r.opts.Busy(p.addr) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// Package faulty wraps Glimpse's provider interfaces (Builder, Registry,
// FunctionRuntime, AssetStore, Router, DNS) with seeded fault injection, to
// test that code built on them (the Pipeline) keeps its invariants when
// providers fail the way real ones do: calls that fail before doing
// anything, calls that time out, calls that did their write but answered
// with an error, slow calls that reorder concurrent operations, and
// operations that die part-way ("crash") while others carry on.
//
// An Injector holds the seed and the fault rates and counts what it
// injected. Each operation under test (one Up, one Down) gets its own
// Session, and wraps its providers with the Session's methods; a crash
// affects only the Session it hits. Sessions share the wrapped providers'
// state, since the wrappers only decide, per call, whether to delay the
// call, fail it or let it through.
//
// Faults are drawn from math/rand/v2 generators: the Injector's, seeded by
// New and shared under a mutex, gives each Session its own seed when the
// Session is made, and each Session draws its calls' faults from its own
// generator (under its own mutex, since one operation may call providers
// from several goroutines). So when Sessions are made in a fixed order, a
// seed fixes each operation's sequence of faults (the n-th call of an
// operation gets the n-th draw), however the operations interleave; a
// failing seed replays the same faults per operation, though the
// interleaving itself, and so the call each draw lands on when an
// operation calls from two goroutines, may differ from run to run.
//
// Injected errors carry a preview.Code and wrap a *Fault, so
// preview.CodeOf and errors.As tell them apart from the providers' own
// errors. The codes keep the provider contract: Unavailable only where
// nothing happened (a fault before the call), never after the write.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Kind is what the injector did to one call.
type Kind int

// Fault kinds.
const (
	// Pass: the call went through untouched.
	Pass Kind = iota
	// Slow: the call was delayed (a short sleep, or a run of
	// runtime.Gosched), then went through. It is not a failure.
	Slow
	// Error: the call failed with Unavailable or Internal before the
	// wrapped provider saw it; nothing happened.
	Error
	// Timeout: the call failed with DeadlineExceeded before the wrapped
	// provider saw it; nothing happened.
	Timeout
	// ErrorAfter: the wrapped provider ran the call (its write, if any,
	// happened), and the caller got an error with code Internal or
	// DeadlineExceeded instead of the provider's answer: the reply was
	// lost.
	ErrorAfter
	// Crash: the Session died at this call: the call failed either
	// before or after the wrapped provider ran it (half and half), and
	// every later call of the Session fails without reaching the
	// provider.
	Crash
	// Crashed: a call of a Session that had crashed before; it failed
	// with Unavailable without reaching the provider.
	Crashed
	numKinds
)

var kindNames = [...]string{Pass: "pass", Slow: "slow", Error: "error", Timeout: "timeout", ErrorAfter: "error-after", Crash: "crash", Crashed: "crashed"}

// String returns the kind's name.
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Failure reports whether the caller of a call of this kind saw an
// injected error.
func (k Kind) Failure() bool { return k >= Error }

// Config sets the fault rates. Each rate is a probability per call, in
// [0, 1]; Error, Timeout, ErrorAfter and Slow are exclusive outcomes of one
// draw, so their sum must not exceed 1. The zero Config injects nothing.
type Config struct {
	Error      float64
	Timeout    float64
	ErrorAfter float64
	Slow       float64
	// MaxDelay bounds the sleep of a Slow call; 0 means a Slow call
	// yields with runtime.Gosched 1 to 64 times instead of sleeping.
	MaxDelay time.Duration
	// Crash is the probability that a new Session is doomed: it crashes
	// at its k-th call, k uniform in [1, CrashWithin] (a Session that
	// makes fewer calls does not crash).
	Crash float64
	// CrashWithin bounds k; default 24.
	CrashWithin int
}

func (c Config) validate() error {
	for _, r := range []float64{c.Error, c.Timeout, c.ErrorAfter, c.Slow, c.Crash} {
		if r < 0 || r > 1 {
			return fmt.Errorf("faulty: rate %v is not in [0, 1]", r)
		}
	}
	if s := c.Error + c.Timeout + c.ErrorAfter + c.Slow; s > 1 {
		return fmt.Errorf("faulty: per-call rates sum to %v, more than 1", s)
	}
	if c.MaxDelay < 0 || c.CrashWithin < 0 {
		return errors.New("faulty: MaxDelay and CrashWithin must not be negative")
	}
	return nil
}

// Fault is the error underneath every injected failure.
type Fault struct {
	Kind    Kind
	Session string
	Method  string // "Router.SetRoute"
	Code    preview.Code
}

// Error describes the fault in one line.
func (f *Fault) Error() string {
	return fmt.Sprintf("faulty: injected %s (%s) in %s of %s", f.Kind, f.Code, f.Method, f.Session)
}

// IsFault reports whether err is (or wraps) an injected failure.
func IsFault(err error) bool {
	var f *Fault
	return errors.As(err, &f)
}

// Stats counts the calls an Injector saw, by outcome.
type Stats struct {
	Calls    int
	Sessions int
	// Doomed counts Sessions made to crash; Kinds[Crash] those that did.
	Doomed int
	Kinds  [numKinds]int
	// Methods counts failures (Kind.Failure) per method.
	Methods map[string]int
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	s.Calls += o.Calls
	s.Sessions += o.Sessions
	s.Doomed += o.Doomed
	for i := range s.Kinds {
		s.Kinds[i] += o.Kinds[i]
	}
	m := make(map[string]int, len(s.Methods)+len(o.Methods))
	for k, v := range s.Methods {
		m[k] += v
	}
	for k, v := range o.Methods {
		m[k] += v
	}
	s.Methods = m
	return s
}

// String summarises the counts on one line, then the failures per method.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls in %d sessions (%d doomed to crash)", s.Calls, s.Sessions, s.Doomed)
	for k := Slow; k < numKinds; k++ {
		fmt.Fprintf(&b, ", %s %d", k, s.Kinds[k])
	}
	ms := make([]string, 0, len(s.Methods))
	for m := range s.Methods {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  %-28s %d failures", m, s.Methods[m])
	}
	return b.String()
}

// Injector decides faults from a seed and counts them. It is safe for
// concurrent use.
type Injector struct {
	cfg   Config
	mu    sync.Mutex
	rng   *rand.Rand
	stats Stats
}

// New returns an Injector drawing from seed with the rates of cfg. It
// panics when cfg is invalid (a rate outside [0, 1], per-call rates summing
// to more than 1): that is a bug in the test.
func New(seed uint64, cfg Config) *Injector {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	if cfg.CrashWithin == 0 {
		cfg.CrashWithin = 24
	}
	return &Injector{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), stats: Stats{Methods: map[string]int{}}}
}

// Stats returns the counts so far.
func (in *Injector) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.stats
	s.Methods = make(map[string]int, len(in.stats.Methods))
	for k, v := range in.stats.Methods {
		s.Methods[k] = v
	}
	return s
}

// Session starts the fault sequence of one operation, named name in
// errors. It draws the Session's seed, and whether and where it crashes,
// from the Injector's generator.
func (in *Injector) Session(name string) *Session {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := &Session{in: in, name: name, rng: rand.New(rand.NewPCG(in.rng.Uint64(), in.rng.Uint64()))}
	if in.cfg.Crash > 0 && in.rng.Float64() < in.cfg.Crash {
		s.crashAt = 1 + in.rng.IntN(in.cfg.CrashWithin)
		in.stats.Doomed++
	}
	in.stats.Sessions++
	return s
}

func (in *Injector) count(k Kind, method string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stats.Calls++
	in.stats.Kinds[k]++
	if k.Failure() {
		in.stats.Methods[method]++
	}
}

// Session is the fault sequence of one operation: wrap the operation's
// providers with its methods. A Session is safe for concurrent use.
type Session struct {
	in   *Injector
	name string

	mu      sync.Mutex
	rng     *rand.Rand
	crashAt int // 0: never
	calls   int
	crashed bool
	faults  int
}

// Name returns the Session's name.
func (s *Session) Name() string { return s.name }

// Faulted reports whether any call of the Session has failed by
// injection so far (Slow calls do not count).
func (s *Session) Faulted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults > 0
}

// Crashed reports whether the Session has crashed.
func (s *Session) Crashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

// decision is what happens to one call.
type decision struct {
	kind  Kind
	after bool // fail after the wrapped call ran
	code  preview.Code
	delay time.Duration
	spins int
}

func (s *Session) decide(method string) decision {
	s.mu.Lock()
	cfg := s.in.cfg
	s.calls++
	var d decision
	switch {
	case s.crashed:
		d = decision{kind: Crashed, code: preview.Unavailable}
	case s.crashAt > 0 && s.calls >= s.crashAt:
		s.crashed = true
		d = decision{kind: Crash, after: s.rng.IntN(2) == 0, code: preview.Unavailable}
		if d.after {
			d.code = preview.DeadlineExceeded
		}
	default:
		switch x := s.rng.Float64(); {
		case x < cfg.Error:
			d = decision{kind: Error, code: [...]preview.Code{preview.Unavailable, preview.Internal}[s.rng.IntN(2)]}
		case x < cfg.Error+cfg.Timeout:
			d = decision{kind: Timeout, code: preview.DeadlineExceeded}
		case x < cfg.Error+cfg.Timeout+cfg.ErrorAfter:
			d = decision{kind: ErrorAfter, after: true, code: [...]preview.Code{preview.Internal, preview.DeadlineExceeded}[s.rng.IntN(2)]}
		case x < cfg.Error+cfg.Timeout+cfg.ErrorAfter+cfg.Slow:
			d.kind = Slow
			if cfg.MaxDelay > 0 {
				d.delay = time.Duration(s.rng.Int64N(int64(cfg.MaxDelay)) + 1)
			} else {
				d.spins = 1 + s.rng.IntN(64)
			}
		}
	}
	if d.kind.Failure() {
		s.faults++
	}
	s.mu.Unlock()
	s.in.count(d.kind, method)
	return d
}

func (s *Session) fault(d decision, method string) error {
	return preview.WithCode(d.code, &Fault{Kind: d.kind, Session: s.name, Method: method, Code: d.code})
}

// do runs one call of method through the Session's faults.
func do[T any](ctx context.Context, s *Session, method string, call func(context.Context) (T, error)) (T, error) {
	var zero T
	d := s.decide(method)
	switch {
	case d.kind.Failure() && !d.after:
		return zero, s.fault(d, method)
	case d.delay > 0:
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	case d.spins > 0:
		for range d.spins {
			runtime.Gosched()
		}
	}
	v, err := call(ctx)
	if d.after {
		if c, ok := any(v).(io.Closer); ok && err == nil && c != nil {
			c.Close() // the reply is lost: nobody else will close it
		}
		return zero, s.fault(d, method)
	}
	return v, err
}

func do0(ctx context.Context, s *Session, method string, call func(context.Context) error) error {
	_, err := do(ctx, s, method, func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) })
	return err
}

// Builder wraps b. Build is subject to faults.
func (s *Session) Builder(b preview.Builder) preview.Builder { return builder{s, b} }

// Registry wraps r. Repository does no I/O and is passed through;
// Resolve, Tags and DeleteTag are subject to faults. Optional interfaces
// of r (preview.AppLister, preview.ManifestDeleter) are not forwarded.
func (s *Session) Registry(r preview.Registry) preview.Registry { return registry{s, r} }

// Runtime wraps rt; every method is subject to faults. When rt is a
// preview.GenerationRemover, so is the wrapper; its DeliversSecrets
// (preview.SecretsRuntime) answers as rt does.
func (s *Session) Runtime(rt preview.FunctionRuntime) preview.FunctionRuntime {
	w := fnRuntime{s, rt}
	if gr, ok := rt.(preview.GenerationRemover); ok {
		return fnRemover{w, gr}
	}
	return w
}

// Assets wraps a; every method is subject to faults.
func (s *Session) Assets(a preview.AssetStore) preview.AssetStore { return assets{s, a} }

// Router wraps r; every method is subject to faults. Optional interfaces
// of r (preview.ActivityReporter) are not forwarded.
func (s *Session) Router(r preview.Router) preview.Router { return router{s, r} }

// DNS wraps d; every method is subject to faults.
func (s *Session) DNS(d preview.DNS) preview.DNS { return dns{s, d} }

type builder struct {
	s *Session
	b preview.Builder
}

func (w builder) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	return do(ctx, w.s, "Builder.Build", func(ctx context.Context) (preview.BuildResult, error) { return w.b.Build(ctx, req) })
}

type registry struct {
	s *Session
	r preview.Registry
}

func (w registry) Repository(app string) string { return w.r.Repository(app) }

func (w registry) Resolve(ctx context.Context, ref string) (string, error) {
	return do(ctx, w.s, "Registry.Resolve", func(ctx context.Context) (string, error) { return w.r.Resolve(ctx, ref) })
}

func (w registry) Tags(ctx context.Context, app string) ([]string, error) {
	return do(ctx, w.s, "Registry.Tags", func(ctx context.Context) ([]string, error) { return w.r.Tags(ctx, app) })
}

func (w registry) DeleteTag(ctx context.Context, app, tag string) error {
	return do0(ctx, w.s, "Registry.DeleteTag", func(ctx context.Context) error { return w.r.DeleteTag(ctx, app, tag) })
}

type fnRuntime struct {
	s  *Session
	rt preview.FunctionRuntime
}

func (w fnRuntime) Apply(ctx context.Context, fn preview.Function) error {
	return do0(ctx, w.s, "Runtime.Apply", func(ctx context.Context) error { return w.rt.Apply(ctx, fn) })
}

func (w fnRuntime) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	return do(ctx, w.s, "Runtime.Get", func(ctx context.Context) (preview.FunctionStatus, error) { return w.rt.Get(ctx, name) })
}

func (w fnRuntime) List(ctx context.Context, sel preview.Labels) ([]preview.FunctionStatus, error) {
	return do(ctx, w.s, "Runtime.List", func(ctx context.Context) ([]preview.FunctionStatus, error) { return w.rt.List(ctx, sel) })
}

func (w fnRuntime) Scale(ctx context.Context, name string, replicas int) (int, error) {
	return do(ctx, w.s, "Runtime.Scale", func(ctx context.Context) (int, error) { return w.rt.Scale(ctx, name, replicas) })
}

func (w fnRuntime) Remove(ctx context.Context, name string) error {
	return do0(ctx, w.s, "Runtime.Remove", func(ctx context.Context) error { return w.rt.Remove(ctx, name) })
}

type fnRemover struct {
	fnRuntime
	gr preview.GenerationRemover
}

func (w fnRemover) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	return do(ctx, w.s, "Runtime.RemoveOlder", func(ctx context.Context) (bool, error) { return w.gr.RemoveOlder(ctx, name, below) })
}

type assets struct {
	s *Session
	a preview.AssetStore
}

func (w assets) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	return do(ctx, w.s, "Assets.Publish", func(ctx context.Context) (preview.PublishStats, error) {
		return w.a.Publish(ctx, prefix, m, labels, open)
	})
}

func (w assets) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	return do(ctx, w.s, "Assets.Manifest", func(ctx context.Context) (preview.Manifest, error) { return w.a.Manifest(ctx, prefix) })
}

func (w assets) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	return do(ctx, w.s, "Assets.Open", func(ctx context.Context) (io.ReadCloser, error) { return w.a.Open(ctx, digest) })
}

func (w assets) List(ctx context.Context, sel preview.Labels) ([]preview.ManifestInfo, error) {
	return do(ctx, w.s, "Assets.List", func(ctx context.Context) ([]preview.ManifestInfo, error) { return w.a.List(ctx, sel) })
}

func (w assets) Delete(ctx context.Context, prefix string) error {
	return do0(ctx, w.s, "Assets.Delete", func(ctx context.Context) error { return w.a.Delete(ctx, prefix) })
}

type router struct {
	s *Session
	r preview.Router
}

func (w router) Route(ctx context.Context, host string) (preview.Route, error) {
	return do(ctx, w.s, "Router.Route", func(ctx context.Context) (preview.Route, error) { return w.r.Route(ctx, host) })
}

func (w router) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	return do(ctx, w.s, "Router.SetRoute", func(ctx context.Context) (preview.Route, error) { return w.r.SetRoute(ctx, r) })
}

func (w router) Routes(ctx context.Context, sel preview.Labels) ([]preview.Route, error) {
	return do(ctx, w.s, "Router.Routes", func(ctx context.Context) ([]preview.Route, error) { return w.r.Routes(ctx, sel) })
}

func (w router) DeleteRoute(ctx context.Context, host string) error {
	return do0(ctx, w.s, "Router.DeleteRoute", func(ctx context.Context) error { return w.r.DeleteRoute(ctx, host) })
}

type dns struct {
	s *Session
	d preview.DNS
}

func (w dns) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	return do0(ctx, w.s, "DNS.Ensure", func(ctx context.Context) error { return w.d.Ensure(ctx, host, labels) })
}

func (w dns) Hosts(ctx context.Context, sel preview.Labels) ([]string, error) {
	return do(ctx, w.s, "DNS.Hosts", func(ctx context.Context) ([]string, error) { return w.d.Hosts(ctx, sel) })
}

func (w dns) Remove(ctx context.Context, host string) error {
	return do0(ctx, w.s, "DNS.Remove", func(ctx context.Context) error { return w.d.Remove(ctx, host) })
}

// DeliversSecrets forwards the wrapped runtime's answer
// (preview.SecretsRuntime).
func (w fnRuntime) DeliversSecrets() bool {
	sr, ok := w.rt.(preview.SecretsRuntime)
	return ok && sr.DeliversSecrets()
}

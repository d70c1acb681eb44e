package preview_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
	"github.com/glimpse-dev/glimpse/preview/previewtest/faulty"
)

// TestPropertySchedules checks principles 1-3 of ARCHITECTURE.md (the
// infrastructure is the state; every change is idempotent; newest commit
// wins and Down is final) on random schedules. For each seed it runs, on
// a Pipeline over the in-memory providers wrapped by package faulty,
// 4 to 12 concurrent Ups, Downs and GCs of 2 or 3 pull requests of one app
// (four commits: three with a function, two of which share its source,
// and one static only), some Ups with an explicit Generation (a CI run
// number: the same number always carries the same commit) and some with
// Force; operations start at once or when an earlier one ends. Then it
// checks the state (see checkPR for the exact rules), runs one clean pass
// without faults (for each pull request the operation that claimed last is
// repeated: an Up of its commit, or a Down; then GC) and checks that the
// result is exactly the newest commit's preview, whole, or nothing.
//
// The short run (the default) takes 200 seeds. More:
//
//	GLIMPSE_PROPERTY_SEEDS=20000 go test -run TestPropertySchedules ./preview/
//
// and one seed, printing its schedule and outcome (replay a failure):
//
//	GLIMPSE_PROPERTY_SEED=1234 go test -v -run TestPropertySchedules ./preview/
//
// GLIMPSE_PROPERTY_FIRST sets the first seed of a run (default 1);
// GLIMPSE_PROPERTY_DUMP names a file that gets every failing seed's
// schedule, violations and ledger (only three are printed). A
// replayed seed repeats the schedule and every operation's faults; the
// interleaving of the goroutines can differ, so a rare race may need the
// seed run a few times (-count).
func TestPropertySchedules(t *testing.T) {
	n, first := 200, uint64(1)
	if testing.Short() {
		n = 50
	}
	if v := os.Getenv("GLIMPSE_PROPERTY_SEEDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("GLIMPSE_PROPERTY_SEEDS=%q: want a positive number", v)
		}
	}
	if v := os.Getenv("GLIMPSE_PROPERTY_FIRST"); v != "" {
		var err error
		if first, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("GLIMPSE_PROPERTY_FIRST=%q: want a number", v)
		}
	}
	replay := os.Getenv("GLIMPSE_PROPERTY_SEED")
	if replay != "" {
		s, err := strconv.ParseUint(replay, 10, 64)
		if err != nil {
			t.Fatalf("GLIMPSE_PROPERTY_SEED=%q: want a number", replay)
		}
		first, n = s, 1
	}
	var dump io.Writer
	if p := os.Getenv("GLIMPSE_PROPERTY_DUMP"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dump = f
	}
	commits := propCommits(t)
	var sum propSummary
	failed := 0
	for seed := first; seed < first+uint64(n); seed++ {
		r := runSchedule(t, seed, commits)
		sum.add(r)
		if replay != "" {
			t.Logf("seed %d:\n%s", seed, r.describe())
		}
		if len(r.violations) > 0 {
			failed++
			if dump != nil {
				fmt.Fprintf(dump, "=== seed %d\n%s\n", seed, r.describe())
			}
			if failed <= 3 {
				t.Errorf("seed %d: %d invariant violation(s); replay with GLIMPSE_PROPERTY_SEED=%d go test -v -run TestPropertySchedules ./preview/\n%s",
					seed, len(r.violations), seed, r.describe())
			}
		}
	}
	if failed > 3 {
		t.Errorf("%d more seeds failed (%d of %d)", failed-3, failed, n)
	}
	t.Logf("%s", sum.String())
}

const (
	propApp    = "hello"
	propOwner  = "prop"
	propDomain = "localhost"
	propPRs    = 3
)

// propCommit is one commit of the app: its directory, spec, and the page
// and function source it has.
type propCommit struct {
	sha, page, fn string
	dir           string
	spec          preview.Spec
}

func (c propCommit) static() bool { return c.spec.Function == nil }

func propCommits(t *testing.T) []propCommit {
	root := t.TempDir()
	var out []propCommit
	for i, fn := range []string{"fn one", "fn two", "fn one", ""} {
		c := propCommit{sha: strings.Repeat(string(rune('a'+i)), 40), page: fmt.Sprintf("page of commit %d", i), fn: fn}
		c.dir = filepath.Join(root, strconv.Itoa(i))
		must(t, os.MkdirAll(filepath.Join(c.dir, "public"), 0o755))
		must(t, os.WriteFile(filepath.Join(c.dir, "public", "index.html"), []byte(c.page), 0o644))
		must(t, os.WriteFile(filepath.Join(c.dir, "public", "lib.js"), []byte("shared by every commit"), 0o644))
		c.spec = preview.Spec{App: propApp, Assets: &preview.AssetsSpec{}}
		if fn != "" {
			must(t, os.MkdirAll(filepath.Join(c.dir, "function"), 0o755))
			must(t, os.WriteFile(filepath.Join(c.dir, "function", "main.go"), []byte("package main // "+fn+"\n"), 0o644))
			c.spec.Function = &preview.FunctionSpec{}
		}
		out = append(out, c)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type opKind int

const (
	opUp opKind = iota
	opDown
	opGC
)

// propOp is one operation of a schedule and, once run, what it did.
type propOp struct {
	id     int
	kind   opKind
	pr     int
	commit int   // index into the commits
	gen    int64 // UpRequest.Generation
	force  bool
	after  int  // -1, or the op whose end this one waits for
	clean  bool // part of the clean pass

	err    error
	sess   *faulty.Session
	faults bool // sess.Faulted() after the op
	// From the ledger: the op's route writes (an Up: claim, then switch;
	// a Down: its tombstone) and, for a Down that wrote none, the
	// tombstone it read.
	writes   []ledgerEntry
	tombRead *ledgerEntry
	eventGen int64 // from the StepClaim event, 0 when none
}

func (o *propOp) failed() bool { return o.err != nil }

// claimSeq is the op's place in the claim order (the ledger sequence of
// its claim), 0 when it claimed nothing.
func (o *propOp) claimSeq() int {
	if len(o.writes) > 0 {
		return o.writes[0].seq
	}
	if o.kind == opDown && o.tombRead != nil {
		return o.tombRead.seq
	}
	return 0
}

func (o *propOp) claimGen() int64 {
	if len(o.writes) > 0 {
		return o.writes[0].route.Generation
	}
	if o.kind == opDown && o.tombRead != nil {
		return o.tombRead.route.Generation
	}
	return 0
}

// switchEntry is an Up's route switch, nil when it did not switch.
func (o *propOp) switchEntry() *ledgerEntry {
	// An Up's route writes are its claim, then its switch (serving its
	// generation), or instead the failure it records on its claim
	// (Route.Failure), which switches nothing.
	if o.kind == opUp && len(o.writes) > 1 && o.writes[1].route.Served == o.claimGen() {
		return &o.writes[1]
	}
	return nil
}

func (o *propOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d", o.id)
	switch o.kind {
	case opUp:
		fmt.Fprintf(&b, " up   pr=%d commit=%d", o.pr, o.commit)
		if o.gen != 0 {
			fmt.Fprintf(&b, " gen=%d", o.gen)
		}
		if o.force {
			b.WriteString(" force")
		}
	case opDown:
		fmt.Fprintf(&b, " down pr=%d", o.pr)
	case opGC:
		b.WriteString(" gc")
	}
	if o.after >= 0 {
		fmt.Fprintf(&b, " after=#%d", o.after)
	}
	if o.clean {
		b.WriteString(" (clean pass)")
	}
	if s := o.claimSeq(); s > 0 {
		fmt.Fprintf(&b, " | claimed gen %d at @%d", o.claimGen(), s)
	}
	if e := o.switchEntry(); e != nil {
		fmt.Fprintf(&b, ", switched at @%d", e.seq)
	}
	if o.err != nil {
		fmt.Fprintf(&b, " | err: %s", oneLine(o.err))
	} else {
		b.WriteString(" | ok")
	}
	if o.faults {
		b.WriteString(" [faulted")
		if o.sess.Crashed() {
			b.WriteString(", crashed")
		}
		b.WriteString("]")
	}
	return b.String()
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// ledgerEntry is one write (or route read) that reached an in-memory
// provider.
type ledgerEntry struct {
	seq    int
	op     int
	method string // apply, remove, publish, delete, ensure, unensure, set, read
	key    string // function name, prefix or host
	gen    int64
	route  preview.Route // set, read
	commit string
}

func (e ledgerEntry) String() string {
	s := fmt.Sprintf("@%d #%d %s %s", e.seq, e.op, e.method, e.key)
	switch e.method {
	case "set", "read":
		r := e.route
		s += fmt.Sprintf(" gen=%d served=%d deleted=%v prefix=%q fn=%q commit=%.7s version=%s", r.Generation, r.Served, r.Deleted, r.AssetPrefix, r.Function, r.Labels[preview.LabelCommit], r.Version)
	case "apply", "publish":
		s += fmt.Sprintf(" gen=%d commit=%.7s", e.gen, e.commit)
	}
	return s
}

// ledger records, in order, every write that reached the in-memory
// providers and every route read. Each recorded call runs under the
// ledger's lock, so the order of entries is the order of the effects; the
// in-memory providers are atomic per call, so this loses no interleaving
// that matters.
type ledger struct {
	mu      sync.Mutex
	entries []ledgerEntry
}

func (l *ledger) record(op int, f func() (ledgerEntry, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := f()
	if err == nil {
		e.op, e.seq = op, len(l.entries)+1
		l.entries = append(l.entries, e)
	}
	return err
}

func (l *ledger) last(key string, methods ...string) *ledgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.entries) - 1; i >= 0; i-- {
		e := &l.entries[i]
		if e.key == key && contains(methods, e.method) {
			return e
		}
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

type ledgerRuntime struct {
	*previewtest.MemRuntime
	l  *ledger
	op int
}

func (w ledgerRuntime) Apply(ctx context.Context, fn preview.Function) error {
	return w.l.record(w.op, func() (ledgerEntry, error) {
		return ledgerEntry{method: "apply", key: fn.Name, gen: preview.GenerationOf(fn.Annotations), commit: fn.Env["GLIMPSE_COMMIT"]}, w.MemRuntime.Apply(ctx, fn)
	})
}

func (w ledgerRuntime) Remove(ctx context.Context, name string) error {
	return w.l.record(w.op, func() (ledgerEntry, error) {
		return ledgerEntry{method: "remove", key: name}, w.MemRuntime.Remove(ctx, name)
	})
}

func (w ledgerRuntime) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	var removed bool
	err := w.l.record(w.op, func() (ledgerEntry, error) {
		var err error
		removed, err = w.MemRuntime.RemoveOlder(ctx, name, below)
		if err == nil && !removed {
			err = errNotRecorded
		}
		return ledgerEntry{method: "remove", key: name}, err
	})
	if err == errNotRecorded {
		err = nil
	}
	return removed, err
}

// errNotRecorded makes ledger.record skip a call that changed nothing.
var errNotRecorded = errors.New("nothing to record")

type ledgerAssets struct {
	*previewtest.MemAssets
	l  *ledger
	op int
}

func (w ledgerAssets) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	var st preview.PublishStats
	err := w.l.record(w.op, func() (ledgerEntry, error) {
		var err error
		st, err = w.MemAssets.Publish(ctx, prefix, m, labels, open)
		return ledgerEntry{method: "publish", key: prefix, gen: preview.GenerationOf(labels), commit: labels[preview.LabelCommit]}, err
	})
	return st, err
}

func (w ledgerAssets) Delete(ctx context.Context, prefix string) error {
	return w.l.record(w.op, func() (ledgerEntry, error) {
		return ledgerEntry{method: "delete", key: prefix}, w.MemAssets.Delete(ctx, prefix)
	})
}

type ledgerDNS struct {
	*previewtest.MemDNS
	l  *ledger
	op int
}

func (w ledgerDNS) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	return w.l.record(w.op, func() (ledgerEntry, error) {
		return ledgerEntry{method: "ensure", key: host, commit: labels[preview.LabelCommit]}, w.MemDNS.Ensure(ctx, host, labels)
	})
}

func (w ledgerDNS) Remove(ctx context.Context, host string) error {
	return w.l.record(w.op, func() (ledgerEntry, error) {
		return ledgerEntry{method: "unensure", key: host}, w.MemDNS.Remove(ctx, host)
	})
}

type ledgerRouter struct {
	*previewtest.MemRouter
	l  *ledger
	op int
}

func (w ledgerRouter) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	var stored preview.Route
	err := w.l.record(w.op, func() (ledgerEntry, error) {
		var err error
		stored, err = w.MemRouter.SetRoute(ctx, r)
		return ledgerEntry{method: "set", key: stored.Host, route: stored}, err
	})
	return stored, err
}

func (w ledgerRouter) Route(ctx context.Context, host string) (preview.Route, error) {
	var got preview.Route
	err := w.l.record(w.op, func() (ledgerEntry, error) {
		var err error
		got, err = w.MemRouter.Route(ctx, host)
		return ledgerEntry{method: "read", key: got.Host, route: got}, err
	})
	return got, err
}

// world is the in-memory state one schedule runs against.
type world struct {
	commits []propCommit
	reg     *previewtest.MemRegistry
	builder *previewtest.MemBuilder
	rt      *previewtest.MemRuntime
	assets  *previewtest.MemAssets
	router  *previewtest.MemRouter
	dns     *previewtest.MemDNS
	led     *ledger
}

func newWorld(commits []propCommit) *world {
	w := &world{commits: commits, reg: previewtest.NewMemRegistry(), rt: previewtest.NewMemRuntime(), assets: previewtest.NewMemAssets(),
		router: previewtest.NewMemRouter(), dns: previewtest.NewMemDNS(), led: &ledger{}}
	w.builder = &previewtest.MemBuilder{Registry: w.reg}
	return w
}

// pipeline returns a Pipeline for op o over s's faults and the ledger.
func (w *world) pipeline(o *propOp, s *faulty.Session) *preview.Pipeline {
	return &preview.Pipeline{
		Builder:  s.Builder(w.builder),
		Registry: s.Registry(w.reg),
		Runtime:  s.Runtime(ledgerRuntime{w.rt, w.led, o.id}),
		Assets:   s.Assets(ledgerAssets{w.assets, w.led, o.id}),
		Router:   s.Router(ledgerRouter{w.router, w.led, o.id}),
		DNS:      s.DNS(ledgerDNS{w.dns, w.led, o.id}),
		Owner:    propOwner, BaseDomain: propDomain,
		OnEvent: func(e preview.Event) {
			if e.Step == preview.StepClaim && e.State == preview.EventDone {
				fmt.Sscanf(e.Message, "generation %d", &o.eventGen)
			}
		},
	}
}

func (w *world) run(o *propOp, s *faulty.Session) {
	o.sess = s
	pl := w.pipeline(o, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch o.kind {
	case opUp:
		c := w.commits[o.commit]
		_, o.err = pl.Up(ctx, preview.UpRequest{Dir: c.dir, Spec: c.spec, PR: o.pr, Commit: c.sha, Generation: o.gen, Force: o.force})
	case opDown:
		o.err = pl.Down(ctx, propApp, o.pr)
	case opGC:
		_, o.err = pl.GC(ctx, preview.GCOptions{Apps: []string{propApp}})
	}
	if ctx.Err() != nil {
		o.err = fmt.Errorf("did not finish in 30s (a hang?): %w", o.err)
	}
	o.faults = s.Faulted()
}

// scheduleResult is what one seed did and found.
type scheduleResult struct {
	seed       uint64
	cfg        faulty.Config
	faultFree  map[int]bool // PRs whose ops were given no faults
	strictPRs  int          // PRs none of whose ops had a fault
	ops        []*propOp
	stats      faulty.Stats
	violations []string
	led        *ledger
}

func (r *scheduleResult) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "faults: %+v; PRs without faults: %v\n", r.cfg, sortedKeys(r.faultFree))
	for _, o := range r.ops {
		fmt.Fprintf(&b, "  %s\n", o)
	}
	fmt.Fprintf(&b, "injected: %s\n", strings.ReplaceAll(r.stats.String(), "\n", "\n  "))
	if len(r.violations) > 0 {
		b.WriteString("violations:\n")
		for _, v := range r.violations {
			fmt.Fprintf(&b, "  - %s\n", v)
		}
		b.WriteString("ledger (every write that reached a provider, and route reads):\n")
		r.led.mu.Lock()
		for _, e := range r.led.entries {
			fmt.Fprintf(&b, "  %s\n", e)
		}
		r.led.mu.Unlock()
	}
	return b.String()
}

func sortedKeys(m map[int]bool) []int {
	var out []int
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Ints(out)
	return out
}

// genSchedule draws the ops and fault rates of seed.
func genSchedule(seed uint64, nCommits int) (ops []*propOp, cfg faulty.Config, faultFree map[int]bool, nPR int) {
	rng := rand.New(rand.NewPCG(seed, 0x676c696d707365))
	nPR = 2 + rng.IntN(propPRs-1)
	// A CI run table per PR: run k (generation 1000k) builds one commit.
	ci := map[int][]int{}
	for pr := 1; pr <= nPR; pr++ {
		for k := 0; k < 5; k++ {
			ci[pr] = append(ci[pr], rng.IntN(nCommits))
		}
	}
	switch rng.IntN(4) {
	case 0: // no faults, only reordering
		cfg = faulty.Config{Slow: 0.4}
	default:
		cfg = faulty.Config{
			Error:      rng.Float64() * 0.06,
			Timeout:    rng.Float64() * 0.03,
			ErrorAfter: rng.Float64() * 0.06,
			Slow:       0.2 + rng.Float64()*0.3,
			Crash:      rng.Float64() * 0.3,
		}
	}
	if rng.IntN(2) == 0 {
		cfg.MaxDelay = time.Duration(1+rng.IntN(300)) * time.Microsecond
	}
	faultFree = map[int]bool{}
	if rng.IntN(2) == 0 {
		faultFree[1+rng.IntN(nPR)] = true
	}
	n := 4 + rng.IntN(9)
	for i := range n {
		o := &propOp{id: i, pr: 1 + rng.IntN(nPR), commit: rng.IntN(nCommits), after: -1}
		switch x := rng.IntN(100); {
		case x < 65:
			o.kind = opUp
			switch y := rng.IntN(100); {
			case y < 25: // a CI run (or its re-run)
				k := 1 + rng.IntN(4)
				o.gen, o.commit = int64(1000*k), ci[o.pr][k]
			case y < 40:
				o.force = true
				if rng.IntN(2) == 0 {
					k := 1 + rng.IntN(4)
					o.gen, o.commit = int64(1000*k), ci[o.pr][k]
				}
			}
		case x < 87:
			o.kind = opDown
		default:
			o.kind = opGC
		}
		if i > 0 && rng.IntN(2) == 0 {
			o.after = rng.IntN(i)
		}
		ops = append(ops, o)
	}
	return ops, cfg, faultFree, nPR
}

func runSchedule(t *testing.T, seed uint64, commits []propCommit) *scheduleResult {
	ops, cfg, faultFree, nPR := genSchedule(seed, len(commits))
	w := newWorld(commits)
	res := &scheduleResult{seed: seed, cfg: cfg, faultFree: faultFree, ops: ops, led: w.led}
	inj := faulty.New(seed, cfg)
	calm := faulty.New(seed, faulty.Config{Slow: cfg.Slow, MaxDelay: cfg.MaxDelay})
	sessions := make([]*faulty.Session, len(ops))
	for i, o := range ops {
		in := inj
		if o.kind != opGC && faultFree[o.pr] {
			in = calm
		}
		sessions[i] = in.Session(fmt.Sprintf("op #%d", o.id))
	}
	done := make([]chan struct{}, len(ops))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			if o.after >= 0 {
				<-done[o.after]
			}
			w.run(o, sessions[i])
		}()
	}
	wg.Wait()
	res.stats = inj.Stats().Add(calm.Stats())
	w.attribute(ops)

	c := &checker{w: w, res: res, phase: "after the schedule"}
	for pr := 1; pr <= nPR; pr++ {
		strict := true
		for _, o := range ops {
			if o.pr == pr && o.kind != opGC && o.faults {
				strict = false
			}
		}
		if strict {
			res.strictPRs++
		}
		c.checkPR(pr, strict, false)
	}
	c.checkList()

	// The clean pass: for each PR the op that claimed last is repeated
	// without faults (an Up of its commit with the next generation, or a
	// Down; a PR nothing claimed gets a Down), then GC.
	clean := faulty.New(seed, faulty.Config{})
	for pr := 1; pr <= nPR; pr++ {
		var lastClaim *propOp
		for _, o := range ops {
			if o.pr == pr && o.kind != opGC && o.claimSeq() > 0 && (lastClaim == nil || o.claimSeq() > lastClaim.claimSeq()) {
				lastClaim = o
			}
		}
		o := &propOp{id: len(res.ops), kind: opDown, pr: pr, after: -1, clean: true}
		if lastClaim != nil && lastClaim.kind == opUp {
			o.kind, o.commit = opUp, lastClaim.commit
		}
		res.ops = append(res.ops, o)
		w.run(o, clean.Session(fmt.Sprintf("clean #%d", o.id)))
	}
	gc := &propOp{id: len(res.ops), kind: opGC, after: -1, clean: true}
	res.ops = append(res.ops, gc)
	w.run(gc, clean.Session("clean gc"))
	w.attribute(res.ops)
	c.phase = "after the clean pass"
	for _, o := range res.ops {
		if o.clean && o.err != nil {
			c.bad("clean-pass op failed", "%s", o)
		}
	}
	for pr := 1; pr <= nPR; pr++ {
		c.checkPR(pr, true, true)
	}
	c.checkClean(nPR)
	return res
}

// attribute reads each op's claim and switch from the ledger and checks
// them against the op's StepClaim event.
func (w *world) attribute(ops []*propOp) {
	w.led.mu.Lock()
	defer w.led.mu.Unlock()
	for _, o := range ops {
		o.writes, o.tombRead = nil, nil
	}
	for i := range w.led.entries {
		e := w.led.entries[i]
		if e.op >= len(ops) {
			continue
		}
		o := ops[e.op]
		switch {
		case e.method == "set":
			o.writes = append(o.writes, e)
		case e.method == "read" && e.route.Deleted && len(o.writes) == 0:
			o.tombRead = &e
		}
	}
}

type checker struct {
	w     *world
	res   *scheduleResult
	phase string
}

func (c *checker) bad(category, format string, args ...any) {
	c.res.violations = append(c.res.violations, fmt.Sprintf("[%s] %s: %s", c.phase, category, fmt.Sprintf(format, args...)))
}

// prState is what the providers hold for one pull request.
type prState struct {
	host      string
	route     preview.Route
	routeOK   bool
	fns       []preview.FunctionStatus
	manifests []preview.ManifestInfo
	dns       []string
}

func (c *checker) state(pr int) prState {
	ctx := context.Background()
	w := c.w
	st := prState{host: preview.Host(propApp, pr, propDomain)}
	r, err := w.router.Route(ctx, st.host)
	st.route, st.routeOK = r, err == nil
	sel := preview.Selector(propOwner, propApp, pr)
	st.fns, _ = w.rt.List(ctx, sel)
	st.manifests, _ = w.assets.List(ctx, sel)
	st.dns, _ = w.dns.Hosts(ctx, sel)
	return st
}

func (st prState) hasContent() bool {
	return st.routeOK && !st.route.Deleted && (st.route.AssetPrefix != "" || st.route.Function != "")
}

func (c *checker) commitOf(sha string) (propCommit, bool) {
	for _, cm := range c.w.commits {
		if cm.sha == sha {
			return cm, true
		}
	}
	return propCommit{}, false
}

func (c *checker) op(id int) *propOp {
	if id >= 0 && id < len(c.res.ops) {
		return c.res.ops[id]
	}
	return nil
}

// checkPR checks one pull request's state. The rules, where "claim
// order" is the order in which ops claimed (wrote their claim, or for a
// Down that found a tombstone, read it) and T is the last op in claim
// order that succeeded:
//
// Always (whatever failed):
//   - newest wins, no roll-back: when T is an Up of generation u, the
//     route serves generation u or that of an Up claimed after T (which
//     failed), or serves nothing because an op claimed after T (which
//     failed) wrote a tombstone or an empty claim over one.
//   - Down is final: when T is a Down, the route is its tombstone or was
//     written by ops claimed after T (which failed), and serves only what
//     such an op switched to; what else is left is residue (below).
//   - no 404 and no mix of assets: a route with content names a manifest
//     that exists, whose blobs exist and whose page is the commit the
//     route is labelled with; the function it names exists. The function
//     runs that commit, unless an Up claimed after the route's switch
//     applied its own and then failed before switching (the function is
//     one per pull request and replaced before the switch: accepted
//     residue until the next Up).
//   - residue only from failed ops: a function not named by a route with
//     content, a manifest the route does not name, a DNS record of a host
//     without content, were last written by an op that failed (an
//     injected fault, a crash, or superseded), or by an op X such that an
//     op that claimed after both X and T failed (collecting X's leftovers
//     was that op's job). So a successful op's writes never outlive a
//     later successful op (its Down or its clean-up) unless an op after
//     both failed.
//   - a preview whose route was switched by a successful op has its DNS
//     record, unless an op that had a fault removed it last. DNS has no
//     conditional writes: the record follows the route because every op
//     reads the route again after writing the record and corrects
//     (Pipeline.syncDNS); an op that dies, or loses that read, between a
//     stale write and the correction leaves the record out of step with
//     the route until the next Up or Down of the pull request.
//
// So what must never appear, before the clean pass or after it: a
// resource whose last writer succeeded and that a later successful op (a
// Down, an Up's clean-up) had to remove, unless an op after both failed;
// a route naming a missing manifest, blob or function; a served page of
// another commit than the route's; a route serving what an op claimed
// before T switched to.
//
// When strict (no fault was injected into any op of the pull request):
// every op succeeded or was superseded, the last op in claim order
// succeeded, and the state is exactly its result: for an Up the route
// serves its generation and commit, the served manifest is the only one,
// the function exists exactly when the commit has one and runs it, the
// DNS record exists; for a Down the route is a tombstone and nothing else
// exists. After the clean pass every pull request is checked strictly.
func (c *checker) checkPR(pr int, strict, afterClean bool) {
	st := c.state(pr)
	var claimed []*propOp
	for _, o := range c.res.ops {
		if o.pr == pr && o.kind != opGC {
			if !afterClean && o.clean {
				continue
			}
			if o.eventGen != 0 && (len(o.writes) == 0 || o.writes[0].route.Generation != o.eventGen) {
				c.bad("claim event", "%s: the StepClaim event says generation %d, the ledger %v", o, o.eventGen, o.writes)
			}
			if o.claimSeq() > 0 {
				claimed = append(claimed, o)
			}
		}
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].claimSeq() < claimed[j].claimSeq() })
	var T *propOp
	for _, o := range claimed {
		if !o.failed() {
			T = o
		}
	}
	r := st.route
	after := func(o *propOp, ref *propOp) bool { return ref == nil || o.claimSeq() > ref.claimSeq() }

	// The op whose switch put the route's content there.
	var S *propOp
	if st.hasContent() {
		for _, o := range claimed {
			if e := o.switchEntry(); e != nil && e.route.Served == r.Served && (S == nil || e.seq > S.switchEntry().seq) {
				S = o
			}
		}
		if S == nil {
			c.bad("route", "PR %d: the route serves generation %d, which no Up switched to", pr, r.Served)
		}
	}

	// No roll-back; Down final for the route.
	if T != nil && T.kind == opUp {
		switch {
		case !st.routeOK:
			c.bad("newest wins", "PR %d: %s succeeded, and there is no route", pr, T)
		case !st.hasContent():
			// A tombstone, or an empty claim over one: written by an op
			// that claimed after T (and failed).
			if wr := c.routeWriter(r); wr == nil || !after(wr, T) || !wr.failed() {
				c.bad("newest wins", "PR %d: %s succeeded last, and the route, serving nothing, was written by %v", pr, T, wr)
			}
		case r.Served < T.claimGen():
			c.bad("roll-back", "PR %d: the route serves generation %d, older than %s", pr, r.Served, T)
		case S != nil && S != T && (!after(S, T) || !S.failed()):
			c.bad("newest wins", "PR %d: the route serves %s's switch, not %s's", pr, S, T)
		case S == T && r.Labels[preview.LabelCommit] != c.w.commits[T.commit].sha:
			c.bad("newest wins", "PR %d: the route serves commit %.7s, %s deployed %.7s", pr, r.Labels[preview.LabelCommit], T, c.w.commits[T.commit].sha)
		}
	}
	if T != nil && T.kind == opDown && st.routeOK && !r.Deleted {
		if wr := c.routeWriter(r); wr == nil || !after(wr, T) || !wr.failed() {
			c.bad("down final", "PR %d: %s succeeded last, and the route is live again, written by %v", pr, T, wr)
		}
		if S != nil && (!after(S, T) || !S.failed()) {
			c.bad("down final", "PR %d: %s succeeded last, and the route serves the switch of %s", pr, T, S)
		}
	}

	// The served content is whole and of one commit.
	ctx := context.Background()
	if st.hasContent() {
		cm, ok := c.commitOf(r.Labels[preview.LabelCommit])
		if !ok {
			c.bad("route", "PR %d: the route is labelled with unknown commit %q", pr, r.Labels[preview.LabelCommit])
		}
		if r.AssetPrefix == "" {
			c.bad("whole", "PR %d: the route names no manifest", pr)
		} else if m, err := c.w.assets.Manifest(ctx, r.AssetPrefix); err != nil {
			c.bad("404", "PR %d: the route names manifest %s, which is gone (%v); last written: %v", pr, r.AssetPrefix, err, c.w.led.last(r.AssetPrefix, "publish", "delete"))
		} else {
			for p, f := range m.Files {
				rc, err := c.w.assets.Open(ctx, f.Digest)
				if err != nil {
					c.bad("404", "PR %d: the served manifest's %s names missing blob %s", pr, p, f.Digest)
					continue
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if p == "/index.html" && ok && string(b) != cm.page {
					c.bad("mixed commits", "PR %d: the route of commit %.7s serves page %q", pr, cm.sha, b)
				}
			}
			if _, has := m.Files["/index.html"]; !has {
				c.bad("whole", "PR %d: the served manifest has no /index.html: %v", pr, m.Files)
			}
		}
		if ok && cm.static() != (r.Function == "") {
			c.bad("whole", "PR %d: the route of commit %.7s names function %q", pr, cm.sha, r.Function)
		}
		if r.Function != "" {
			f, err := c.w.rt.Get(ctx, r.Function)
			switch {
			case err != nil:
				c.bad("404", "PR %d: the route names function %s, which is gone (%v); last written: %v", pr, r.Function, err, c.w.led.last(r.Function, "apply", "remove"))
			case f.Env["GLIMPSE_COMMIT"] != r.Labels[preview.LabelCommit]:
				x := c.writer(r.Function, "apply", "remove")
				if strict || x == nil || !x.failed() || S == nil || !after(x, S) {
					c.bad("mixed commits", "PR %d: the route of commit %.7s names function %s running commit %.7s, last applied by %v", pr, r.Labels[preview.LabelCommit], f.Name, f.Env["GLIMPSE_COMMIT"], x)
				}
			}
		}
		if S != nil && !S.failed() && !containsHost(st.dns, st.host) {
			e := c.w.led.last(st.host, "ensure", "unensure")
			if strict || e == nil || e.method != "unensure" || !c.op(e.op).faults {
				c.bad("dns", "PR %d: the preview switched by %s has no DNS record; last written: %v", pr, S, e)
			}
		}
	}

	// Residue only from failed ops: the last writer failed, or an op that
	// claimed after both it and T (whose job collecting it was) failed.
	excused := func(x *propOp) bool {
		if x == nil {
			return false
		}
		if x.failed() {
			return true
		}
		for _, y := range claimed {
			if y.failed() && after(y, x) && after(y, T) {
				return true
			}
		}
		return false
	}
	for _, f := range st.fns {
		if st.hasContent() && r.Function == f.Name {
			continue
		}
		if x := c.writer(f.Name, "apply", "remove"); strict || !excused(x) {
			c.bad("residue", "PR %d: function %s (generation %s, commit %.7s) is left, last applied by %v; route: %s", pr, f.Name, f.Annotations[preview.AnnotationGeneration], f.Env["GLIMPSE_COMMIT"], x, routeString(st))
		}
	}
	for _, m := range st.manifests {
		if st.hasContent() && r.AssetPrefix == m.Prefix {
			continue
		}
		if x := c.writer(m.Prefix, "publish", "delete"); strict || !excused(x) {
			c.bad("residue", "PR %d: manifest %s is left, last published by %v; route: %s", pr, m.Prefix, x, routeString(st))
		}
	}
	for _, h := range st.dns {
		if st.hasContent() && h == st.host {
			continue
		}
		if x := c.writer(h, "ensure", "unensure"); strict || !excused(x) {
			c.bad("residue", "PR %d: DNS record %s is left, last ensured by %v; route: %s", pr, h, x, routeString(st))
		}
	}

	if !strict {
		return
	}
	for _, o := range c.res.ops {
		if o.pr == pr && o.kind != opGC && o.clean == afterClean && o.err != nil &&
			!errors.Is(o.err, preview.ErrSuperseded) && preview.CodeOf(o.err) != preview.Aborted {
			c.bad("fault-free", "PR %d: %s failed though no fault was injected", pr, o)
		}
	}
	if len(claimed) == 0 {
		if st.routeOK || len(st.fns)+len(st.manifests)+len(st.dns) > 0 {
			c.bad("fault-free", "PR %d: nothing claimed, and the state is %s", pr, routeString(st))
		}
		return
	}
	L := claimed[len(claimed)-1]
	if L != T {
		c.bad("fault-free", "PR %d: the last op to claim, %s, did not succeed", pr, L)
		return
	}
	switch T.kind {
	case opUp:
		cm := c.w.commits[T.commit]
		if !st.hasContent() || r.Served != T.claimGen() || r.Generation != T.claimGen() || r.Labels[preview.LabelCommit] != cm.sha {
			c.bad("newest wins", "PR %d: %s claimed last and succeeded; the route is %s", pr, T, routeString(st))
		}
		if !containsHost(st.dns, st.host) {
			c.bad("dns", "PR %d: %s claimed last and succeeded; there is no DNS record", pr, T)
		}
	case opDown:
		if !st.routeOK || !r.Deleted {
			c.bad("down final", "PR %d: %s claimed last and succeeded; the route is %s", pr, T, routeString(st))
		}
	}
}

func containsHost(hs []string, h string) bool { return contains(hs, h) }

func routeString(st prState) string {
	if !st.routeOK {
		return "none"
	}
	r := st.route
	return fmt.Sprintf("{gen=%d served=%d deleted=%v prefix=%q fn=%q commit=%.7s version=%s}", r.Generation, r.Served, r.Deleted, r.AssetPrefix, r.Function, r.Labels[preview.LabelCommit], r.Version)
}

// writer returns the op whose write of key is the last one, nil when
// none (or when the last one was not among the write methods given
// first: a delete).
func (c *checker) writer(key, write, del string) *propOp {
	e := c.w.led.last(key, write, del)
	if e == nil || e.method != write {
		return nil
	}
	return c.op(e.op)
}

// routeWriter returns the op that wrote the route's current version.
func (c *checker) routeWriter(r preview.Route) *propOp {
	c.w.led.mu.Lock()
	defer c.w.led.mu.Unlock()
	for _, e := range c.w.led.entries {
		if e.method == "set" && e.route.Version == r.Version {
			return c.op(e.op)
		}
	}
	return nil
}

// checkList checks, at any time, that List reports a preview as ready or
// sleeping only when its route serves content: an interrupted Up or Down
// is partial, an Up that failed before anything was served failed
// (Route.Failure), unrouted.
func (c *checker) checkList() {
	w := c.w
	pl := &preview.Pipeline{Runtime: w.rt, Assets: w.assets, Router: w.router, Owner: propOwner, BaseDomain: propDomain}
	pvs, err := pl.List(context.Background(), propApp)
	if err != nil {
		c.bad("list", "List: %v", err)
	}
	for _, pv := range pvs {
		if pv.Status == preview.StatusPartial || pv.Status == preview.StatusFailed && pv.Host == "" {
			continue
		}
		if st := c.state(pv.PR); !st.hasContent() {
			c.bad("list", "List reports PR %d as %s, and its route serves nothing: %s", pv.PR, pv.Status, routeString(st))
		}
	}
}

// checkClean checks what only the end of the clean pass guarantees:
// List agrees with the state, and GC kept exactly the images in use.
func (c *checker) checkClean(nPR int) {
	ctx := context.Background()
	w := c.w
	live := map[int]*propOp{}
	for _, o := range c.res.ops {
		if o.clean && o.kind == opUp && o.err == nil {
			live[o.pr] = o
		}
	}
	pl := &preview.Pipeline{Runtime: w.rt, Assets: w.assets, Router: w.router, Owner: propOwner, BaseDomain: propDomain}
	pvs, err := pl.List(ctx, propApp)
	if err != nil {
		c.bad("list", "List: %v", err)
	}
	seen := map[int]bool{}
	for _, pv := range pvs {
		seen[pv.PR] = true
		o := live[pv.PR]
		switch {
		case o == nil:
			c.bad("list", "List reports PR %d (%+v), which was taken down", pv.PR, pv)
		case pv.Status != preview.StatusReady || pv.Commit != w.commits[o.commit].sha || (pv.Function != "") == w.commits[o.commit].static():
			c.bad("list", "List reports %+v for PR %d, whose last Up was %s", pv, pv.PR, o)
		}
	}
	for pr := range live {
		if !seen[pr] {
			c.bad("list", "List does not report PR %d, which is live", pr)
		}
	}
	// GC: every function's image resolves; pr-N tags only for live PRs.
	fns, _ := w.rt.List(ctx, preview.Labels{})
	for _, f := range fns {
		if _, err := w.reg.Resolve(ctx, f.Image); err != nil {
			c.bad("gc", "function %s runs image %s, which no longer resolves: %v", f.Name, f.Image, err)
		}
	}
	tags, _ := w.reg.Tags(ctx, propApp)
	for _, tag := range tags {
		var n int
		var rest string
		if _, err := fmt.Sscanf(tag, "pr-%d-%s", &n, &rest); err == nil && live[n] == nil {
			c.bad("gc", "tag %s is left for PR %d, which has no preview", tag, n)
		}
	}
	for pr := nPR + 1; pr <= propPRs; pr++ {
		if st := c.state(pr); st.routeOK || len(st.fns)+len(st.manifests)+len(st.dns) > 0 {
			c.bad("residue", "PR %d had no op, and has %s", pr, routeString(st))
		}
	}
}

// propSummary adds up the schedules of a run.
type propSummary struct {
	seeds, failedSeeds, ops, faultFreePRs int
	outcomes                              map[string]int
	categories                            map[string]int
	stats                                 faulty.Stats
}

func (s *propSummary) add(r *scheduleResult) {
	if s.outcomes == nil {
		s.outcomes, s.categories = map[string]int{}, map[string]int{}
	}
	s.seeds++
	s.faultFreePRs += r.strictPRs
	if len(r.violations) > 0 {
		s.failedSeeds++
	}
	for _, v := range r.violations {
		_, rest, _ := strings.Cut(v, "] ")
		cat, _, _ := strings.Cut(rest, ":")
		s.categories[cat]++
	}
	for _, o := range r.ops {
		if o.clean {
			continue
		}
		s.ops++
		k := [...]string{"up", "down", "gc"}[o.kind]
		switch {
		case o.err == nil:
			k += " ok"
		case errors.Is(o.err, preview.ErrSuperseded):
			k += " superseded"
		case o.sess.Crashed():
			k += " crashed"
		case faulty.IsFault(o.err):
			k += " failed (injected)"
		default:
			k += " failed (" + preview.CodeOf(o.err).String() + ")"
		}
		s.outcomes[k]++
	}
	s.stats = s.stats.Add(r.stats)
}

func (s propSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d schedules (%d failed), %d ops; %d PRs checked strictly (no fault in any of their ops)\n", s.seeds, s.failedSeeds, s.ops, s.faultFreePRs)
	keys := make([]string, 0, len(s.outcomes))
	for k := range s.outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %d\n", k, s.outcomes[k])
	}
	fmt.Fprintf(&b, "faults: %s\n", s.stats)
	if len(s.categories) > 0 {
		b.WriteString("violations by kind:\n")
		for k, v := range s.categories {
			fmt.Fprintf(&b, "  %-28s %d\n", k, v)
		}
	}
	return b.String()
}

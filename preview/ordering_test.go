package preview_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// Deterministic replays of the schedules TestPropertySchedules found
// (issue 8): each holds one operation at the step where the race was and
// runs another one to the end there.

// withDNS gives the stack a DNS provider and returns it.
func (s *memStack) withDNS() *previewtest.MemDNS {
	d := previewtest.NewMemDNS()
	s.pl.DNS = d
	return d
}

// with returns a Pipeline over the stack's providers with some of them
// replaced (nil leaves the stack's).
func (s *memStack) with(rt preview.FunctionRuntime, router preview.Router, dns preview.DNS, b preview.Builder) *preview.Pipeline {
	p := &preview.Pipeline{Builder: s.pl.Builder, Registry: s.pl.Registry, Runtime: s.pl.Runtime, Assets: s.pl.Assets, Router: s.pl.Router, DNS: s.pl.DNS, BaseDomain: s.pl.BaseDomain, Owner: s.pl.Owner}
	if rt != nil {
		p.Runtime = rt
	}
	if router != nil {
		p.Router = router
	}
	if dns != nil {
		p.DNS = dns
	}
	if b != nil {
		p.Builder = b
	}
	return p
}

func upWith(p *preview.Pipeline, dir string, spec preview.Spec, pr int, c string, gen int64) error {
	_, err := p.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: pr, Commit: c, Generation: gen})
	return err
}

// hookRouter calls after once each SetRoute has stored a route.
type hookRouter struct {
	preview.Router
	after func(stored preview.Route)
}

func (h hookRouter) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	stored, err := h.Router.SetRoute(ctx, r)
	if err == nil {
		h.after(stored)
	}
	return stored, err
}

// failingRouter reads routes but refuses every write.
type failingRouter struct{ preview.Router }

func (failingRouter) SetRoute(context.Context, preview.Route) (preview.Route, error) {
	return preview.Route{}, preview.Errorf(preview.Unavailable, "router unreachable")
}

// hookRuntime calls beforeGet before each Get, afterApply after each
// Apply that succeeded and beforeRemove before each RemoveOlder (nil:
// none).
type hookRuntime struct {
	*previewtest.MemRuntime
	beforeGet, afterApply, beforeRemove func()
}

func (h hookRuntime) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	if h.beforeRemove != nil {
		h.beforeRemove()
	}
	return h.MemRuntime.RemoveOlder(ctx, name, below)
}

func (h hookRuntime) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	if h.beforeGet != nil {
		h.beforeGet()
	}
	return h.MemRuntime.Get(ctx, name)
}

func (h hookRuntime) Apply(ctx context.Context, fn preview.Function) error {
	err := h.MemRuntime.Apply(ctx, fn)
	if err == nil && h.afterApply != nil {
		h.afterApply()
	}
	return err
}

// hookDNS calls beforeRemove before each Remove.
type hookDNS struct {
	preview.DNS
	beforeRemove func()
}

func (h hookDNS) Remove(ctx context.Context, host string) error {
	h.beforeRemove()
	return h.DNS.Remove(ctx, host)
}

// hookBuilder calls before at the start of each Build.
type hookBuilder struct {
	preview.Builder
	before func()
}

func (h hookBuilder) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	h.before()
	return h.Builder.Build(ctx, req)
}

// wantWhole fails t unless PR pr serves page and the function of commit
// fnCommit (or none for ""), with its DNS record.
func (s *memStack) wantWhole(t *testing.T, dns *previewtest.MemDNS, pr int, page, fnCommit string) {
	t.Helper()
	gotPage, gotFn := s.served(t, pr)
	if gotPage != page || gotFn != fnCommit {
		t.Fatalf("PR %d serves page %q and function commit %q; want %q and %q", pr, gotPage, gotFn, page, fnCommit)
	}
	if _, ok := dns.Labels(preview.Host("hello", pr, "localhost")); !ok {
		t.Fatalf("PR %d is served without its DNS record", pr)
	}
}

// wantNothing fails t unless PR pr has no function, manifest or DNS
// record left.
func (s *memStack) wantNothing(t *testing.T, dns *previewtest.MemDNS, pr int) {
	t.Helper()
	ctx := context.Background()
	sel := preview.Selector("test", "hello", pr)
	fns, _ := s.rt.List(ctx, sel)
	ms, _ := s.assets.List(ctx, sel)
	hosts, _ := dns.Hosts(ctx, sel)
	if len(fns)+len(ms)+len(hosts) > 0 {
		t.Fatalf("PR %d after its Down: functions %+v, manifests %+v, DNS %v; want nothing", pr, fns, ms, hosts)
	}
}

// TestDownWithoutTombstoneRemovesNothing (seed 3): a Down that cannot
// write its tombstone used to go on removing the DNS record, function and
// manifests the route still served: a live preview answered 404.
func TestDownWithoutTombstoneRemovesNothing(t *testing.T) {
	s := newMemStack()
	dns := s.withDNS()
	dir, spec := app(t, "page")
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	err := s.with(nil, failingRouter{s.router}, nil, nil).Down(context.Background(), "hello", 1)
	if preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Down with an unreachable router: %v, want Unavailable", err)
	}
	s.wantWhole(t, dns, 1, "page", commit('a'))
}

// TestSlowDownSparesLaterUp (seed 30): an Up that claims after a Down's
// tombstone, while the Down is still removing, keeps what it deployed.
// The Down used to list and remove everything of the pull request,
// including the later Up's manifest, function and DNS record.
func TestSlowDownSparesLaterUp(t *testing.T) {
	for _, at := range []string{"after-tombstone", "in-dns-remove"} {
		t.Run(at, func(t *testing.T) {
			s := newMemStack()
			dns := s.withDNS()
			dirA, spec := app(t, "page A")
			dirB, _ := app(t, "page B")
			if err := s.up(dirA, spec, 1, commit('a')); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			later := func() {
				once.Do(func() {
					if err := s.up(dirB, spec, 1, commit('b')); err != nil {
						t.Errorf("the Up after the tombstone: %v", err)
					}
				})
			}
			var down *preview.Pipeline
			if at == "after-tombstone" {
				down = s.with(nil, hookRouter{s.router, func(r preview.Route) {
					if r.Deleted {
						later()
					}
				}}, nil, nil)
			} else {
				// The Up runs between the Down's reading of the route
				// and its removal of the record.
				down = s.with(nil, nil, hookDNS{dns, later}, nil)
			}
			if err := down.Down(context.Background(), "hello", 1); err != nil {
				t.Fatalf("Down: %v", err)
			}
			s.wantWhole(t, dns, 1, "page B", commit('b'))
			ms, _ := s.assets.List(context.Background(), preview.Selector("test", "hello", 1))
			if len(ms) != 1 {
				t.Fatalf("manifests %+v; want only the later Up's", ms)
			}
		})
	}
}

// TestRetakenGenerationKeepsManifest (seed 18): two Ups of the same CI
// run (same generation, same commit, so the same manifest prefix) race;
// the one that lost used to delete the manifest, which the winner then
// routed.
func TestRetakenGenerationKeepsManifest(t *testing.T) {
	s := newMemStack()
	dns := s.withDNS()
	dir, spec := app(t, "page")
	inBuild, release, aDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var errA error
	go func() {
		defer close(aDone)
		a := s.with(nil, nil, nil, hookBuilder{s.builder, func() { close(inBuild); <-release }})
		errA = upWith(a, dir, spec, 1, commit('a'), 7)
	}()
	<-inBuild
	// B re-takes generation 7; once it has deployed, A resumes, finds
	// itself superseded and gives up before B routes.
	var once sync.Once
	b := s.with(hookRuntime{MemRuntime: s.rt, afterApply: func() { once.Do(func() { close(release); <-aDone }) }}, nil, nil, nil)
	if err := upWith(b, dir, spec, 1, commit('a'), 7); err != nil {
		t.Fatalf("the Up that re-took the generation: %v", err)
	}
	if !errors.Is(errA, preview.ErrSuperseded) {
		t.Fatalf("the Up that was re-taken: %v, want ErrSuperseded", errA)
	}
	s.wantWhole(t, dns, 1, "page", commit('a'))
}

// TestUpDoesNotUndoALaterDown (seed 66): a Down that runs between an
// Up's route switch and the rest of the Up is final. The Up used to find
// its function gone, deploy it again, and create the DNS record again,
// both after the Down, and report success.
func TestUpDoesNotUndoALaterDown(t *testing.T) {
	s := newMemStack()
	dns := s.withDNS()
	dir, spec := app(t, "page")
	u := s.with(nil, hookRouter{s.router, func(r preview.Route) {
		if r.Served > 0 && !r.Deleted {
			if err := s.pl.Down(context.Background(), "hello", 1); err != nil {
				t.Errorf("Down: %v", err)
			}
		}
	}}, nil, nil)
	err := upWith(u, dir, spec, 1, commit('a'), 0)
	s.wantNothing(t, dns, 1)
	if !errors.Is(err, preview.ErrSuperseded) {
		t.Fatalf("the Up a Down came after: %v, want ErrSuperseded", err)
	}
}

// TestSupersededUpRemovesFunctionForStaticWinner: an Up of a commit with a
// function deploys after an Up of a newer, static-only commit has routed
// and cleaned up; it loses the route switch and used to leave its
// function running beside the static preview.
func TestSupersededUpRemovesFunctionForStaticWinner(t *testing.T) {
	s := newMemStack()
	dns := s.withDNS()
	dirA, spec := app(t, "page A")
	dirB, _ := app(t, "page B")
	static := spec
	static.Function = nil
	var once sync.Once
	// A's first Get is in its deploy step, after it checked its claim:
	// the static Up claims, routes and cleans up there.
	a := s.with(hookRuntime{MemRuntime: s.rt, beforeGet: func() {
		once.Do(func() {
			if err := s.up(dirB, static, 1, commit('b')); err != nil {
				t.Errorf("the static Up: %v", err)
			}
		})
	}}, nil, nil, nil)
	if err := upWith(a, dirA, spec, 1, commit('a'), 0); !errors.Is(err, preview.ErrSuperseded) {
		t.Fatalf("the superseded Up: %v, want ErrSuperseded", err)
	}
	s.wantWhole(t, dns, 1, "page B", "")
	if fns, _ := s.rt.List(context.Background(), preview.Selector("test", "hello", 1)); len(fns) != 0 {
		t.Fatalf("functions %+v beside a static-only preview; want none", fns)
	}
}

// TestInterruptedUpAfterDownIsPartial: an Up that claims after a Down and
// then fails leaves an empty route; List used to report it ready (the
// claim kept the generation the tombstone's route had served). It is
// failed, with the Up's reason (Route.Failure), and unrouted.
func TestInterruptedUpAfterDownIsPartial(t *testing.T) {
	s := newMemStack()
	dir, spec := app(t, "page")
	ctx := context.Background()
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	if err := s.pl.Down(ctx, "hello", 1); err != nil {
		t.Fatal(err)
	}
	s.builder.Hook = func(context.Context, preview.BuildRequest) error {
		return preview.Errorf(preview.Internal, "the build died")
	}
	if err := s.up(dir, spec, 1, commit('b')); err == nil {
		t.Fatal("Up with a failing build: nil error")
	}
	pvs, err := s.pl.List(ctx, "hello")
	if err != nil || len(pvs) != 1 || pvs[0].Status != preview.StatusFailed || pvs[0].Host != "" || !strings.Contains(pvs[0].LastError, "the build died") {
		t.Fatalf("List = %+v, %v; want one unrouted preview, failed with the build's error", pvs, err)
	}
}

// TestAdoptedFunctionGetsStamped (seed 1047): an Up whose claim finds the
// route quiescent used to adopt, without stamping it, a function that was
// the same as its own, even one a losing Up had applied late with an old
// generation; a clean-up that removes functions older than the generation
// it read then removed the function the new preview served (404).
//
// The schedule: A (commit a) claims generation 1 and checks its claim; S
// (static only) claims 2 and routes; A deploys generation 1 late; S's
// clean-up decides to remove functions older than 2; N (commit a again)
// claims 3 on the quiescent route, finds A's function, routes; S removes.
func TestAdoptedFunctionGetsStamped(t *testing.T) {
	s := newMemStack()
	dns := s.withDNS()
	dirA, spec := app(t, "page A")
	dirS, _ := app(t, "page S")
	static := spec
	static.Function = nil
	aAtGet, aGo, aApplied, sAtRemove, nDone := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	var aOnce, aOnce2, sOnce, sOnce2 sync.Once
	var wg sync.WaitGroup
	var errA, errS error
	wg.Add(2)
	go func() {
		defer wg.Done()
		a := s.with(hookRuntime{MemRuntime: s.rt,
			beforeGet:  func() { aOnce.Do(func() { close(aAtGet); <-aGo }) },
			afterApply: func() { aOnce2.Do(func() { close(aApplied); <-nDone }) },
		}, nil, nil, nil)
		errA = upWith(a, dirA, spec, 1, commit('a'), 0)
	}()
	<-aAtGet
	go func() {
		defer wg.Done()
		sp := s.with(hookRuntime{MemRuntime: s.rt, beforeRemove: func() { sOnce2.Do(func() { close(sAtRemove); <-nDone }) }},
			hookRouter{s.router, func(r preview.Route) {
				if r.Served > 0 {
					sOnce.Do(func() { close(aGo); <-aApplied })
				}
			}}, nil, nil)
		errS = upWith(sp, dirS, static, 1, commit('s'), 0)
	}()
	<-sAtRemove
	if err := s.up(dirA, spec, 1, commit('a')); err != nil {
		t.Fatalf("the Up on the quiescent route: %v", err)
	}
	close(nDone)
	wg.Wait()
	if !errors.Is(errA, preview.ErrSuperseded) || errS != nil {
		t.Fatalf("the late Up: %v (want ErrSuperseded); the static Up: %v", errA, errS)
	}
	s.wantWhole(t, dns, 1, "page A", commit('a'))
}

package preview_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// memStack is a Pipeline over the in-memory reference providers.
type memStack struct {
	pl      *preview.Pipeline
	reg     *previewtest.MemRegistry
	builder *previewtest.MemBuilder
	rt      *previewtest.MemRuntime
	assets  *previewtest.MemAssets
	router  *previewtest.MemRouter
}

func newMemStack() *memStack {
	s := &memStack{reg: previewtest.NewMemRegistry(), rt: previewtest.NewMemRuntime(), assets: previewtest.NewMemAssets(), router: previewtest.NewMemRouter()}
	s.builder = &previewtest.MemBuilder{Registry: s.reg}
	s.pl = &preview.Pipeline{Builder: s.builder, Registry: s.reg, Runtime: s.rt, Assets: s.assets, Router: s.router, BaseDomain: "localhost", Owner: "test"}
	return s
}

// app writes an app with a function and a page saying body.
func app(t *testing.T, body string) (string, preview.Spec) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "function"), 0o755)
	os.MkdirAll(filepath.Join(dir, "public"), 0o755)
	os.WriteFile(filepath.Join(dir, "function", "main.go"), []byte("package main // "+body+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte(body), 0o644)
	return dir, preview.Spec{App: "hello", Function: &preview.FunctionSpec{}, Assets: &preview.AssetsSpec{}}
}

func commit(c byte) string { return strings.Repeat(string(c), 40) }

// served reads what the preview of PR pr serves: the page and the commit
// of the function's image, as a visitor would get them.
func (s *memStack) served(t *testing.T, pr int) (page, fnCommit string) {
	t.Helper()
	ctx := context.Background()
	r, err := s.router.Route(ctx, preview.Host("hello", pr, "localhost"))
	if err != nil || r.Deleted {
		return "", ""
	}
	if r.AssetPrefix != "" {
		m, err := s.assets.Manifest(ctx, r.AssetPrefix)
		if err != nil {
			t.Fatalf("the route names manifest %s, which is gone: %v", r.AssetPrefix, err)
		}
		rc, err := s.assets.Open(ctx, m.Files["/index.html"].Digest)
		if err != nil {
			t.Fatalf("the served manifest names a missing blob: %v", err)
		}
		b := make([]byte, 100)
		n, _ := rc.Read(b)
		page = string(b[:n])
	}
	if r.Function != "" {
		f, err := s.rt.Get(ctx, r.Function)
		if err != nil {
			t.Fatalf("the route names function %s, which is gone: %v", r.Function, err)
		}
		fnCommit = f.Env["GLIMPSE_COMMIT"]
	}
	return page, fnCommit
}

func (s *memStack) up(dir string, spec preview.Spec, pr int, c string) error {
	_, err := s.pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: pr, Commit: c})
	return err
}

// TestRacingUpsLaterClaimWins is reproduction 1 of issue 8 at the core:
// the Up that claimed first is held in its build while the later one runs
// to the end; the first then fails as superseded and the preview serves
// the later Up's page and function, its manifest intact.
func TestRacingUpsLaterClaimWins(t *testing.T) {
	for _, firstFinishesFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "EarlierFinishesLast", true: "EarlierFinishesFirst"}[firstFinishesFirst], func(t *testing.T) {
			s := newMemStack()
			dirA, spec := app(t, "page A")
			dirB, _ := app(t, "page B")
			hold, release := make(chan struct{}), make(chan struct{})
			holdDir := dirA
			if firstFinishesFirst {
				holdDir = dirB
			}
			s.builder.Hook = func(ctx context.Context, req preview.BuildRequest) error {
				if strings.HasPrefix(req.SourceDir, holdDir) {
					close(hold)
					<-release
				}
				return nil
			}
			var errA, errB error
			var wg sync.WaitGroup
			if !firstFinishesFirst {
				// A claims, is held; B claims later and finishes; A resumes.
				wg.Add(1)
				go func() { defer wg.Done(); errA = s.up(dirA, spec, 40, commit('a')) }()
				<-hold
				errB = s.up(dirB, spec, 40, commit('b'))
				close(release)
				wg.Wait()
			} else {
				// A claims and is overtaken by B's claim while B is held;
				// A finishes first, then B.
				wg.Add(1)
				go func() { defer wg.Done(); errB = s.up(dirB, spec, 40, commit('b')) }()
				<-hold
				// B claimed already; A claims after it and wins.
				errA = s.up(dirA, spec, 40, commit('a'))
				close(release)
				wg.Wait()
				errA, errB = errB, errA // the winner is A here: swap to share the checks below
				dirA, dirB = dirB, dirA
			}
			winnerPage := map[bool]string{false: "page B", true: "page A"}[firstFinishesFirst]
			winnerCommit := map[bool]string{false: commit('b'), true: commit('a')}[firstFinishesFirst]
			if !errors.Is(errA, preview.ErrSuperseded) {
				t.Fatalf("the Up that claimed first: %v, want ErrSuperseded", errA)
			}
			if errB != nil {
				t.Fatalf("the Up that claimed last: %v", errB)
			}
			page, fc := s.served(t, 40)
			if page != winnerPage || fc != winnerCommit {
				t.Fatalf("served page %q, function commit %q; want %q and %q", page, fc, winnerPage, winnerCommit)
			}
			ms, _ := s.assets.List(context.Background(), preview.Selector("test", "hello", 40))
			if len(ms) != 1 {
				t.Fatalf("manifests left: %+v, want only the served one", ms)
			}
		})
	}
}

// TestUpRacingDown is reproduction 2 of issue 8: a Down while an Up is in
// flight is final; the Up fails and leaves nothing.
func TestUpRacingDown(t *testing.T) {
	for _, when := range []string{"build", "after-deploy"} {
		t.Run(when, func(t *testing.T) {
			s := newMemStack()
			dir, spec := app(t, "page")
			ctx := context.Background()
			if when == "build" {
				s.builder.Hook = func(ctx context.Context, req preview.BuildRequest) error {
					return s.pl.Down(ctx, "hello", 20)
				}
			} else {
				// The Down runs after the Up's Apply, before its route switch.
				once := sync.Once{}
				s.pl.Runtime = afterApply{s.rt, func() {
					once.Do(func() {
						if err := s.pl.Down(ctx, "hello", 20); err != nil {
							t.Errorf("Down: %v", err)
						}
					})
				}}
			}
			err := s.up(dir, spec, 20, commit('c'))
			if !errors.Is(err, preview.ErrSuperseded) {
				t.Fatalf("Up with a Down in its %s: %v, want ErrSuperseded", when, err)
			}
			sel := preview.Selector("test", "hello", 20)
			fns, _ := s.rt.List(ctx, sel)
			ms, _ := s.assets.List(ctx, sel)
			if len(fns) != 0 || len(ms) != 0 {
				t.Fatalf("after Up raced Down: functions %+v, manifests %+v; want none", fns, ms)
			}
			if pvs, _ := s.pl.List(ctx, "hello"); len(pvs) != 0 {
				t.Fatalf("List after Down = %+v, want nothing", pvs)
			}
			// A new Up after the Down brings the preview back.
			s.builder.Hook = nil
			if err := s.up(dir, spec, 20, commit('d')); err != nil {
				t.Fatalf("Up after Down: %v", err)
			}
			if page, fc := s.served(t, 20); page != "page" || fc != commit('d') {
				t.Fatalf("after a new Up: %q %q", page, fc)
			}
		})
	}
}

// TestFunctionDroppedFromSpec is reproduction 4 of issue 8: an Up of a
// spec without function: removes the function an earlier Up deployed.
func TestFunctionDroppedFromSpec(t *testing.T) {
	s := newMemStack()
	dir, spec := app(t, "page")
	if err := s.up(dir, spec, 5, commit('a')); err != nil {
		t.Fatal(err)
	}
	spec.Function = nil
	if err := s.up(dir, spec, 5, commit('b')); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if fns, _ := s.rt.List(ctx, preview.Selector("test", "hello", 5)); len(fns) != 0 {
		t.Fatalf("functions after the spec dropped it: %+v", fns)
	}
	pvs, err := s.pl.List(ctx, "hello")
	if err != nil || len(pvs) != 1 || pvs[0].Function != "" || pvs[0].Replicas != 0 || pvs[0].Commit != commit('b') || pvs[0].Status != preview.StatusReady {
		t.Fatalf("List = %+v, %v; want one static-only preview of commit b", pvs, err)
	}
}

// TestGenerationsOrderStaticOnlyApps is reproduction 7 of issue 8 for an
// app without function (which had no protection at all): an older
// explicit generation changes nothing.
func TestGenerationsOrderStaticOnlyApps(t *testing.T) {
	s := newMemStack()
	dirNew, spec := app(t, "new")
	dirOld, _ := app(t, "old")
	spec.Function = nil
	ctx := context.Background()
	if _, err := s.pl.Up(ctx, preview.UpRequest{Dir: dirNew, Spec: spec, PR: 3, Commit: commit('b'), Generation: 12}); err != nil {
		t.Fatal(err)
	}
	_, err := s.pl.Up(ctx, preview.UpRequest{Dir: dirOld, Spec: spec, PR: 3, Commit: commit('a'), Generation: 11})
	if !errors.Is(err, preview.ErrSuperseded) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("older generation: %v, want one-line ErrSuperseded", err)
	}
	if page, _ := s.served(t, 3); page != "new" {
		t.Fatalf("served %q after an older generation, want new", page)
	}
	if ms, _ := s.assets.List(ctx, preview.Selector("test", "hello", 3)); len(ms) != 1 {
		t.Fatalf("manifests %+v, want only the served one", ms)
	}
}

// TestUpTwiceChangesNothing: a repeated Up with nothing changed builds,
// uploads and deploys nothing.
func TestUpTwiceChangesNothing(t *testing.T) {
	s := newMemStack()
	dir, spec := app(t, "page")
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	var states = map[string]preview.EventState{}
	s.pl.OnEvent = func(e preview.Event) {
		if e.State != preview.EventStarted && e.State != preview.EventLog {
			states[e.Step] = e.State
		}
	}
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{preview.StepBuild, preview.StepAssets, preview.StepDeploy, preview.StepClean} {
		if states[step] != preview.EventSkipped {
			t.Errorf("second Up: step %s %q, want skipped", step, states[step])
		}
	}
	if page, fc := s.served(t, 1); page != "page" || fc != commit('a') {
		t.Fatalf("after the second Up: %q %q", page, fc)
	}
}

// TestDeployFailureKeepsServing: a function that fails to deploy fails
// the Up and the previous commit keeps serving, whole.
func TestDeployFailureKeepsServing(t *testing.T) {
	s := newMemStack()
	dir, spec := app(t, "good")
	if err := s.up(dir, spec, 2, commit('a')); err != nil {
		t.Fatal(err)
	}
	bad, _ := app(t, "bad")
	s.rt.Fail = func(fn preview.Function) error {
		return preview.Errorf(preview.FailedPrecondition, "function %s exited with status 2 before it was ready", fn.Name)
	}
	if err := s.up(bad, spec, 2, commit('b')); err == nil || !strings.Contains(err.Error(), "exited with status 2") {
		t.Fatalf("Up of a crashing function: %v", err)
	}
	if page, fc := s.served(t, 2); page != "good" || fc != commit('a') {
		t.Fatalf("after a failed deploy: %q %q; want the old commit whole", page, fc)
	}
	s.rt.Fail = nil
	if err := s.up(bad, spec, 2, commit('b')); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.assets.List(context.Background(), preview.Selector("test", "hello", 2)); len(ms) != 1 {
		t.Fatalf("manifests %+v after the next Up, want only the served one (the failed Up's collected)", ms)
	}
}

// afterApply runs after once each Apply has returned.
type afterApply struct {
	preview.FunctionRuntime
	after func()
}

func (a afterApply) Apply(ctx context.Context, fn preview.Function) error {
	err := a.FunctionRuntime.Apply(ctx, fn)
	a.after()
	return err
}

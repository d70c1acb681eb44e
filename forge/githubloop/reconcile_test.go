package githubloop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// activeRouter is a MemRouter whose edge reports the request times the
// test sets (preview.ActivityReporter).
type activeRouter struct {
	*previewtest.MemRouter
	mu   sync.Mutex
	last map[string]time.Time // function -> last request
}

func (r *activeRouter) Activity(ctx context.Context) ([]preview.Activity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []preview.Activity
	for fn, t := range r.last {
		out = append(out, preview.Activity{Function: fn, LastActivity: t})
	}
	return out, nil
}

// TestReconcileStaleAndOrphans runs the periodic reconcile against the
// fake GitHub API with the real PipelineRunner (in-memory providers, a
// real git remote): open PRs without a preview are built; past
// StaleAfter, a preview without a push or a request is taken down and its
// PR told why and how to bring it back, while one with a recent request
// stays; previews of a PR closed without a webhook, and of a PR GitHub
// does not know (made by hand, no checkout), are removed; a parked PR is
// not rebuilt by later reconciles, also by a restarted queue, until a
// push.
func TestReconcileStaleAndOrphans(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "no git binary on PATH (the loop checks pull requests out with it)")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	remote := &gitRepo{t: t, dir: t.TempDir()}
	remote.run("init", "--quiet", "-b", "main")
	app := func(v string) map[string]string {
		return map[string]string{
			"glimpse.yaml":      "app: hello\nfunction: {source: function, routes: [/graphql]}\nassets: {dir: public}\n",
			"public/index.html": "<h1>" + v + "</h1>",
			"function/main.go":  "package main // " + v + "\n",
		}
	}
	head := remote.commit(app("v1"))
	cloneURL := "file://" + filepath.ToSlash(remote.dir)

	reg := previewtest.NewMemRegistry()
	var builds atomic.Int32
	builder := &previewtest.MemBuilder{Registry: reg, Hook: func(ctx context.Context, req preview.BuildRequest) error {
		builds.Add(1)
		return nil
	}}
	runtime, assets := previewtest.NewMemRuntime(), previewtest.NewMemAssets()
	router := &activeRouter{MemRouter: previewtest.NewMemRouter(), last: map[string]time.Time{}}
	open := func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		return &preview.Pipeline{Builder: builder, Registry: reg, Runtime: runtime, Assets: assets, Router: router,
			BaseDomain: "localhost", URLFor: func(h string) string { return "http://" + h + "/" }}, nil
	}
	home := t.TempDir()
	root := filepath.Join(home, "github", "acme", "app")
	runner := &PipelineRunner{Root: root, App: "hello", Open: open}
	gh, ghSrv := newFakeGitHub(t)
	start := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&start)
	const staleAfter = 7 * 24 * time.Hour
	newQueue := func() *Queue {
		t.Helper()
		counter, err := OpenCounter(filepath.Join(root, "generation"), 0)
		if err != nil {
			t.Fatal(err)
		}
		parked, err := OpenParked(filepath.Join(root, "parked.json"))
		if err != nil {
			t.Fatal(err)
		}
		rep, _ := NewGitHubReporter("acme/app", "tok", ghSrv.URL)
		q := &Queue{Runner: runner, Reporter: rep, Counter: counter, Parked: parked, Settle: 50 * time.Millisecond,
			StaleAfter: staleAfter, Now: func() time.Time { return *clock.Load() }}
		q.Start(ctx)
		return q
	}
	q := newQueue()
	reconcile := func() {
		t.Helper()
		if err := q.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		time.Sleep(20 * time.Millisecond)
		for !q.Idle() {
			if time.Now().After(deadline) {
				t.Fatal("queue did not finish")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	pl, _ := open(ctx, config.Providers{})
	served := func() string {
		t.Helper()
		pvs, err := pl.List(ctx, "hello")
		if err != nil {
			t.Fatal(err)
		}
		var prs []string
		for _, pv := range pvs {
			prs = append(prs, fmt.Sprint(pv.PR))
		}
		return strings.Join(prs, " ")
	}

	// Three open PRs and no preview yet: reconcile builds them.
	for _, n := range []int{1, 2, 3} {
		gh.SetPull(gh.Pull(n, head, "acme/app", cloneURL))
	}
	reconcile()
	if got := served(); got != "1 2 3" {
		t.Fatalf("after the first reconcile previews of PRs %q, want 1 2 3", got)
	}
	if n := builds.Load(); n != 3 {
		t.Errorf("%d builds, want 3", n)
	}
	// PR 9 gets a preview made by hand; GitHub has no such pull request.
	manual := t.TempDir()
	os.MkdirAll(filepath.Join(manual, "public"), 0o755)
	os.WriteFile(filepath.Join(manual, "public", "index.html"), []byte("hand made"), 0o644)
	if _, err := pl.Up(ctx, preview.UpRequest{Dir: manual, Spec: preview.Spec{App: "hello", Assets: &preview.AssetsSpec{Dir: "public"}}, PR: 9, Commit: head}); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "1 2 3 9" {
		t.Fatalf("previews of PRs %q, want 1 2 3 9", got)
	}

	// Eight days later: PR 2 had a request six days after its push, PR 1
	// nothing; PR 3 was closed without a webhook reaching the daemon.
	router.mu.Lock()
	router.last[preview.FunctionName("hello", 2)] = start.Add(2 * 24 * time.Hour)
	router.mu.Unlock()
	later := start.Add(8 * 24 * time.Hour)
	clock.Store(&later)
	gh.ClosePull(3)
	reconcile()
	if got := served(); got != "2" {
		t.Fatalf("after the stale reconcile previews of PRs %q, want only 2", got)
	}
	cs := gh.Comments(1)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, StaleMessage(staleAfter)) {
		t.Errorf("PR 1 comment %+v, want the stale message", cs)
	}
	if cs := gh.Comments(3); len(cs) != 1 || !strings.Contains(cs[0].Body, "closed") {
		t.Errorf("PR 3 comment %+v, want it to say the PR was closed", cs)
	}
	tags, _ := reg.Tags(ctx, "hello")
	for _, tag := range tags {
		if strings.HasPrefix(tag, "pr-1-") || strings.HasPrefix(tag, "pr-3-") {
			t.Errorf("image tag %s of a removed preview left (tags %v)", tag, tags)
		}
	}
	for _, d := range gh.Deployments() {
		last := d.Statuses[len(d.Statuses)-1].State
		if want := map[bool]string{true: "success", false: "inactive"}[d.Environment == "preview/pr-2"]; last != want {
			t.Errorf("deployment of %s ends %s, want %s", d.Environment, last, want)
		}
	}

	// Parked: later reconciles, by this queue or a restarted one, do not
	// build PR 1 again; PR 2's request time survived in its stamp.
	reconcile()
	cancel()
	q.Wait()
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	q = newQueue()
	reconcile()
	if got := served(); got != "2" || builds.Load() != 3 {
		t.Fatalf("after later reconciles previews of %q and %d builds, want 2 and 3", got, builds.Load())
	}
	if fi, err := os.Stat(runner.activeStamp(2)); err != nil || !fi.ModTime().Equal(start.Add(2*24*time.Hour)) {
		t.Errorf("PR 2 activity stamp %v (%v), want its last request", fi.ModTime(), err)
	}

	// A "/glimpse up" comment by a collaborator brings PR 1 back at the
	// same head; one by someone without write access does not.
	h := &Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: q}
	comment := func(id, assoc string) {
		t.Helper()
		body := commentEvent(1, "/glimpse up\nplease", assoc)
		if w := post(h, "issue_comment", id, body, Sign([]byte(testSecret), body)); w.Code != 202 {
			t.Fatalf("comment: %d %s", w.Code, w.Body)
		}
	}
	comment("c-1", "NONE")
	reconcile()
	if got := served(); got != "2" {
		t.Fatalf("after a comment by a stranger previews of %q, want 2", got)
	}
	comment("c-2", "MEMBER")
	reconcile()
	if got := served(); got != "1 2" || builds.Load() != 4 {
		t.Fatalf("after /glimpse up previews of %q and %d builds, want 1 2 and 4", got, builds.Load())
	}

	// Both stale again eight days on; a push brings PR 1 back.
	later = later.Add(8 * 24 * time.Hour)
	clock.Store(&later)
	reconcile()
	if got := served(); got != "" {
		t.Fatalf("eight more days later previews of %q, want none", got)
	}
	pushed := remote.commit(app("v2"))
	pr1 := gh.Pull(1, pushed, "acme/app", cloneURL)
	gh.SetPull(pr1)
	d, err := parsePullRequestEvent(gh.Event("synchronize", pr1))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	reconcile()
	if got := served(); got != "1" {
		t.Fatalf("after the push previews of %q, want 1", got)
	}
	if cs := gh.Comments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "Ready:") {
		t.Errorf("PR 1 comment after the push %+v", cs)
	}
}

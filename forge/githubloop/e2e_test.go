package githubloop

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// gitRepo is a real local repository standing in for GitHub's remote.
type gitRepo struct {
	t   *testing.T
	dir string
}

func (g *gitRepo) run(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", g.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (removing those given as "") and commits them,
// returning the SHA.
func (g *gitRepo) commit(files map[string]string) string {
	g.t.Helper()
	for name, content := range files {
		p := filepath.Join(g.dir, filepath.FromSlash(name))
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.run("add", "-A")
	g.run("commit", "--quiet", "-m", "change")
	return g.run("rev-parse", "HEAD")
}

func TestEndToEnd(t *testing.T) {
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
	first := remote.commit(app("v1"))
	cloneURL := "file://" + filepath.ToSlash(remote.dir)

	// The providers: in-memory, shared by every pipeline the runner opens.
	reg := previewtest.NewMemRegistry()
	var builds atomic.Int32
	builder := &previewtest.MemBuilder{Registry: reg, Hook: func(ctx context.Context, req preview.BuildRequest) error {
		builds.Add(1)
		return nil
	}}
	runtime, router, assets := previewtest.NewMemRuntime(), previewtest.NewMemRouter(), previewtest.NewMemAssets()
	open := func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		return &preview.Pipeline{Builder: builder, Registry: reg, Runtime: runtime, Assets: assets, Router: router,
			BaseDomain: "localhost", URLFor: func(h string) string { return "http://" + h + ":8080/" }}, nil
	}
	home := t.TempDir()
	runner := &PipelineRunner{Root: filepath.Join(home, "github", "acme", "app"), Open: open}

	gh, ghSrv := newFakeGitHub(t)
	rep, err := NewGitHubReporter("acme/app", "tok", ghSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	counter, err := OpenCounter(filepath.Join(home, "github", "acme", "app", "generation"), 0)
	if err != nil {
		t.Fatal(err)
	}
	q := &Queue{Runner: runner, Reporter: rep, Counter: counter, Settle: 500 * time.Millisecond}
	q.Start(ctx)
	var current atomic.Pointer[Handler]
	current.Store(&Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: q})
	daemon := httptest.NewServer(Mount(http.NotFoundHandler(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	})))
	defer daemon.Close()
	defer func() { cancel(); q.Wait() }()

	n := 0
	send := func(action, sha string) {
		t.Helper()
		n++
		body := prEvent(action, 42, sha, func(pr map[string]any) {
			pr["base"].(map[string]any)["repo"].(map[string]any)["clone_url"] = cloneURL
		})
		req, _ := http.NewRequest(http.MethodPost, daemon.URL+WebhookPath, strings.NewReader(string(body)))
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("delivery-%d", n))
		req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %s", action, resp.Status)
		}
	}
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		time.Sleep(50 * time.Millisecond)
		for !q.Idle() {
			if time.Now().After(deadline) {
				t.Fatal("queue did not finish")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pl, _ := open(ctx, config.Providers{})
	served := func() (string, string) {
		t.Helper()
		pvs, err := pl.List(ctx, "hello")
		if err != nil {
			t.Fatal(err)
		}
		if len(pvs) != 1 {
			return "", fmt.Sprint(pvs)
		}
		m, err := assets.Manifest(ctx, pvs[0].AssetPrefix)
		if err != nil {
			t.Fatal(err)
		}
		return pvs[0].Commit, fmt.Sprint(len(m.Files))
	}
	previewComment := func() string {
		t.Helper()
		cs := gh.Comments(42)
		if len(cs) != 1 {
			t.Fatalf("%d comments on the PR, want 1: %+v", len(cs), cs)
		}
		return cs[0].Body
	}

	// opened: the preview is live and the comment says so.
	send("opened", first)
	settle()
	if c, _ := served(); c != first {
		t.Fatalf("serves %q, want %s", c, first)
	}
	if b := previewComment(); !strings.Contains(b, "Ready: http://pr-42.hello.localhost:8080/") {
		t.Errorf("comment %q", b)
	}
	if got, _ := os.ReadFile(filepath.Join(runner.Root, "pr-42", "public", "index.html")); string(got) != "<h1>v1</h1>" {
		t.Errorf("checkout has %q", got)
	}

	// synchronize x5 in a burst: one build, of the last commit.
	// The commits are made first, so that the five deliveries arrive
	// within one settle period however slow the machine is.
	var pushes []string
	for i := 2; i <= 6; i++ {
		pushes = append(pushes, remote.commit(app(fmt.Sprintf("v%d", i))))
	}
	for _, c := range pushes {
		send("synchronize", c)
	}
	last := pushes[len(pushes)-1]
	settle()
	if c, _ := served(); c != last {
		t.Fatalf("serves %q, want the last push %s", c, last)
	}
	if got := builds.Load(); got != 2 {
		t.Errorf("%d builds, want 2 (opened, then one for the burst)", got)
	}
	if got, _ := os.ReadFile(filepath.Join(runner.Root, "pr-42", "public", "index.html")); string(got) != "<h1>v6</h1>" {
		t.Errorf("checkout has %q", got)
	}
	route, err := router.Route(ctx, preview.Host("hello", 42, "localhost"))
	if err != nil || route.Generation != 6 {
		t.Errorf("route generation %d (%v), want 6: the delivery number", route.Generation, err)
	}

	// A push that fails to build: the deployment fails with the step,
	// the comment says so, the previous commit keeps serving.
	broken := app("v7")
	broken["function/BROKEN"] = "x"
	bad := remote.commit(broken)
	send("synchronize", bad)
	settle()
	if c, _ := served(); c != last {
		t.Errorf("after a failed build serves %q, want %s", c, last)
	}
	if b := previewComment(); !strings.Contains(b, "Failed at commit `"+bad[:7]) || !strings.Contains(b, "build:") {
		t.Errorf("comment after failure %q", b)
	}

	// The daemon restarts while a push was not delivered (GitHub gave up,
	// or the daemon was down): the new daemon's Reconcile finds the PR's
	// head differs from what its labelled preview serves, and builds it
	// with a generation past every earlier one (the counter file).
	cancel()
	q.Wait()
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	ctx = ctx2
	fixed := app("v8")
	fixed["function/BROKEN"] = "" // removed
	missed := remote.commit(fixed)
	gh.SetPull(gh.Pull(42, missed, "acme/app", cloneURL))
	if counter, err = OpenCounter(filepath.Join(home, "github", "acme", "app", "generation"), 0); err != nil {
		t.Fatal(err)
	}
	rep2, _ := NewGitHubReporter("acme/app", "tok", ghSrv.URL)
	q = &Queue{Runner: runner, Reporter: rep2, Counter: counter, Settle: 500 * time.Millisecond}
	q.Start(ctx)
	current.Store(&Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: q})
	if err := q.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	settle()
	if c, _ := served(); c != missed {
		t.Fatalf("after restart serves %q, want %s", c, missed)
	}
	if route, _ := router.Route(ctx, preview.Host("hello", 42, "localhost")); route.Generation != 8 {
		t.Errorf("recovered route generation %d, want 8", route.Generation)
	}
	if b := previewComment(); !strings.Contains(b, "Ready:") || !strings.Contains(b, missed[:7]) {
		t.Errorf("comment after restart %q", b)
	}

	// closed: function, route, manifest and image tags gone, deployment
	// inactive.
	send("closed", bad)
	settle()
	if c, pvs := served(); c != "" {
		t.Errorf("after close still listed: %s %s", c, pvs)
	}
	if fns, _ := runtime.List(ctx, preview.Selector("", "hello", 42)); len(fns) != 0 {
		t.Errorf("functions left: %+v", fns)
	}
	if ms, _ := assets.List(ctx, preview.Selector("", "hello", 42)); len(ms) != 0 {
		t.Errorf("manifests left: %+v", ms)
	}
	if _, err := os.Stat(filepath.Join(runner.Root, "pr-42")); !os.IsNotExist(err) {
		t.Errorf("checkout left: %v", err)
	}
	if tags, _ := reg.Tags(ctx, "hello"); len(tags) != 0 {
		t.Errorf("image tags left after close: %v", tags)
	}
	want := "[[in_progress success inactive] [in_progress success inactive] [in_progress failure inactive] [in_progress success inactive]]"
	if got := fmt.Sprint(gh.States()); got != want {
		t.Errorf("deployment statuses %s, want %s", got, want)
	}
	if b := previewComment(); !strings.Contains(b, "closed") {
		t.Errorf("comment after close %q", b)
	}
}

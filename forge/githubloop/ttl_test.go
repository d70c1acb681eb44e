package githubloop

import (
	"context"
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

// The daemon's reconcile expires previews by the rule gc applies
// (preview.Lifetime.Expired): a PR whose glimpse.yaml sets ttl: 1h is
// taken down (and parked, its comment saying why) once its last push is
// older than that; a PR without a ttl stays. The ttl and the push time come from the route's labels.
func TestReconcileTakesDownPastTTL(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "no git binary on PATH (the loop checks pull requests out with it)")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	remote := &gitRepo{t: t, dir: t.TempDir()}
	remote.run("init", "--quiet", "-b", "main")
	remote.run("config", "uploadpack.allowAnySHA1InWant", "true")
	withTTL := remote.commit(map[string]string{"glimpse.yaml": "app: hello\nassets: {dir: public}\nttl: 1h\n", "public/index.html": "a"})
	noTTL := remote.commit(map[string]string{"glimpse.yaml": "app: hello\nassets: {dir: public}\n", "public/index.html": "b"})
	cloneURL := "file://" + filepath.ToSlash(remote.dir)

	assets := previewtest.NewMemAssets()
	router := &activeRouter{MemRouter: previewtest.NewMemRouter(), last: map[string]time.Time{}}
	open := func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		return &preview.Pipeline{Assets: assets, Router: router, BaseDomain: "localhost"}, nil
	}
	root := t.TempDir()
	gh, ghSrv := newFakeGitHub(t)
	gh.SetPull(gh.Pull(1, withTTL, "acme/app", cloneURL))
	gh.SetPull(gh.Pull(2, noTTL, "acme/app", cloneURL))
	start := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&start)
	counter, _ := OpenCounter(filepath.Join(root, "generation"), 0)
	rep, _ := NewGitHubReporter("acme/app", "tok", ghSrv.URL)
	q := &Queue{Runner: &PipelineRunner{Root: filepath.Join(root, "prs"), App: "hello", Open: open}, Reporter: rep,
		Counter: counter, Settle: 20 * time.Millisecond, Now: func() time.Time { return *clock.Load() }}
	q.Start(ctx)
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
	prs := func() []int {
		t.Helper()
		pvs, err := pl.List(ctx, "hello")
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, pv := range pvs {
			out = append(out, pv.PR)
		}
		return out
	}
	reconcile() // builds both
	if got := prs(); len(got) != 2 {
		t.Fatalf("previews after the first reconcile: %v", got)
	}
	// Half an hour on: within the ttl.
	t1 := start.Add(30 * time.Minute)
	clock.Store(&t1)
	reconcile()
	if got := prs(); len(got) != 2 {
		t.Fatalf("previews within the ttl: %v", got)
	}
	// Two hours on: past PR 1's ttl.
	t2 := start.Add(2*time.Hour + time.Minute)
	clock.Store(&t2)
	reconcile()
	if got := prs(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("previews past PR 1's ttl: %v, want only PR 2 (no ttl)", got)
	}
	if cs := gh.Comments(1); len(cs) != 1 || !strings.Contains(cs[0].Body, "ttl 1h expired 1h ago") {
		t.Fatalf("PR 1's comment: %+v, want it to say the ttl expired", cs)
	}
	// Parked: the next reconcile does not build it again.
	reconcile()
	if got := prs(); len(got) != 1 {
		t.Fatalf("a parked PR was rebuilt: %v", got)
	}
}

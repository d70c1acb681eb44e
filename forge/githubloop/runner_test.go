package githubloop

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// A fork's glimpse.yaml may not choose the providers (and so where the
// daemon's credentials go); a same-repository PR's may.
func TestForkProvidersIgnored(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	t.Parallel()
	remote := &gitRepo{t: t, dir: t.TempDir()}
	remote.run("init", "--quiet", "-b", "main")
	head := remote.commit(map[string]string{
		"glimpse.yaml":      "app: hello\nassets: {dir: public}\nproviders: {router: 'edge://attacker.example:80'}\n",
		"public/index.html": "hi",
	})
	var opened []config.Providers
	stop := errors.New("stop here")
	r := &PipelineRunner{Root: t.TempDir(), Open: func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		opened = append(opened, p)
		return nil, stop
	}}
	pr := PullRequest{Number: 1, HeadSHA: head, HeadRepo: "mallory/app", BaseRepo: "acme/app", CloneURL: "file://" + filepath.ToSlash(remote.dir)}
	if _, err := r.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 1}, func(preview.Event) {}); !errors.Is(err, stop) {
		t.Fatalf("fork up: %v", err)
	}
	if err := r.Down(t.Context(), 1); !errors.Is(err, stop) {
		t.Fatalf("fork down: %v", err)
	}
	pr.Number, pr.HeadRepo = 2, "acme/app"
	r.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 2}, func(preview.Event) {})
	if len(opened) != 3 || opened[0].Router != "" || opened[1].Router != "" || opened[2].Router != "edge://attacker.example:80" {
		t.Errorf("opened providers %+v", opened)
	}
	// A SHA that is not one never reaches git.
	if _, err := r.Up(t.Context(), Job{PR: PullRequest{Number: 3, HeadSHA: "--upload-pack=x", CloneURL: "file:///x"}}, func(preview.Event) {}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("bad sha: %v", err)
	}
}

// With App set, a pull request cannot rename its app to take over another
// app's previews: it is refused before any provider is opened.
func TestAppPinned(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	t.Parallel()
	remote := &gitRepo{t: t, dir: t.TempDir()}
	remote.run("init", "--quiet", "-b", "main")
	head := remote.commit(map[string]string{
		"glimpse.yaml":      "app: billing\nassets: {dir: public}\n",
		"public/index.html": "hi",
	})
	opened := 0
	r := &PipelineRunner{Root: t.TempDir(), App: "hello", Open: func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		opened++
		return nil, errors.New("opened")
	}}
	pr := PullRequest{Number: 4, HeadSHA: head, HeadRepo: "acme/app", BaseRepo: "acme/app", CloneURL: "file://" + filepath.ToSlash(remote.dir)}
	_, err := r.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 1}, func(preview.Event) {})
	if preview.CodeOf(err) != preview.PermissionDenied || opened != 0 {
		t.Fatalf("up of a PR naming another app: %v (opened %d); want PermissionDenied before opening providers", err, opened)
	}
}

// A manual `glimpse up --generation 100` on a daemon-managed PR does not
// lock the daemon out: its next job (generation 3 from its counter) still
// deploys, past the stored generation.
func TestJobWinsOverManualGeneration(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	t.Parallel()
	remote := &gitRepo{t: t, dir: t.TempDir()}
	remote.run("init", "--quiet", "-b", "main")
	head := remote.commit(map[string]string{"glimpse.yaml": "app: hello\nassets: {dir: public}\n", "public/index.html": "from the PR"})
	router, assets := previewtest.NewMemRouter(), previewtest.NewMemAssets()
	open := func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) {
		return &preview.Pipeline{Runtime: previewtest.NewMemRuntime(), Assets: assets, Router: router, BaseDomain: "localhost"}, nil
	}
	manual := t.TempDir()
	os.MkdirAll(filepath.Join(manual, "public"), 0o755)
	os.WriteFile(filepath.Join(manual, "public", "index.html"), []byte("by hand"), 0o644)
	pl, _ := open(t.Context(), config.Providers{})
	spec := preview.Spec{App: "hello", Assets: &preview.AssetsSpec{Dir: "public"}}
	if _, err := pl.Up(t.Context(), preview.UpRequest{Dir: manual, Spec: spec, PR: 9, Commit: "aaaaaaa", Generation: 100}); err != nil {
		t.Fatal(err)
	}
	r := &PipelineRunner{Root: t.TempDir(), Open: open}
	pr := PullRequest{Number: 9, HeadSHA: head, HeadRepo: "acme/app", BaseRepo: "acme/app", CloneURL: "file://" + filepath.ToSlash(remote.dir)}
	if _, err := r.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 3}, func(preview.Event) {}); err != nil {
		t.Fatalf("daemon job after a manual up of generation 100: %v", err)
	}
	rt, err := router.Route(t.Context(), preview.Host("hello", 9, "localhost"))
	if err != nil || rt.Served <= 100 || rt.Labels[preview.LabelCommit] != head {
		t.Fatalf("route after the job = %+v, %v; want the PR head served past generation 100", rt, err)
	}
}

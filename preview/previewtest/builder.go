package previewtest

import (
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// BuilderHarness builds the Builder under test.
type BuilderHarness struct {
	// New returns the builder.
	New func(t *testing.T) preview.Builder
	// Registry is where the builder pushes; the suite resolves pushed
	// tags through it.
	Registry func(t *testing.T) preview.Registry
	// Source returns a fresh directory holding buildable function source
	// (a temporary copy the suite may change).
	Source func(t *testing.T) string
	// Change modifies the source in dir so that a build must run again.
	Change func(t *testing.T, dir string)
	// Break modifies the source in dir so that the build fails.
	Break func(t *testing.T, dir string)
}

// RunBuilderTests runs the Builder conformance suite.
func RunBuilderTests(t *testing.T, h BuilderHarness) {
	req := func(t *testing.T, reg preview.Registry, app, dir, commit string) preview.BuildRequest {
		tg := preview.Target{App: app, PR: 1, Commit: commit}
		var lines []string
		return preview.BuildRequest{
			Target: tg, SourceDir: dir, Repository: reg.Repository(app), Tag: preview.ImageTag(tg),
			Labels:   preview.OwnerLabels("conformance", tg),
			Progress: func(l string) { lines = append(lines, l) },
		}
	}

	t.Run("BuildPushReuseRebuild", func(t *testing.T) {
		b, reg := h.New(t), h.Registry(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		dir := h.Source(t)
		r1 := req(t, reg, app, dir, "aaaaaaa")
		res, err := b.Build(ctx, r1)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		if res.Reused || !strings.HasPrefix(res.Digest, "sha256:") || res.Image != r1.Repository+"@"+res.Digest || res.SourceHash == "" {
			t.Fatalf("first Build = %+v; want a fresh image %s@sha256:... with a source hash", res, r1.Repository)
		}
		if got, err := reg.Resolve(ctx, r1.Repository+":"+r1.Tag); err != nil || got != res.Digest {
			t.Fatalf("Resolve(pushed tag) = %q, %v; want %q", got, err, res.Digest)
		}

		r2 := req(t, reg, app, dir, "bbbbbbb")
		again, err := b.Build(ctx, r2)
		if err != nil {
			t.Fatalf("Build with unchanged source: %v", err)
		}
		if !again.Reused || again.Digest != res.Digest || again.SourceHash != res.SourceHash {
			t.Fatalf("Build with unchanged source = %+v; want the reused image %s", again, res.Digest)
		}
		if got, err := reg.Resolve(ctx, r2.Repository+":"+r2.Tag); err != nil || got != res.Digest {
			t.Fatalf("reused image not tagged %s: %q, %v", r2.Tag, got, err)
		}

		h.Change(t, dir)
		r3 := req(t, reg, app, dir, "ccccccc")
		changed, err := b.Build(ctx, r3)
		if err != nil {
			t.Fatalf("Build after a change: %v", err)
		}
		if changed.Reused || changed.Digest == res.Digest || changed.SourceHash == res.SourceHash {
			t.Fatalf("Build after a source change = %+v; want a new image", changed)
		}
	})

	t.Run("BrokenSource", func(t *testing.T) {
		b, reg := h.New(t), h.Registry(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		dir := h.Source(t)
		h.Break(t, dir)
		r := req(t, reg, app, dir, "ddddddd")
		_, err := b.Build(ctx, r)
		if err == nil {
			t.Fatal("Build of broken source: got nil error")
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("Build error is not one line: %q", err)
		}
		if _, err := reg.Resolve(ctx, r.Repository+":"+r.Tag); !preview.IsNotFound(err) {
			t.Fatalf("a failed build left its tag: Resolve = %v, want NotFound", err)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		b, reg := h.New(t), h.Registry(t)
		_, err := b.Build(cancelled(), req(t, reg, uniqueApp(t), h.Source(t), "eeeeeee"))
		wantCancelled(t, err, "Build")
	})
}

package previewtest

import (
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// RegistryHarness builds the Registry under test.
type RegistryHarness struct {
	// New returns a registry client for a real registry server.
	New func(t *testing.T) preview.Registry
	// Push pushes some image as repo:tag (repo as Registry.Repository
	// returns it) and returns its manifest digest. Pushing different tags
	// with distinct seeds must give distinct digests.
	Push func(t *testing.T, repo, tag string, seed int) string
}

// RunRegistryTests runs the Registry conformance suite.
func RunRegistryTests(t *testing.T, h RegistryHarness) {
	t.Run("ResolveTagsDelete", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		repo := r.Repository(app)
		if !strings.HasSuffix(repo, "/"+app) {
			t.Fatalf("Repository(%q) = %q, want it to end in /%s", app, repo, app)
		}
		d1 := h.Push(t, repo, "pr-1-aaaaaaa", 1)
		d2 := h.Push(t, repo, "pr-2-bbbbbbb", 2)
		got, err := r.Resolve(ctx, repo+":pr-1-aaaaaaa")
		if err != nil || got != d1 {
			t.Fatalf("Resolve(tag) = %q, %v; want %q", got, err, d1)
		}
		if got, err := r.Resolve(ctx, repo+"@"+d2); err != nil || got != d2 {
			t.Fatalf("Resolve(digest) = %q, %v; want %q", got, err, d2)
		}
		if _, err := r.Resolve(ctx, repo+":no-such-tag"); !preview.IsNotFound(err) {
			t.Fatalf("Resolve of a missing tag: %v, want NotFound", err)
		}
		tags, err := r.Tags(ctx, app)
		if err != nil || !contains(tags, "pr-1-aaaaaaa") || !contains(tags, "pr-2-bbbbbbb") {
			t.Fatalf("Tags = %v, %v; want both tags", tags, err)
		}
		if err := r.DeleteTag(ctx, app, "pr-1-aaaaaaa"); err != nil {
			t.Fatalf("DeleteTag: %v", err)
		}
		if err := r.DeleteTag(ctx, app, "pr-1-aaaaaaa"); err != nil {
			t.Fatalf("DeleteTag of a deleted tag: %v, want success", err)
		}
		if _, err := r.Resolve(ctx, repo+":pr-1-aaaaaaa"); !preview.IsNotFound(err) {
			t.Fatalf("Resolve after DeleteTag: %v, want NotFound", err)
		}
		if got, err := r.Resolve(ctx, repo+":pr-2-bbbbbbb"); err != nil || got != d2 {
			t.Fatalf("the other tag after DeleteTag: %q, %v; want %q", got, err, d2)
		}
	})

	t.Run("UnknownRepository", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		tags, err := r.Tags(ctx, uniqueApp(t))
		if err != nil || len(tags) != 0 {
			t.Fatalf("Tags of an unknown repository = %v, %v; want none and no error", tags, err)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		r := h.New(t)
		_, err := r.Tags(cancelled(), uniqueApp(t))
		wantCancelled(t, err, "Tags")
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

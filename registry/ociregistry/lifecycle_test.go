package ociregistry_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

func registries() map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{
		"embedded":     func(t testing.TB) string { h, _ := registrytest.Embedded(t); return h },
		"distribution": registrytest.Distribution,
	}
}

// Apps lists the repositories directly under the registry's prefix that
// are app names; DeleteManifest removes an image with all its tags.
func TestAppsAndDeleteManifest(t *testing.T) {
	t.Parallel()
	for label, start := range registries() {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			host := start(t)
			ctx := context.Background()
			for _, repo := range []string{"previews/hello", "previews/world", "previews/nested/deep", "other/app", "previews/x-y"} {
				pushRandom(t, host+"/"+repo, "t1")
			}
			r := open(t, "oci://"+host+"/previews", nil).(*ociregistry.Registry)
			apps, err := r.Apps(ctx)
			if err != nil || !slices.Equal(apps, []string{"hello", "world", "x-y"}) {
				t.Fatalf("Apps = %v, %v; want hello, world, x-y", apps, err)
			}
			root := open(t, "oci://"+host, nil).(*ociregistry.Registry)
			if apps, err := root.Apps(ctx); err != nil || len(apps) != 0 {
				t.Fatalf("Apps without a prefix = %v, %v; want none (every repository has a path)", apps, err)
			}

			// Two tags on one image, one on another.
			img, _ := random.Image(300, 1)
			for _, tag := range []string{"pr-1-a", "src-1"} {
				ref, _ := ociregistry.ParseReference(r.Repository("hello")+":"+tag, false)
				if err := remote.Write(ref, img); err != nil {
					t.Fatal(err)
				}
			}
			dg, _ := img.Digest()
			d1 := dg.String()
			d2 := pushRandom(t, r.Repository("hello"), "pr-2-b")
			if err := r.DeleteManifest(ctx, "hello", d1); err != nil {
				t.Fatalf("DeleteManifest: %v", err)
			}
			tags, err := r.Tags(ctx, "hello")
			if err != nil || !slices.Equal(tags, []string{"pr-2-b", "t1"}) {
				t.Fatalf("tags after DeleteManifest = %v, %v; want the other image's", tags, err)
			}
			if got, err := r.Resolve(ctx, r.Repository("hello")+":pr-2-b"); err != nil || got != d2 {
				t.Fatalf("other image: %q, %v", got, err)
			}
			if err := r.DeleteManifest(ctx, "hello", d1); err != nil {
				t.Fatalf("DeleteManifest of a missing manifest: %v, want success", err)
			}
			if err := r.DeleteManifest(ctx, "hello", "sha256:abc"); preview.CodeOf(err) != preview.InvalidArgument {
				t.Fatalf("DeleteManifest(bad digest) = %v", err)
			}
		})
	}
}

// Reuse finds an image by source tag and tags it; Publish pushes the
// source tag before the preview's tag.
func TestImagesReusePublish(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	ctx := context.Background()
	imgs, err := ociregistry.NewImages(nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	req := preview.BuildRequest{Repository: host + "/app", Tag: "pr-1-aaaaaaa", Progress: func(l string) { lines = append(lines, l) }}
	const hash = "0123456789abcdef0123456789abcdef"
	if _, ok, err := imgs.Reuse(ctx, req, hash); ok || err != nil {
		t.Fatalf("Reuse before any push = %v, %v; want not found", ok, err)
	}
	img, _ := random.Image(256, 1)
	res, err := imgs.Publish(ctx, req, hash, img)
	d, _ := img.Digest()
	if err != nil || res.Digest != d.String() || res.Image != host+"/app@"+d.String() || res.Reused || res.SourceHash != hash {
		t.Fatalf("Publish = %+v, %v", res, err)
	}
	r := open(t, "oci://"+host, nil)
	tags, _ := r.Tags(ctx, "app")
	if !slices.Equal(tags, []string{"pr-1-aaaaaaa", "src-0123456789abcdef"}) {
		t.Fatalf("tags after Publish = %v", tags)
	}
	req.Tag = "pr-2-bbbbbbb"
	again, ok, err := imgs.Reuse(ctx, req, hash)
	if err != nil || !ok || !again.Reused || again.Digest != res.Digest {
		t.Fatalf("Reuse = %+v, %v, %v", again, ok, err)
	}
	if got, err := r.Resolve(ctx, host+"/app:pr-2-bbbbbbb"); err != nil || got != res.Digest {
		t.Fatalf("reused tag = %q, %v", got, err)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "unchanged: reusing") }) {
		t.Fatalf("progress = %q", lines)
	}
	if _, _, err := imgs.Reuse(ctx, preview.BuildRequest{Repository: "Bad Repo", Tag: "x"}, hash); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Reuse(bad repository) = %v", err)
	}
	if got := ociregistry.SourceTag(hash); got != "src-0123456789abcdef" {
		t.Fatalf("SourceTag = %q", got)
	}
}

// Registries that refuse deletes answer Unimplemented to DeleteManifest
// too, and Apps on a registry without a catalog is an error with a code.
func TestLifecycleRefusals(t *testing.T) {
	t.Parallel()
	reg, err := embedregistry.New(t.TempDir(), &embedregistry.Options{DisableDelete: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	r := open(t, "oci://"+host, nil).(*ociregistry.Registry)
	d := pushRandom(t, r.Repository("app"), "t1")
	if err := r.DeleteManifest(context.Background(), "app", d); preview.CodeOf(err) != preview.Unimplemented {
		t.Fatalf("DeleteManifest on a registry refusing deletes: %v, want Unimplemented", err)
	}
}

// GITHUB_TOKEN authenticates to ghcr.io only, after the Docker
// configuration; GLIMPSE_REGISTRY_* win for their host.
func TestKeychainGHCR(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no Docker credentials
	env := map[string]string{ociregistry.EnvGitHubToken: "ghp_x", ociregistry.EnvGitHubActor: "octo"}
	kc := ociregistry.Keychain(func(k string) string { return env[k] }, "registry.example.com")
	auth := func(host string) *authn.AuthConfig {
		t.Helper()
		reg, _ := name.NewRegistry(host)
		a, err := kc.Resolve(reg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := auth("ghcr.io"); c.Username != "octo" || c.Password != "ghp_x" {
		t.Fatalf("ghcr.io auth = %+v", c)
	}
	if c := auth("quay.io"); c.Username != "" || c.Password != "" {
		t.Fatalf("quay.io auth = %+v, want anonymous", c)
	}
	env[ociregistry.EnvUsername], env[ociregistry.EnvPassword] = "u", "p"
	kc = ociregistry.Keychain(func(k string) string { return env[k] }, "ghcr.io")
	if c := auth("ghcr.io"); c.Username != "u" || c.Password != "p" {
		t.Fatalf("ghcr.io with GLIMPSE_REGISTRY_* = %+v", c)
	}
}

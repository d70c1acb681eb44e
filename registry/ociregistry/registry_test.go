package ociregistry_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

func open(t *testing.T, rawURL string, env map[string]string) preview.Registry {
	t.Helper()
	r, err := preview.Registries.Open(context.Background(), rawURL, &preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	return r
}

// pushRandom pushes a random image as repo:tag and returns its digest.
func pushRandom(t *testing.T, repo, tag string, opts ...remote.Option) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := ociregistry.ParseReference(repo+":"+tag, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push %s:%s: %v", repo, tag, err)
	}
	d, _ := img.Digest()
	return d.String()
}

func harness(host string) previewtest.RegistryHarness {
	return previewtest.RegistryHarness{
		New: func(t *testing.T) preview.Registry { return open(t, "oci://"+host+"/previews", nil) },
		Push: func(t *testing.T, repo, tag string, seed int) string {
			return pushRandom(t, repo, tag)
		},
	}
}

func TestConformanceEmbedded(t *testing.T) {
	host, _ := registrytest.Embedded(t)
	previewtest.RunRegistryTests(t, harness(host))
}

func TestConformanceDistribution(t *testing.T) {
	host := registrytest.Distribution(t)
	previewtest.RunRegistryTests(t, harness(host))
}

// Deleting one tag of a manifest that has two leaves the other, on both
// registries (kobuild tags one image pr-N-commit and src-<hash>).
func TestDeleteSharedTag(t *testing.T) {
	t.Parallel()
	hosts := map[string]func(testing.TB) string{
		"embedded":     func(t testing.TB) string { h, _ := registrytest.Embedded(t); return h },
		"distribution": registrytest.Distribution,
	}
	for label, start := range hosts {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			host := start(t)
			r := open(t, "oci://"+host, nil)
			ctx := context.Background()
			img, _ := random.Image(100, 1)
			for _, tag := range []string{"pr-1-abc", "src-0123"} {
				ref, _ := ociregistry.ParseReference(r.Repository("app")+":"+tag, false)
				if err := remote.Write(ref, img); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.DeleteTag(ctx, "app", "pr-1-abc"); err != nil {
				t.Fatalf("DeleteTag: %v", err)
			}
			d, _ := img.Digest()
			if got, err := r.Resolve(ctx, r.Repository("app")+":src-0123"); err != nil || got != d.String() {
				t.Fatalf("sibling tag after DeleteTag = %q, %v; want %s", got, err, d)
			}
			tags, err := r.Tags(ctx, "app")
			if err != nil || strings.Join(tags, ",") != "src-0123" {
				t.Fatalf("Tags = %v, %v", tags, err)
			}
		})
	}
}

func TestOpenURLs(t *testing.T) {
	t.Parallel()
	r := open(t, "oci://127.0.0.1:5000/acme/previews/", nil)
	if got := r.Repository("hello"); got != "127.0.0.1:5000/acme/previews/hello" {
		t.Fatalf("Repository = %q", got)
	}
	if got := open(t, "oci://ghcr.io", nil).Repository("hello"); got != "ghcr.io/hello" {
		t.Fatalf("Repository = %q", got)
	}
	for _, bad := range []string{
		"oci://",
		"oci://registry/x",           // no dot or port: would mean Docker Hub
		"oci://127.0.0.1:5000?foo=1", // unknown parameter
		"oci://u:p@127.0.0.1:5000",   // credentials in the URL
		"oci://127.0.0.1:5000/UPPER", // not a repository name
		"oci://127.0.0.1:5000?insecure=maybe",
	} {
		_, err := preview.Registries.Open(context.Background(), bad, nil)
		if preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestLocalHosts(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.0.0.2": true, "localhost": true, "localhost:8080": true,
		"pr-1.hello.localhost:8080": true, "[::1]:5000": true, "ghcr.io": false, "10.0.0.1:5000": false,
	} {
		if got := ociregistry.IsLocalHost(h); got != want {
			t.Errorf("IsLocalHost(%q) = %v, want %v", h, got, want)
		}
	}
	r, err := ociregistry.ParseReference("localhost/x:y", false)
	if err != nil || r.Context().Scheme() != "http" {
		t.Fatalf("localhost reference: %v, %v", r, err)
	}
	r, err = ociregistry.ParseReference("127.0.0.2:99/x:y", false)
	if err != nil || r.Context().Scheme() != "http" {
		t.Fatalf("127.0.0.2 reference: %v, %v", r, err)
	}
	r, err = ociregistry.ParseReference("ghcr.io/x:y", false)
	if err != nil || r.Context().Scheme() != "https" {
		t.Fatalf("remote reference: %v, %v", r, err)
	}
	if _, err := ociregistry.ParseReference("Not A Ref", false); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("bad reference: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		r := open(t, "oci://"+addr, nil)
		_, err = r.Resolve(ctx, addr+"/x:y")
		if preview.CodeOf(err) != preview.Unavailable {
			t.Fatalf("Resolve against a closed port: %v (code %v), want Unavailable", err, preview.CodeOf(err))
		}
		if _, err := r.Tags(ctx, "x"); preview.CodeOf(err) != preview.Unavailable {
			t.Fatalf("Tags against a closed port: %v, want Unavailable", err)
		}
	})

	t.Run("DeletesDisabled", func(t *testing.T) {
		t.Parallel()
		reg, err := embedregistry.New(t.TempDir(), &embedregistry.Options{DisableDelete: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		srv := httptest.NewServer(reg.Handler())
		t.Cleanup(srv.Close)
		host := srv.Listener.Addr().String()
		r := open(t, "oci://"+host, nil)
		pushRandom(t, r.Repository("app"), "t1")
		if err := r.DeleteTag(ctx, "app", "t1"); preview.CodeOf(err) != preview.Unimplemented {
			t.Fatalf("DeleteTag on a registry refusing deletes: %v, want Unimplemented", err)
		}
	})

	t.Run("BasicAuth", func(t *testing.T) {
		t.Parallel()
		host, reg := registrytest.Embedded(t)
		_ = host
		srv := httptest.NewServer(basicAuth("admin", "s3cret", reg.Handler()))
		t.Cleanup(srv.Close)
		authHost := srv.Listener.Addr().String()

		anon := open(t, "oci://"+authHost, nil)
		if _, err := anon.Tags(ctx, "app"); preview.CodeOf(err) != preview.PermissionDenied {
			t.Fatalf("Tags without credentials: %v, want PermissionDenied", err)
		}
		wrong := open(t, "oci://"+authHost, map[string]string{ociregistry.EnvUsername: "admin", ociregistry.EnvPassword: "nope"})
		if _, err := wrong.Resolve(ctx, authHost+"/app:x"); preview.CodeOf(err) != preview.PermissionDenied {
			t.Fatalf("Resolve with a wrong password: %v, want PermissionDenied", err)
		}
		env := map[string]string{ociregistry.EnvUsername: "admin", ociregistry.EnvPassword: "s3cret"}
		ok := open(t, "oci://"+authHost, env)
		kc := ociregistry.Keychain(func(k string) string { return env[k] }, authHost)
		d := pushRandom(t, ok.Repository("app"), "v1", remote.WithAuthFromKeychain(kc))
		if got, err := ok.Resolve(ctx, ok.Repository("app")+":v1"); err != nil || got != d {
			t.Fatalf("Resolve with credentials = %q, %v; want %s", got, err, d)
		}
		if err := ok.DeleteTag(ctx, "app", "v1"); err != nil {
			t.Fatalf("DeleteTag with credentials: %v", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		t.Parallel()
		host, _ := registrytest.Embedded(t)
		r := open(t, "oci://"+host, nil)
		if err := r.DeleteTag(ctx, "app", "bad tag"); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("DeleteTag(bad tag): %v", err)
		}
		if _, err := r.Tags(ctx, "Bad_App"); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("Tags(Bad_App): %v", err)
		}
		if _, err := r.Resolve(ctx, host+"/app@sha256:1234"); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("Resolve(short digest): %v", err)
		}
	})
}

// basicAuth wraps h with HTTP basic authentication, as the daemon may.
func basicAuth(user, pass string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="glimpse"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

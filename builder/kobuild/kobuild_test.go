package kobuild_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// source copies testdata/hello (a module) to a temporary directory and
// returns the function directory inside it.
func source(t testing.TB) string {
	t.Helper()
	return filepath.Join(testapp.Copy(t, "testdata/hello"), "fn")
}

var counter atomic.Int64

// edit rewrites a file of the module that holds fn.
func edit(t testing.TB, fn, rel, old, new string) {
	t.Helper()
	p := filepath.Join(filepath.Dir(fn), filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newBuilder(t testing.TB) *kobuild.Builder {
	t.Helper()
	b, err := kobuild.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func registryFor(t testing.TB, host string) preview.Registry {
	t.Helper()
	r, err := preview.Registries.Open(context.Background(), "oci://"+host+"/previews", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func harness(host string) previewtest.BuilderHarness {
	return previewtest.BuilderHarness{
		New:      func(t *testing.T) preview.Builder { return newBuilder(t) },
		Registry: func(t *testing.T) preview.Registry { return registryFor(t, host) },
		Source:   func(t *testing.T) string { return source(t) },
		// A change in a module-local package the function imports.
		Change: func(t *testing.T, dir string) {
			edit(t, dir, "greet/greet.go", `"hello "`, fmt.Sprintf(`"hello %d "`, counter.Add(1)))
		},
		Break: func(t *testing.T, dir string) {
			edit(t, dir, "fn/main.go", "greet.Hello(version)", "greet.Hello(nope)")
		},
	}
}

func TestConformanceEmbedded(t *testing.T) {
	host, _ := registrytest.Embedded(t)
	previewtest.RunBuilderTests(t, harness(host))
}

func TestConformanceDistribution(t *testing.T) {
	host := registrytest.Distribution(t)
	previewtest.RunBuilderTests(t, harness(host))
}

func request(reg preview.Registry, dir string, pr int, commit string) preview.BuildRequest {
	tg := preview.Target{App: "hello", PR: pr, Commit: commit}
	return preview.BuildRequest{
		Target: tg, SourceDir: dir, Repository: reg.Repository(tg.App), Tag: preview.ImageTag(tg),
		Labels: preview.OwnerLabels("test", tg),
	}
}

func TestImageContents(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	reg := registryFor(t, host)
	dir := source(t)
	ctx := context.Background()
	req := request(reg, dir, 7, "abcdef1234")
	var lines []string
	req.Progress = func(l string) { lines = append(lines, l) }
	res, err := newBuilder(t).Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "building ") || !strings.HasPrefix(lines[len(lines)-1], "pushed ") {
		t.Fatalf("progress lines %q", lines)
	}
	if len(res.SourceHash) != 32 {
		t.Fatalf("SourceHash %q: want 32 hex digits (a valid label value)", res.SourceHash)
	}
	ref, _ := ociregistry.ParseReference(res.Image, false)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pushed image does not validate: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != "/ko-app/fn" || len(cf.Config.Env) == 0 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
		t.Fatalf("entrypoint %q env %q", cf.Config.Entrypoint, cf.Config.Env)
	}
	for k, v := range req.Labels {
		if cf.Config.Labels[k] != v {
			t.Fatalf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	if cf.Config.Labels[preview.LabelSourceHash] != res.SourceHash {
		t.Fatalf("source-hash label %q, want %q", cf.Config.Labels[preview.LabelSourceHash], res.SourceHash)
	}
	// Both tags name the image.
	for _, tag := range []string{req.Tag, "src-" + res.SourceHash[:16]} {
		if d, err := reg.Resolve(ctx, req.Repository+":"+tag); err != nil || d != res.Digest {
			t.Fatalf("tag %s = %q, %v; want %s", tag, d, err, res.Digest)
		}
	}
	bin := extract(t, img, "ko-app/fn")
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out, err := exec.Command(bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello v1" {
			t.Fatalf("running the image's binary: %q, %v", out, err)
		}
	}
}

// extract writes the named file of the image's single layer to a temporary
// file and returns its path; it checks the file is executable.
func extract(t *testing.T, img v1.Image, name string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("layer has no %s", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != name {
			continue
		}
		if h.Mode&0o111 == 0 {
			t.Fatalf("%s mode %o is not executable", name, h.Mode)
		}
		p := filepath.Join(t.TempDir(), filepath.Base(name))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
}

func TestSourceHashRule(t *testing.T) {
	t.Parallel()
	b := newBuilder(t)
	ctx := context.Background()
	a, c := source(t), source(t)
	ha, err := b.SourceHash(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if hc, _ := b.SourceHash(ctx, c); hc != ha {
		t.Fatalf("the same source in two places hashes differently: %s, %s", ha, hc)
	}
	steps := []struct {
		what    string
		rel     string
		old     string
		new     string
		changes bool
	}{
		{"a file of the module the function does not import", "static/readme.txt", "not part", "still not part", false},
		{"a test file of an imported package", "greet/greet_test.go", "", "", false},
		{"an imported module-local package", "greet/greet.go", `"hello "`, `"hi "`, true},
		{"the function's own code", "fn/main.go", `"v1"`, `"v2"`, true},
		{"go.mod", "go.mod", "go 1.26", "go 1.26\n\n// a comment", true},
		{"a non-Go file of the function directory", "fn/notes.txt", "", "", true},
	}
	prev := ha
	for _, s := range steps {
		p := filepath.Join(filepath.Dir(a), filepath.FromSlash(s.rel))
		if s.old == "" {
			os.WriteFile(p, []byte("package greet\n"), 0o644)
		} else {
			edit(t, a, s.rel, s.old, s.new)
		}
		h, err := b.SourceHash(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if changed := h != prev; changed != s.changes {
			t.Errorf("changing %s: hash changed = %v, want %v", s.what, changed, s.changes)
		}
		prev = h
	}
	arm, err := kobuild.New(&kobuild.Options{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := arm.SourceHash(ctx, a); h == prev {
		t.Error("another platform gives the same hash")
	}
}

func TestReuseAndRebuild(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	reg := registryFor(t, host)
	b := newBuilder(t)
	ctx := context.Background()
	dir := source(t)
	first, err := b.Build(ctx, request(reg, dir, 1, "aaaaaaa"))
	if err != nil {
		t.Fatal(err)
	}
	// An unrelated file changes: nothing is built.
	edit(t, dir, "static/readme.txt", "not part", "still not part")
	again, err := b.Build(ctx, request(reg, dir, 2, "bbbbbbb"))
	if err != nil || !again.Reused || again.Digest != first.Digest {
		t.Fatalf("Build after an unrelated change = %+v, %v; want reuse of %s", again, err, first.Digest)
	}
	// The reuse is idempotent.
	if again2, err := b.Build(ctx, request(reg, dir, 2, "bbbbbbb")); err != nil || !again2.Reused || again2.Digest != first.Digest {
		t.Fatalf("repeated reuse = %+v, %v", again2, err)
	}
}

func TestCompileError(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	reg := registryFor(t, host)
	dir := source(t)
	edit(t, dir, "fn/main.go", "greet.Hello(version)", "greet.Hello(undefinedThing)")
	var lines []string
	req := request(reg, dir, 3, "ccccccc")
	req.Progress = func(l string) { lines = append(lines, l) }
	_, err := newBuilder(t).Build(context.Background(), req)
	if preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("compile error: %v (code %v), want InvalidArgument", err, preview.CodeOf(err))
	}
	if !strings.Contains(err.Error(), "main.go:") || !strings.Contains(err.Error(), "undefined: undefinedThing") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("compile error message %q: want the compiler's first error line", err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "undefinedThing") {
		t.Fatalf("compiler output not in progress: %q", lines)
	}
}

func TestNotAModule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	_, err := newBuilder(t).SourceHash(context.Background(), dir)
	if preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("source outside a module: %v, want FailedPrecondition", err)
	}
}

func TestPushBinary(t *testing.T) {
	t.Parallel()
	host, _ := registrytest.Embedded(t)
	bin := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	labels := map[string]string{"a": "b"}
	d1, err := kobuild.PushBinary(ctx, bin, host+"/tools/server:v1", labels, nil)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := kobuild.PushBinary(ctx, bin, host+"/tools/server:v2", labels, []string{"/ko-app/server", "--flag"})
	if err != nil {
		t.Fatal(err)
	}
	if d1 == d2 {
		t.Fatal("a different entrypoint gave the same digest")
	}
	d3, err := kobuild.PushBinary(ctx, bin, host+"/tools/server:v3", labels, nil)
	if err != nil || d3 != d1 {
		t.Fatalf("pushing the same binary again: %s, %v; want the same digest %s", d3, err, d1)
	}
	ref, _ := ociregistry.ParseReference(host+"/tools/server@"+d2, false)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["a"] != "b" || strings.Join(cf.Config.Entrypoint, " ") != "/ko-app/server --flag" {
		t.Fatalf("config %+v", cf.Config)
	}
	got, _ := os.ReadFile(extract(t, img, "ko-app/server"))
	if string(got) != "#!/bin/sh\necho hi\n" {
		t.Fatalf("binary in the image = %q", got)
	}
	if _, err := kobuild.PushBinary(ctx, filepath.Join(t.TempDir(), "missing"), host+"/x:y", nil, nil); err == nil {
		t.Fatal("PushBinary of a missing file: nil error")
	}
}

func TestOpenURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, ok := range []string{"ko://", "ko://?platform=linux/arm64", "ko://?platform=linux/arm/v7&insecure=true"} {
		if _, err := preview.Builders.Open(ctx, ok, nil); err != nil {
			t.Errorf("Open(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"ko://host", "ko://?platform=windows/amd64", "ko://?foo=bar", "ko://?platform=linux", "ko://?insecure=perhaps"} {
		if _, err := preview.Builders.Open(ctx, bad, nil); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestRegistryDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = newBuilder(t).Build(context.Background(), request(registryFor(t, addr), source(t), 1, "ddddddd"))
	if preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Build with the registry down: %v (code %v), want Unavailable", err, preview.CodeOf(err))
	}
}

// TestCompileErrorWithUserGOFLAGS: GOFLAGS that change what go build
// prints (-v lists package names first, -x the commands it runs), from the
// environment or from the go env file, do not hide the compiler's message,
// and do not change the source hash.
func TestCompileErrorWithUserGOFLAGS(t *testing.T) {
	host, _ := registrytest.Embedded(t)
	reg := registryFor(t, host)
	dir := source(t)
	quiet, err := newBuilder(t).SourceHash(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(t, dir, "fn/main.go", "greet.Hello(version)", "greet.Hello(undefinedThing)")
	goenv := filepath.Join(t.TempDir(), "go.env")
	if err := os.WriteFile(goenv, []byte("GOFLAGS=-x -buildvcs=false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, goflags, goenv string }{
		{"env -v", "-v -buildvcs=false", ""},
		{"env -v=true -json", "-v=true -json -buildvcs=false", ""},
		{"go env file -x", "", goenv},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOFLAGS", c.goflags)
			if c.goenv != "" {
				t.Setenv("GOENV", c.goenv)
			}
			_, err := newBuilder(t).Build(context.Background(), request(reg, dir, 3, "ccccccc"))
			if preview.CodeOf(err) != preview.InvalidArgument {
				t.Fatalf("compile error: %v (code %v), want InvalidArgument", err, preview.CodeOf(err))
			}
			if !strings.Contains(err.Error(), "main.go:") || !strings.Contains(err.Error(), "undefined: undefinedThing") {
				t.Fatalf("compile error message %q: want the compiler's first error line", err)
			}
		})
	}
	// -v changes no output of the build: the hash is the same as without it.
	edit(t, dir, "fn/main.go", "greet.Hello(undefinedThing)", "greet.Hello(version)")
	t.Setenv("GOFLAGS", "-v -buildvcs=false")
	if h, err := newBuilder(t).SourceHash(context.Background(), dir); err != nil || h != quiet {
		t.Fatalf("source hash with GOFLAGS=-v = %s, %v; want %s as without it", h, err, quiet)
	}
}

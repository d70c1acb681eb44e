package dockerbuild_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/glimpse-dev/glimpse/builder/dockerbuild"
	"github.com/glimpse-dev/glimpse/faas/localfaas"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// EnvDockerHost names the Docker engine the tests build on
// (unix:///path/docker.sock); .ci/run starts one and sets it. Tests that
// need an engine skip without it, and fail under CI.
const EnvDockerHost = "GLIMPSE_DOCKER_HOST"

func engine(t testing.TB) string {
	t.Helper()
	return testenv.Require(t, EnvDockerHost, "Docker engine to build on")
}

// The function binary: testdata/webfn, built once per test binary.
var webfn struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if webfn.dir != "" {
		os.RemoveAll(webfn.dir)
	}
	removeTestImages()
	os.Exit(code)
}

// removeTestImages removes from the engine the images the tests built:
// Build leaves each tagged <repository>:src-<hash>, and every test
// repository is on a loopback registry.
func removeTestImages() {
	host := os.Getenv(EnvDockerHost)
	if host == "" {
		return
	}
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", "127.0.0.1:*/*:src-*")})
	if err != nil {
		return
	}
	for _, img := range list.Items {
		for _, tag := range img.RepoTags {
			cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
}

func webfnBinary(t testing.TB) string {
	t.Helper()
	webfn.once.Do(func() {
		webfn.dir, webfn.err = os.MkdirTemp("", "dockerbuild-test-")
		if webfn.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(webfn.dir, "webfn"), "./testdata/webfn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			webfn.err = fmt.Errorf("building webfn: %v\n%s", err, out)
		}
	})
	if webfn.err != nil {
		t.Fatal(webfn.err)
	}
	return filepath.Join(webfn.dir, "webfn")
}

const dockerfile = `FROM scratch
COPY app /app
COPY version.txt /version.txt
ENTRYPOINT ["/app"]
`

var counter atomic.Int64

// source makes a build context: the webfn binary, a version file and a
// Dockerfile FROM scratch around them.
func source(t testing.TB) string {
	t.Helper()
	bin := webfnBinary(t)
	dir := t.TempDir()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "app", string(b), 0o755)
	write(t, dir, "version.txt", "v1\n", 0o644)
	write(t, dir, "Dockerfile", dockerfile, 0o644)
	return dir
}

func write(t testing.TB, dir, rel, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func newBuilder(t testing.TB, host string, query string) *dockerbuild.Builder {
	t.Helper()
	u := "docker://" + host
	if query != "" {
		u += "?" + query
	}
	b, err := preview.Builders.Open(context.Background(), u, &preview.OpenOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	db := b.(*dockerbuild.Builder)
	t.Cleanup(func() { db.Close() })
	return db
}

func openRegistry(t testing.TB, host string) preview.Registry {
	t.Helper()
	r, err := preview.Registries.Open(context.Background(), "oci://"+host, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func harness(t *testing.T, regHost string) previewtest.BuilderHarness {
	host := engine(t)
	return previewtest.BuilderHarness{
		New:      func(t *testing.T) preview.Builder { return newBuilder(t, host, "network=none") },
		Registry: func(t *testing.T) preview.Registry { return openRegistry(t, regHost) },
		Source:   func(t *testing.T) string { return source(t) },
		Change: func(t *testing.T, dir string) {
			write(t, dir, "version.txt", fmt.Sprintf("v%d\n", 2+counter.Add(1)), 0o644)
		},
		Break: func(t *testing.T, dir string) {
			write(t, dir, "Dockerfile", "FROM scratch\nCOPY app /app\nCOPY missing.txt /missing.txt\n", 0o644)
		},
	}
}

func TestConformanceEmbedded(t *testing.T) {
	h := harness(t, func() string { h, _ := registrytest.Embedded(t); return h }())
	previewtest.RunBuilderTests(t, h)
}

func TestConformanceDistribution(t *testing.T) {
	engine(t)
	previewtest.RunBuilderTests(t, harness(t, registrytest.Distribution(t)))
}

func request(reg preview.Registry, app, dir string, pr int, commit string, lines *[]string) preview.BuildRequest {
	tg := preview.Target{App: app, PR: pr, Commit: commit}
	var mu sync.Mutex
	return preview.BuildRequest{
		Target: tg, SourceDir: dir, Repository: reg.Repository(app), Tag: preview.ImageTag(tg),
		Labels: preview.OwnerLabels("test", tg),
		Progress: func(l string) {
			if lines != nil {
				mu.Lock()
				*lines = append(*lines, l)
				mu.Unlock()
			}
		},
	}
}

// The image a docker build pushed is pulled back by digest and run by the
// local runtime as a preview would be: Apply, then an HTTP request to the
// function's endpoint.
func TestBuiltImageRunsAsPreview(t *testing.T) {
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	b := newBuilder(t, host, "network=none")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var lines []string
	req := request(reg, "webfn", source(t), 7, "abcdef1", &lines)
	res, err := b.Build(ctx, req)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	log := strings.Join(lines, "\n")
	for _, want := range []string{"Step 1/4 : FROM scratch", "Step 2/4 : COPY app /app", "Successfully built", "pushed " + req.Repository + "@" + res.Digest} {
		if !strings.Contains(log, want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}

	rt, err := localfaas.New(t.TempDir(), &localfaas.Options{StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	fn := preview.Function{
		Name:   preview.FunctionName("webfn", 7),
		Image:  res.Image,
		Env:    map[string]string{"GLIMPSE_PR": "7"},
		Labels: req.Labels.With(preview.LabelSourceHash, res.SourceHash),
	}
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply %s: %v", res.Image, err)
	}
	addr, err := rt.WaitEndpoint(ctx, fn.Name)
	if err != nil {
		t.Fatalf("WaitEndpoint: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/graphql")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from docker, pr 7\n" {
		t.Fatalf("function answered %d %q", resp.StatusCode, body)
	}
}

// A failing Dockerfile step is one error line naming the step and the
// engine's message; the full log went to Progress.
func TestFailingStep(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	b := newBuilder(t, host, "network=none")
	dir := source(t)
	write(t, dir, "Dockerfile", "FROM scratch\nCOPY app /app\nCOPY nothing-here /x\n", 0o644)
	var lines []string
	_, err := b.Build(context.Background(), request(reg, "broken", dir, 1, "aaaaaaa", &lines))
	if preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Build = %v (code %v), want InvalidArgument", err, preview.CodeOf(err))
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "Step 3/3 : COPY nothing-here /x") || !strings.Contains(msg, "nothing-here") || !strings.Contains(msg, dir) {
		t.Fatalf("error %q: want one line naming the context, step 3/3 and the missing file", msg)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "error: ") }) {
		t.Fatalf("progress lacks the error line: %q", lines)
	}

	write(t, dir, "Dockerfile", "FROM scratch\nBOGUS instruction\n", 0o644)
	_, err = b.Build(context.Background(), request(reg, "broken", dir, 1, "aaaaaaa", nil))
	if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(strings.ToLower(err.Error()), "bogus") {
		t.Fatalf("parse error = %v; want one InvalidArgument line naming the instruction", err)
	}
}

// Options reach the engine: the target stage, build arguments, the
// platform and the labels; .dockerignore keeps files out of the image.
func TestOptionsAndDockerignore(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	b := newBuilder(t, host, "network=none&target=web&arg=GREETING=hi&platform=linux/arm64&dockerfile=build/Dockerfile")
	dir := t.TempDir()
	write(t, dir, "build/Dockerfile", `FROM scratch AS other
COPY other.txt /other.txt

FROM scratch AS web
ARG GREETING
LABEL greeting=$GREETING
COPY . /ctx/
`, 0o644)
	write(t, dir, "other.txt", "x", 0o644)
	write(t, dir, "keep/a.txt", "a", 0o644)
	write(t, dir, "secret/key.pem", "k", 0o600)
	write(t, dir, "secret/public.pem", "p", 0o644)
	write(t, dir, "logs/1.log", "l", 0o644)
	write(t, dir, "node_modules/x/index.js", "n", 0o644)
	write(t, dir, ".dockerignore", "# comment\nsecret\n!secret/public.pem\n**/*.log\nnode_modules\nbuild\n.dockerignore\n", 0o644)
	ctx := context.Background()
	req := request(reg, "opts", dir, 3, "bbbbbbb", nil)
	res, err := b.Build(ctx, req)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	ref, _ := ociregistry.ParseReference(res.Image, false)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" {
		t.Errorf("platform = %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	l := cf.Config.Labels
	if l["greeting"] != "hi" || l[preview.LabelSourceHash] != res.SourceHash || l[preview.LabelApp] != "opts" || l[preview.LabelPR] != "3" {
		t.Errorf("labels = %v", l)
	}
	var files []string
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, strings.TrimPrefix(h.Name, "/"))
		}
	}
	slices.Sort(files)
	// The Dockerfile and .dockerignore are sent to the engine but, being
	// excluded, not copied; other.txt belongs to the other stage.
	want := []string{"ctx/keep/a.txt", "ctx/other.txt", "ctx/secret/public.pem"}
	if !slices.Equal(files, want) {
		t.Fatalf("image files = %q, want %q", files, want)
	}

	// Changing an ignored file reuses the image; a build argument builds anew.
	write(t, dir, "logs/1.log", "changed", 0o644)
	again, err := b.Build(ctx, request(reg, "opts", dir, 4, "ccccccc", nil))
	if err != nil || !again.Reused || again.Digest != res.Digest {
		t.Fatalf("Build after an ignored change = %+v, %v; want reuse of %s", again, err, res.Digest)
	}
	b2 := newBuilder(t, host, "network=none&target=web&arg=GREETING=hello&platform=linux/arm64&dockerfile=build/Dockerfile")
	other, err := b2.Build(ctx, request(reg, "opts", dir, 5, "ddddddd", nil))
	if err != nil || other.Reused || other.SourceHash == res.SourceHash {
		t.Fatalf("Build with another build argument = %+v, %v; want a new image", other, err)
	}
}

// With no engine at the address, Build fails at once with one Unavailable
// line naming where it looked.
func TestNoEngine(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM scratch\n", 0o644)
	for _, q := range []string{"", "platform=linux/amd64"} {
		b := newBuilder(t, "unix://"+sock, q)
		_, err := b.Build(context.Background(), request(reg, "noengine", dir, 1, "aaaaaaa", nil))
		if preview.CodeOf(err) != preview.Unavailable || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "not reachable") {
			t.Fatalf("Build with %q and no engine = %v (code %v); want one Unavailable line naming %s", q, err, preview.CodeOf(err), sock)
		}
	}
	// A TCP address nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b := newBuilder(t, addr, "")
	if _, err := b.Build(context.Background(), request(reg, "noengine", dir, 1, "aaaaaaa", nil)); preview.CodeOf(err) != preview.Unavailable || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Build against a closed port = %v, want Unavailable naming %s", err, addr)
	}
}

// The source hash follows the context the engine sees: ignored files and
// times do not count, content, modes, names and settings do. No engine is
// needed: the platform is set.
func TestSourceHashRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBuilder(t, "unix:///nonexistent.sock", "platform=linux/amd64")
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM scratch\nCOPY . /\n", 0o644)
	write(t, dir, "a.txt", "a", 0o644)
	write(t, dir, "tmp/x.log", "x", 0o644)
	write(t, dir, ".dockerignore", "tmp\n", 0o644)
	h0, err := b.SourceHash(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string) {
		t.Helper()
		if h, err := b.SourceHash(ctx, dir); err != nil || h != h0 {
			t.Fatalf("%s changed the hash (%s -> %s, %v)", what, h0, h, err)
		}
	}
	differs := func(what string) {
		t.Helper()
		h, err := b.SourceHash(ctx, dir)
		if err != nil || h == h0 {
			t.Fatalf("%s did not change the hash (%s, %v)", what, h, err)
		}
		h0 = h
	}
	write(t, dir, "tmp/x.log", "changed", 0o644)
	same("an ignored file")
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "a.txt"), future, future)
	same("a modification time")
	write(t, dir, "a.txt", "b", 0o644)
	differs("a content change")
	os.Chmod(filepath.Join(dir, "a.txt"), 0o755)
	differs("a mode change")
	os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"))
	differs("a rename")
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	differs("a new empty directory")
	os.Symlink("b.txt", filepath.Join(dir, "link"))
	differs("a new symbolic link")
	write(t, dir, ".dockerignore", "tmp\n*.md\n", 0o644)
	differs("a .dockerignore change")
	write(t, dir, "Dockerfile", "FROM scratch\nCOPY . /app/\n", 0o644)
	differs("a Dockerfile change")

	// The same context elsewhere hashes the same; settings count.
	other := t.TempDir()
	if err := os.CopyFS(other, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Symlink("b.txt", filepath.Join(other, "link"))
	if h, err := b.SourceHash(ctx, other); err != nil || h != h0 {
		t.Fatalf("a copy of the context hashes %s, %v; want %s", h, err, h0)
	}
	for _, q := range []string{"platform=linux/arm64", "platform=linux/amd64&target=x", "platform=linux/amd64&arg=A=1", "platform=linux/amd64&network=none"} {
		if h, err := newBuilder(t, "unix:///nonexistent.sock", q).SourceHash(ctx, dir); err != nil || h == h0 {
			t.Errorf("setting %s: hash %s, %v; want a different hash", q, h, err)
		}
	}

	if _, err := b.SourceHash(ctx, t.TempDir()); preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "no Dockerfile") {
		t.Fatalf("a context without a Dockerfile: %v", err)
	}
}

func TestOpenURL(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DOCKER_HOST": "unix:///from/env.sock"}
	open := func(u string) (*dockerbuild.Builder, error) {
		b, err := preview.Builders.Open(context.Background(), u, &preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			return nil, err
		}
		return b.(*dockerbuild.Builder), nil
	}
	for u, want := range map[string]string{
		"docker://":                             "unix:///from/env.sock",
		"docker:///var/run/docker.sock":         "unix:///var/run/docker.sock",
		"docker://unix:///run/user/docker.sock": "unix:///run/user/docker.sock",
		"docker://tcp://10.1.2.3:2376":          "tcp://10.1.2.3:2376",
		"docker://10.1.2.3:2375?target=prod":    "tcp://10.1.2.3:2375",
	} {
		b, err := open(u)
		if err != nil {
			t.Errorf("open %s: %v", u, err)
			continue
		}
		if b.Host() != want {
			t.Errorf("open %s: host %s, want %s", u, b.Host(), want)
		}
		b.Close()
	}
	delete(env, "DOCKER_HOST")
	if b, err := open("docker://"); err != nil || b.Host() != dockerbuild.DefaultHost {
		t.Errorf("docker:// without DOCKER_HOST: %v, %v", b, err)
	}
	for _, bad := range []string{
		"docker://?foo=1",
		"docker://?platform=windows",
		"docker://?arg==x",
		"docker://?dockerfile=../Dockerfile",
		"docker://?insecure=maybe",
		"docker://u:p@host:2375",
		"docker://tcp://",
		"docker://unix://",
		"docker://host:2375/some/path",
	} {
		if _, err := open(bad); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("open %s = %v, want InvalidArgument", bad, err)
		}
	}
}

// A cancelled build stops promptly even while the engine works.
func TestCancelDuringBuild(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	b := newBuilder(t, host, "network=none")
	ctx, cancel := context.WithCancel(context.Background())
	req := request(reg, "cancel", source(t), 1, "aaaaaaa", nil)
	req.Progress = func(l string) {
		if strings.HasPrefix(l, "Step 2/") {
			cancel()
		}
	}
	_, err := b.Build(ctx, req)
	if c := preview.CodeOf(err); c != preview.Canceled {
		t.Fatalf("Build cancelled mid-way = %v (code %v), want Canceled", err, c)
	}
	if _, err := reg.Resolve(context.Background(), req.Repository+":"+req.Tag); !preview.IsNotFound(err) {
		t.Fatalf("a cancelled build left its tag: %v", err)
	}
}

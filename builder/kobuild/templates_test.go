package kobuild_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// buildImageBinary builds dir with b, checks the image has the usual shape
// (one layer, /ko-app/<name> entrypoint) and returns the extracted binary.
func buildImageBinary(t *testing.T, b *kobuild.Builder, dir, name string) (string, preview.BuildResult, []string) {
	t.Helper()
	host, _ := registrytest.Embedded(t)
	reg := registryFor(t, host)
	req := request(reg, dir, 15, "1515151")
	var lines []string
	req.Progress = func(l string) { lines = append(lines, l) }
	res, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("Build: %v (progress %q)", err, lines)
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
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/ko-app/"+name {
		t.Fatalf("entrypoint %q, want /ko-app/%s", got, name)
	}
	return extract(t, img, "ko-app/"+name), res, lines
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// serve starts bin with PORT set and waits for its health endpoint.
func serve(t *testing.T, bin string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the image is linux/amd64")
	}
	port := freePort(t)
	var cmd *exec.Cmd
	for attempt := 1; ; attempt++ {
		cmd = exec.Command(bin)
		cmd.Env = append([]string{"PORT=" + port}, env...)
		cmd.Stderr = os.Stderr
		err := cmd.Start()
		if err == nil {
			break
		}
		// The binary was just written by this process: a child that
		// another parallel test forked meanwhile may still hold the
		// write descriptor (ETXTBSY, golang/go#22315) until it execs.
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 50 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(base + "/_/health")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("/_/health = %d %q", res.StatusCode, body)
			}
			return cmd, base
		}
		if time.Now().After(deadline) {
			t.Fatalf("the function did not answer on $PORT: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// sigterm sends SIGTERM and checks the process exits 0 promptly.
func sigterm(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("SIGTERM took %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the function did not stop within 5s of SIGTERM")
	}
}

func TestGolangMiddleware(t *testing.T) {
	t.Parallel()
	dir := testapp.Copy(t, "testdata/middleware")
	// Detected without a template, and named by the stack's lang: the same
	// source hash and image.
	bin, res, lines := buildImageBinary(t, newBuilder(t), dir, binaryNameOf(dir))
	if !strings.Contains(lines[0], "lang: golang-middleware") {
		t.Fatalf("first progress line %q", lines[0])
	}
	withLang, err := kobuild.New(&kobuild.Options{Template: kobuild.TemplateGolangMiddleware})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := withLang.SourceHash(context.Background(), dir); err != nil || h != res.SourceHash {
		t.Fatalf("SourceHash with template = %s, %v; want %s", h, err, res.SourceHash)
	}
	cmd, base := serve(t, bin, "GREETING=hi")
	code, hdr, body := get(t, "POST", base+"/graphql", "ping")
	if code != 200 || hdr.Get("X-Function") != "middleware" || body != `hello from middleware: POST /graphql body="ping" greeting=hi` {
		t.Fatalf("POST /graphql = %d %v %q", code, hdr, body)
	}
	sigterm(t, cmd)
}

func TestGolangMiddlewareDefaultPortAndLimits(t *testing.T) {
	t.Parallel()
	dir := testapp.Copy(t, "testdata/middleware")
	edit(t, filepath.Join(dir, "x"), "handler.go", "w.Header().Set", "if r.URL.Path == \"/slow\" {\n\t\t<-r.Context().Done()\n\t\tw.WriteHeader(504)\n\t\treturn\n\t}\n\tw.Header().Set")
	bin, _, _ := buildImageBinary(t, newBuilder(t), dir, binaryNameOf(dir))
	cmd, base := serve(t, bin, "exec_timeout=200ms")
	start := time.Now()
	if code, _, _ := get(t, "GET", base+"/slow", ""); code != 504 || time.Since(start) > 3*time.Second {
		t.Fatalf("exec_timeout: %d after %s", code, time.Since(start))
	}
	sigterm(t, cmd)
}

func TestGolangHTTP(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testapp.Copy(t, "testdata/golanghttp"), "function")
	bin, _, lines := buildImageBinary(t, newBuilder(t), dir, "function")
	if !strings.Contains(lines[0], "lang: golang-http") {
		t.Fatalf("first progress line %q", lines[0])
	}
	cmd, base := serve(t, bin)
	code, hdr, body := get(t, "PUT", base+"/", "data")
	if code != 202 || hdr.Get("X-Served-By") != "golang-http" || body != `hello from golang-http: PUT body="data" ctx=<nil>` {
		t.Fatalf("PUT / = %d %v %q", code, hdr, body)
	}
	if code, _, body := get(t, "GET", base+"/?fail=1", ""); code != 500 || body != "the input was invalid" {
		t.Fatalf("an error = %d %q, want 500 with the body", code, body)
	}
	sigterm(t, cmd)
}

func binaryNameOf(dir string) string { return strings.ToLower(filepath.Base(dir)) }

// TestTemplateErrors: what cannot be built fails at the build step, with
// one line, before anything is pushed (the registry is down: an error
// from it would be Unavailable).
func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	reg := registryFor(t, addr)
	write := func(t *testing.T, src string) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module handler/function\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "handler.go"), []byte(src), 0o644)
		return dir
	}
	cases := []struct {
		name, template, src, want string
	}{
		{"no main and no Handle", "", "package function\n\nfunc Other() {}\n",
			"is package function without main; set lang: golang-middleware in stack.yml or add a main package"},
		{"lang without Handle", kobuild.TemplateGolangMiddleware, "package function\n\nfunc Other() {}\n",
			"(package function) has no Handle function; lang: golang-middleware needs func Handle(w http.ResponseWriter, r *http.Request)"},
		{"wrong signature", kobuild.TemplateGolangMiddleware, "package function\n\nimport \"net/http\"\n\nfunc Handle(r *http.Request) error { return nil }\n",
			"Handle at handler.go:5 is func(r *http.Request) error; lang: golang-middleware needs func Handle(w http.ResponseWriter, r *http.Request)"},
		{"golang-http signature for middleware", kobuild.TemplateGolangHTTP, "package function\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) {}\n",
			"lang: golang-http needs func Handle(req handler.Request) (handler.Response, error)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := kobuild.New(&kobuild.Options{Template: c.template})
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Build(context.Background(), request(reg, write(t, c.src), 1, "eeeeeee"))
			if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Build = %v (code %v); want one InvalidArgument line containing %q", err, preview.CodeOf(err), c.want)
			}
		})
	}
	if _, err := kobuild.New(&kobuild.Options{Template: "python3"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("New with template python3: %v", err)
	}
	if _, err := preview.Builders.Open(context.Background(), "ko://?template=golang-middleware", nil); err != nil {
		t.Fatalf("Open ko://?template=golang-middleware: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// TestUpWithStackTemplate runs `glimpse up` on an app whose stack.yml
// names a lang that a template/<lang>/ directory provides (what faas-cli
// template pull leaves, in the layout of openfaas/templates): the docker://
// builder builds the template's FROM scratch Dockerfile around the handler
// on a real engine ($GLIMPSE_DOCKER_HOST), the preview answers on its
// route, and an unsupported template.yml key is one error line.
func TestUpWithStackTemplate(t *testing.T) {
	t.Parallel()
	host := testenv.Require(t, "GLIMPSE_DOCKER_HOST", "Docker engine to build on")
	_, home := inProcessStack(t)
	info, err := findServe(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	dir := testapp.Copy(t, "../../examples/hello")
	handler := filepath.Join(dir, "hello-fn")
	if err := os.MkdirAll(handler, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(handler, "hello"), ".")
	build.Dir = filepath.Join(dir, "function")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("template/static-bin/Dockerfile", "FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY function/hello /home/app/hello\nENTRYPOINT [\"/home/app/hello\"]\n")
	write("template/static-bin/template.yml", "language: static-bin\nfprocess: /home/app/hello\nwelcome_message: a static binary\n")
	write("stack.yml", "version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n  hello:\n    lang: static-bin\n    handler: ./hello-fn\n    image: hello:latest\n    build_args:\n      GREETING: hi\n")
	write("glimpse.yaml", "app: hello\nfunction: {stack: stack.yml, routes: [/graphql]}\nassets: {dir: public}\nproviders:\n  builder: docker://"+host+"?network=none\n")

	up := func(commit string) (string, string, error) {
		var out, errb bytes.Buffer
		err := runUp(context.Background(), &globalFlags{home: home}, &upFlags{pr: "6", commit: commit}, dir, &out, &errb)
		return out.String(), errb.String(), err
	}
	_, first, err := up("7e3a1a1")
	stderr := first
	if err != nil {
		t.Fatalf("up: %v\n%s", err, stderr)
	}
	for _, want := range []string{"  build   | Step 1/5 : FROM scratch", "  build   | Step 4/5 : COPY function/hello /home/app/hello", "ok   build"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("up's progress lacks %q:\n%s", want, stderr)
		}
	}
	_, port, _ := net.SplitHostPort(info.Addr)
	req, _ := http.NewRequest("POST", "http://"+info.Addr+"/graphql", strings.NewReader(`{}`))
	req.Host = "pr-6.hello.localhost:" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"pr":6`) {
		t.Fatalf("POST /graphql = %d %s", resp.StatusCode, body)
	}

	write("template/static-bin/template.yml", "language: static-bin\nmount_ssh: false\nbuild_secrets: {a: b}\n")
	_, stderr, err = up("7e3a1a2")
	if err == nil || oneLine(err.Error()) != err.Error() || !strings.Contains(err.Error(), `line 3: key "build_secrets" is not one Glimpse builds with`) {
		t.Fatalf("up with an unsupported template.yml key: %v\n%s", err, stderr)
	}
	if !strings.Contains(first, "pushed") || strings.Contains(stderr, "pushed") || !strings.Contains(stderr, "FAIL build") {
		t.Fatalf("something was pushed before the template error:\n%s", stderr)
	}
}

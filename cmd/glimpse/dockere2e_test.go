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

// dockerApp is a copy of examples/hello deployed through an in-process
// stack with the docker:// builder on the real engine ($GLIMPSE_DOCKER_HOST),
// for the tests that build images there.
type dockerApp struct {
	t    *testing.T
	host string // the Docker engine's address
	home string // GLIMPSE_HOME of the in-process stack
	addr string // the stack's edge address
	dir  string // the app's directory
}

// newDockerApp copies examples/hello and starts an in-process stack. It
// fails (under CI=true) or skips without a Docker engine.
func newDockerApp(t *testing.T) *dockerApp {
	t.Helper()
	host := testenv.Require(t, "GLIMPSE_DOCKER_HOST", "Docker engine to build on")
	_, home := inProcessStack(t)
	info, err := findServe(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	return &dockerApp{t: t, host: host, home: home, addr: info.Addr, dir: testapp.Copy(t, "../../examples/hello")}
}

// buildFunction compiles the app's Go function statically to out (a path
// relative to the app's directory): nothing can be pulled here, so images
// are FROM scratch around a binary built on the host.
func (a *dockerApp) buildFunction(out string) {
	a.t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(a.dir, out)), 0o755); err != nil {
		a.t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(a.dir, out), ".")
	build.Dir = filepath.Join(a.dir, "function")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		a.t.Fatalf("go build: %v\n%s", err, b)
	}
}

// write writes content to rel in the app's directory, making its parents.
func (a *dockerApp) write(rel, content string) {
	a.t.Helper()
	p := filepath.Join(a.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// up runs `glimpse up --pr pr --commit commit` on the app and returns what
// it printed on stdout and stderr.
func (a *dockerApp) up(pr, commit string) (string, string, error) {
	var out, errb bytes.Buffer
	err := runUp(context.Background(), &globalFlags{home: a.home}, &upFlags{pr: pr, commit: commit}, a.dir, &out, &errb)
	return out.String(), errb.String(), err
}

// port is the edge's port, part of every preview's host.
func (a *dockerApp) port() string {
	_, port, _ := net.SplitHostPort(a.addr)
	return port
}

// graphql posts {} to the preview of pr's /graphql through the edge and
// fails unless it answers 200 with a body containing every one of want.
func (a *dockerApp) graphql(pr string, want ...string) {
	a.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+a.addr+"/graphql", strings.NewReader(`{}`))
	req.Host = "pr-" + pr + ".hello.localhost:" + a.port()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ok := resp.StatusCode == 200
	for _, w := range want {
		ok = ok && strings.Contains(string(body), w)
	}
	if !ok {
		a.t.Fatalf("POST /graphql to pr-%s = %d %s; want 200 with %q", pr, resp.StatusCode, body, want)
	}
}

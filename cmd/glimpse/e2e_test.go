package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stack is a `glimpse serve` process started by a test from the built
// binary, with its own GLIMPSE_HOME.
type stack struct {
	bin, home, addr string
	cmd             *exec.Cmd
	// env is extra environment of the daemon, which commands get too.
	env []string
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "glimpse")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startStack(t *testing.T, bin string) *stack {
	t.Helper()
	return startStackIn(t, bin, t.TempDir())
}

// startStackIn starts `glimpse serve` on home, which may hold the state of
// an earlier (killed) daemon.
func startStackIn(t *testing.T, bin, home string) *stack {
	t.Helper()
	return startStackWith(t, bin, home, nil)
}

// startStackWith starts `glimpse serve` on home with extra environment
// (KEY=VALUE) and arguments.
func startStackWith(t *testing.T, bin, home string, env []string, args ...string) *stack {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "GLIMPSE_HOME="+home), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &stack{bin: bin, home: home, cmd: cmd, env: env}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve log:\n%s", b)
		}
	})
	// Wait for serve.json and /healthz.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(home, serveFile)); err == nil {
			var info serveInfo
			if json.Unmarshal(b, &info) == nil && info.Addr != "" {
				if resp, err := http.Get("http://" + info.Addr + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						s.addr = info.Addr
						return s
					}
				}
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("glimpse serve did not become ready")
	return nil
}

// run runs a glimpse subcommand against the stack and returns stdout and
// stderr; it fails the test on a non-zero exit.
func (s *stack) run(t *testing.T, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, err := s.try(args...)
	if err != nil {
		t.Fatalf("glimpse %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr
}

func (s *stack) try(args ...string) (string, string, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(append(os.Environ(), "GLIMPSE_HOME="+s.home), s.env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// client resolves every *.localhost name to the stack's address, as
// browsers and curl do.
func (s *stack) client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, s.addr)
		},
	}}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func get(t *testing.T, c *http.Client, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// functionProcesses returns the PIDs of processes whose executable lives
// under dir (the function processes the local runtime started).
func functionProcesses(t *testing.T, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestWalkingSkeleton is the acceptance test, run on the real
// binary: serve, up, curl the site and the function, up a new commit, up
// unchanged, ls, down.
func TestWalkingSkeleton(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	bin := buildBinary(t)
	s := startStack(t, bin)
	c := s.client()
	_, port, _ := net.SplitHostPort(s.addr)
	const commit1 = "1111111aaaaaaa"
	const commit2 = "2222222bbbbbbb"

	stdout, stderr := s.run(t, "up", "../../examples/hello", "--pr", "7", "--commit", commit1)
	url := lastLine(stdout)
	if want := "http://pr-7.hello.localhost:" + port + "/"; url != want {
		t.Fatalf("last line of stdout = %q, want %q\nstderr:\n%s", url, want, stderr)
	}
	for _, step := range []string{"build", "assets", "deploy", "route"} {
		if !strings.Contains(stderr, step) {
			t.Errorf("progress output has no %s step:\n%s", step, stderr)
		}
	}

	code, body, hdr := get(t, c, "GET", url, "")
	index, _ := os.ReadFile("../../examples/hello/public/index.html")
	if code != 200 || body != string(index) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q (%s), want index.html", code, body, hdr.Get("Content-Type"))
	}
	code, body, _ = get(t, c, "POST", url+"graphql", `{"query":"{ preview { pr commit } }"}`)
	if code != 200 || !strings.Contains(body, `"pr":7`) || !strings.Contains(body, commit1) {
		t.Fatalf("POST /graphql = %d %q, want JSON naming PR 7 at %s", code, body, commit1)
	}

	// A new commit is served after the next up.
	s.run(t, "up", "../../examples/hello", "--pr", "7", "--commit", commit2)
	code, body, _ = get(t, c, "POST", url+"graphql", `{}`)
	if code != 200 || !strings.Contains(body, commit2) {
		t.Fatalf("after up at %s: POST /graphql = %d %q", commit2, code, body)
	}

	// Unchanged: nothing built, nothing uploaded, nothing deployed.
	_, stderr = s.run(t, "up", "../../examples/hello", "--pr", "7", "--commit", commit2)
	for _, want := range []string{"nothing built", "uploaded nothing", "nothing deployed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("unchanged up does not say %q:\n%s", want, stderr)
		}
	}

	stdout, _ = s.run(t, "ls", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, stdout)
	}
	if len(list) != 1 || list[0]["app"] != "hello" || list[0]["pr"] != float64(7) || list[0]["commit"] != commit2 ||
		list[0]["url"] != url || list[0]["replicas"] != float64(1) || list[0]["status"] != "ready" {
		t.Fatalf("ls -o json = %s", stdout)
	}
	if procs := functionProcesses(t, s.home); len(procs) != 1 {
		t.Fatalf("function processes under GLIMPSE_HOME: %v, want exactly one", procs)
	}

	s.run(t, "down", "../../examples/hello", "--pr", "7")
	if code, _, _ := get(t, c, "GET", url, ""); code != 404 {
		t.Errorf("GET / after down = %d, want 404", code)
	}
	if code, _, _ := get(t, c, "POST", url+"graphql", "{}"); code != 404 {
		t.Errorf("POST /graphql after down = %d, want 404", code)
	}
	if procs := functionProcesses(t, s.home); len(procs) != 0 {
		t.Errorf("function processes left after down: %v", procs)
	}
	stdout, _ = s.run(t, "ls", "-o", "json")
	if strings.TrimSpace(stdout) != "[]" {
		t.Errorf("ls after down = %s, want []", stdout)
	}
	// Down again is success, and says there was nothing to remove.
	if stdout, stderr := s.run(t, "down", "../../examples/hello", "--pr", "7"); stdout != "" || !strings.Contains(stderr, "pull request #7 has no preview") {
		t.Errorf("second down: stdout %q, stderr %q; want nothing and a note on stderr", stdout, stderr)
	}

}

//go:build linux

package localfaas

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// requireSandbox skips the test unless this machine can sandbox functions
// (Linux, root, namespaces granted), which is where the sandbox is the
// default.
func requireSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root; functions run unsandboxed here")
	}
	if err := probeSandbox(t.TempDir(), &sandboxConfig{uid: DefaultSandboxID, gid: DefaultSandboxID}); err != nil {
		t.Skipf("this machine cannot sandbox: %v", err)
	}
}

func sandboxed(o *Options) { o.Sandbox = SandboxRequired }

func randomTag(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tagged returns the PIDs of the live (not zombie) processes whose
// environment holds ECHOFN_TAG=tag.
func tagged(tag string) []int {
	var pids []int
	des, _ := os.ReadDir("/proc")
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + de.Name() + "/environ")
		if err == nil && slices.ContainsFunc(bytes.Split(b, []byte{0}), func(kv []byte) bool { return string(kv) == "ECHOFN_TAG="+tag }) && !processGone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func readFromFunction(t *testing.T, addr, p string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/read?path=" + url.QueryEscape(p))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSandboxIsolation (reproduction 6): a sandboxed function runs as the
// unprivileged sandbox user with no supplementary groups, as PID 1 of its
// own namespace, with only the environment the runtime composes (the
// image's, the spec's, PATH, HOST and PORT: none of the daemon's secrets,
// and HOST/PORT the runtime's even when the spec sets them), and cannot
// read the daemon's home, its password or the host's /proc, while it can
// read its own image. The home and the files the runtime writes are the
// daemon's alone (0700/0600).
func TestSandboxIsolation(t *testing.T) {
	requireSandbox(t)
	for k, v := range map[string]string{
		"AWS_SECRET_ACCESS_KEY": "daemon-secret-1", "GLIMPSE_PASSWORD": "daemon-secret-2",
		"GLIMPSE_REGISTRY_PASSWORD": "daemon-secret-3", "OPENFAAS_PASSWORD": "daemon-secret-4",
	} {
		t.Setenv(k, v) // the daemon's environment
	}
	ctx := testCtx(t)
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil { // New tightens it
		t.Fatal(err)
	}
	pw, err := LoadOrCreatePassword(home)
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, home, sandboxed)
	if !rt.Sandboxed() {
		t.Fatal("SandboxRequired runtime is not sandboxed")
	}
	fn := testFunction("sandbox-pr-1", echoImage(t, "a"), 1)
	fn.Env["HOST"], fn.Env["PORT"] = "0.0.0.0", "1" // the runtime's values win
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	addr, err := rt.Endpoint(fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	e := getEcho(t, "http://"+addr+"/")
	if e.UID != DefaultSandboxID || e.GID != DefaultSandboxID || len(e.Groups) != 0 {
		t.Errorf("function runs as uid %d gid %d groups %v; want %d, %d and none", e.UID, e.GID, e.Groups, DefaultSandboxID, DefaultSandboxID)
	}
	if e.PID != 1 {
		t.Errorf("function has pid %d in its namespace, want 1 (its own PID namespace)", e.PID)
	}
	var keys []string
	for k, v := range e.Env {
		keys = append(keys, k)
		if strings.Contains(v, "daemon-secret") || strings.Contains(v, pw) {
			t.Errorf("function's env %s carries a daemon secret", k)
		}
	}
	slices.Sort(keys)
	if want := []string{"ECHOFN_IMAGE", "ECHOFN_VARIANT", "GLIMPSE_PR", "HOST", "PATH", "PORT"}; !slices.Equal(keys, want) {
		t.Errorf("function's env has %v, want exactly %v", keys, want)
	}
	if e.Env["HOST"] != "127.0.0.1" || e.Env["PORT"] != port {
		t.Errorf("HOST=%s PORT=%s; want the runtime's 127.0.0.1 and %s over the spec's", e.Env["HOST"], e.Env["PORT"], port)
	}

	pwPath := filepath.Join(home, PasswordFile)
	for _, p := range []string{
		pwPath,
		strings.Repeat("../", 30) + strings.TrimPrefix(pwPath, "/"), // climbing out of its root
		filepath.Join(rt.imagesDir, "..", "..", "functions.json"),
		"/proc/1/environ",
		"/proc/self/status",
	} {
		if code, body := readFromFunction(t, addr, p); code == http.StatusOK {
			t.Errorf("function read %s: %q", p, body)
		}
	}
	if code, body := readFromFunction(t, addr, "/ko-app/echofn"); code != http.StatusOK || len(body) < 1000 {
		t.Errorf("function cannot read its own image: %d %.100q", code, body)
	}
	if code, body := readFromFunction(t, addr, "/etc/hosts"); code != http.StatusOK || !strings.Contains(body, "localhost") {
		t.Errorf("function has no /etc/hosts (copied from the host): %d %q", code, body)
	}

	for p, want := range map[string]fs.FileMode{
		home: 0o700, filepath.Join(home, "functions"): 0o700, rt.imagesDir: 0o700, rt.logsDir: 0o700,
		pwPath: 0o600, rt.statePath: 0o600, rt.logPath(fn.Name): 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestSandboxStopKillsEscapedDescendants: a descendant that left the
// function's process group (setsid) still dies when the runtime stops the
// function, because it is in the function's PID namespace.
func TestSandboxStopKillsEscapedDescendants(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), sandboxed)
	fn := testFunction("escape-pr-1", echoImage(t, "a"), 1)
	child, tag := freeTestPort(t), randomTag(t)
	fn.Env["ECHOFN_MODE"], fn.Env["ECHOFN_CHILD_PORT"], fn.Env["ECHOFN_TAG"] = "fork", child, tag
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { return answers("127.0.0.1:" + child) }) {
		t.Fatal("the function's grandchild never listened")
	}
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	if answers("127.0.0.1:" + child) {
		t.Fatal("the grandchild still answers after Scale(0) returned")
	}
	if pids := tagged(tag); len(pids) != 0 {
		t.Fatalf("processes %v of the function remain after Scale(0)", pids)
	}
}

// TestSandboxDescendantsDieWithDaemon (reproduction 5): the daemon (here a
// child process running a Runtime) is killed with SIGKILL while its
// function's entrypoint has started a child that left the process group
// and listens on a port. The kernel kills the entrypoint (parent death
// signal) and, as it is PID 1 of its namespace, everything else in it:
// the port stops answering and no process of the function remains.
func TestSandboxDescendantsDieWithDaemon(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	img := echoImage(t, "a")
	child, tag := freeTestPort(t), randomTag(t)
	fnEnv, _ := json.Marshal(map[string]string{"ECHOFN_MODE": "fork", "ECHOFN_CHILD_PORT": child, "ECHOFN_TAG": tag})
	sandbox := os.Getenv("LOCALFAAS_TEST_DAEMON_SANDBOX") // "off" shows the failure without the sandbox
	if sandbox == "" {
		sandbox = "required"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+t.TempDir(), "LOCALFAAS_TEST_IMAGE="+img,
		"LOCALFAAS_TEST_FN_ENV="+string(fnEnv), "LOCALFAAS_TEST_SANDBOX="+sandbox)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, pid := range tagged(tag) { // only when the test failed
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if pid, perr := strconv.Atoi(strings.TrimSpace(line)); err != nil || perr != nil || pid <= 0 {
		t.Fatalf("child daemon said %q (%v)", line, err)
	}
	if !eventually(10*time.Second, func() bool { return answers("127.0.0.1:" + child) }) {
		t.Fatal("the function's grandchild never listened")
	}
	if pids := tagged(tag); len(pids) < 2 {
		t.Fatalf("want the entrypoint and its child running, found %v", pids)
	}
	cmd.Process.Kill() // SIGKILL: no Close
	cmd.Wait()
	if !eventually(10*time.Second, func() bool { return !answers("127.0.0.1:" + child) }) {
		t.Fatalf("the function's grandchild still answers on %s after its daemon was killed", child)
	}
	if !eventually(10*time.Second, func() bool { return len(tagged(tag)) == 0 }) {
		t.Fatalf("processes %v of the function outlived its daemon", tagged(tag))
	}
}

// TestSandboxRequiredFailsUnsandboxable: SandboxRequired is an error, not
// a fallback, where functions cannot be sandboxed.
func TestSandboxRequiredFailsUnsandboxable(t *testing.T) {
	if os.Geteuid() == 0 {
		if err := probeSandbox(t.TempDir(), &sandboxConfig{uid: DefaultSandboxID, gid: DefaultSandboxID}); err == nil {
			t.Skip("this machine can sandbox")
		}
	}
	_, err := New(t.TempDir(), &Options{Sandbox: SandboxRequired, Logger: testLogger(t)})
	if preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("New with SandboxRequired = %v; want FailedPrecondition", err)
	}
	rt := newRuntime(t, t.TempDir(), nil)
	if rt.Sandboxed() {
		t.Fatal("SandboxAuto claims a sandbox the probe refused")
	}
}

//go:build unix

package localfaas

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func testFunction(name, image string, pr int) preview.Function {
	return preview.Function{
		Name:        name,
		Image:       image,
		Env:         map[string]string{"GLIMPSE_PR": strconv.Itoa(pr)},
		Labels:      preview.OwnerLabels("test", preview.Target{App: "hello", PR: pr, Commit: "abc1234"}),
		Annotations: map[string]string{"glimpse.dev/routes": "/graphql"},
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
		New: func(t *testing.T) preview.FunctionRuntime {
			return newRuntime(t, t.TempDir(), nil)
		},
		Image: func(t *testing.T) string { return echoImage(t, "conformance") },
	})
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	fn := testFunction("hello-pr-1", echoImage(t, "a"), 1)

	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	st, err := rt.Get(ctx, fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Replicas != 1 || st.AvailableReplicas != 1 || st.Image != fn.Image || st.Labels[preview.LabelPR] != "1" || st.Annotations["glimpse.dev/routes"] != "/graphql" {
		t.Fatalf("Get = %+v", st)
	}
	addr, err := rt.Endpoint(fn.Name)
	if err != nil {
		t.Fatalf("Endpoint: %v", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	e := getEcho(t, "http://"+addr+"/x?y=1")
	wantCwd := func(cwd string) bool { // inside the rootfs: chrooted there, or on the host
		if rt.Sandboxed() {
			return cwd == "/work"
		}
		return strings.HasSuffix(cwd, filepath.Join("rootfs", "work")) && strings.HasPrefix(cwd, rt.imagesDir)
	}
	switch {
	case host != "127.0.0.1":
		t.Errorf("endpoint host %q, want 127.0.0.1", host)
	case e.Env["PORT"] != port:
		t.Errorf("PORT=%q, endpoint port %s", e.Env["PORT"], port)
	case e.Env["HOST"] != "127.0.0.1":
		t.Errorf("HOST=%q", e.Env["HOST"])
	case e.Env["GLIMPSE_PR"] != "1" || e.Env["ECHOFN_IMAGE"] != "1":
		t.Errorf("env lacks the function's or the image's variables: %v", e.Env)
	case "PATH="+e.Env["PATH"] != kobuild.DefaultPath:
		t.Errorf("PATH=%q, want the image's (the daemon's environment must not leak)", e.Env["PATH"])
	case !wantCwd(e.Cwd):
		t.Errorf("cwd %q, want the image's working directory inside its rootfs", e.Cwd)
	case len(e.Args) != 2 || e.Args[0] != kobuild.AppDir+"/echofn" || e.Args[1] != "--flag":
		t.Errorf("args %q", e.Args)
	case e.Path != "/x" || e.Query != "y=1":
		t.Errorf("path %q query %q", e.Path, e.Query)
	}
	pid1 := rt.pid(fn.Name)
	if want := map[bool]int{true: 1, false: pid1}[rt.Sandboxed()]; e.PID != want {
		t.Fatalf("echo says pid %d, want %d (sandboxed: %v; runtime's pid %d)", e.PID, want, rt.Sandboxed(), pid1)
	}

	// Unchanged: no restart.
	if err := rt.Apply(ctx, testFunction("hello-pr-1", fn.Image, 1)); err != nil {
		t.Fatal(err)
	}
	if got, _ := rt.Endpoint(fn.Name); got != addr || rt.pid(fn.Name) != pid1 {
		t.Fatalf("unchanged Apply restarted the process: %s pid %d, was %s pid %d", got, rt.pid(fn.Name), addr, pid1)
	}

	// Changed env: a new process, ready when Apply returns; the old is gone.
	fn.Env["GLIMPSE_PR"] = "2"
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	addr2, err := rt.Endpoint(fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	e2 := getEcho(t, "http://"+addr2+"/")
	pid2 := rt.pid(fn.Name)
	if pid2 == pid1 || e2.Env["GLIMPSE_PR"] != "2" {
		t.Fatalf("after update: pid %d env %v; old pid %d", pid2, e2.Env["GLIMPSE_PR"], pid1)
	}
	if !processGone(pid1) {
		t.Fatalf("old process %d still runs after the update", pid1)
	}

	// Scale to zero and back.
	if n, err := rt.Scale(ctx, fn.Name, 0); err != nil || n != 0 {
		t.Fatalf("Scale(0) = %d, %v", n, err)
	}
	if !processGone(pid2) {
		t.Fatalf("process %d still runs at zero replicas", pid2)
	}
	_, err = rt.Endpoint(fn.Name)
	if !errors.Is(err, ErrScaledToZero) || preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Endpoint at zero: %v", err)
	}
	if st, _ := rt.Get(ctx, fn.Name); st.Replicas != 0 || st.AvailableReplicas != 0 {
		t.Fatalf("Get at zero: %+v", st)
	}
	if n, err := rt.Scale(ctx, fn.Name, 3); err != nil || n != 1 {
		t.Fatalf("Scale(3) = %d, %v; want 1", n, err)
	}
	addr3, err := rt.Endpoint(fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	e3 := getEcho(t, "http://"+addr3+"/")
	pid3 := rt.pid(fn.Name)
	if e3.Env["GLIMPSE_PR"] != "2" {
		t.Fatalf("scaled-up process has env %v", e3.Env)
	}

	if l, err := rt.List(ctx, preview.Selector("test", "hello", 1)); err != nil || len(l) != 1 || l[0].Name != fn.Name {
		t.Fatalf("List(match) = %+v, %v", l, err)
	}
	if l, err := rt.List(ctx, preview.Selector("test", "other", 0)); err != nil || len(l) != 0 {
		t.Fatalf("List(no match) = %+v, %v", l, err)
	}

	if err := rt.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid3) {
		t.Fatalf("process %d still runs after Remove", pid3)
	}
	if _, err := rt.Get(ctx, fn.Name); !preview.IsNotFound(err) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if _, err := rt.Endpoint(fn.Name); !preview.IsNotFound(err) {
		t.Fatalf("Endpoint after Remove: %v", err)
	}
	if err := rt.Remove(ctx, fn.Name); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if des, _ := os.ReadDir(rt.imagesDir); len(des) != 0 {
		t.Fatalf("image cache not pruned: %v", des)
	}
}

func TestUpdateImage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	a, b := echoImage(t, "a"), echoImage(t, "b")
	fn := testFunction("img-pr-1", a, 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	fn.Image = b
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	addr, _ := rt.Endpoint(fn.Name)
	if e := getEcho(t, "http://"+addr); e.Env["ECHOFN_VARIANT"] != "b" {
		t.Fatalf("variant %q after switching the image", e.Env["ECHOFN_VARIANT"])
	}
	des, _ := os.ReadDir(rt.imagesDir)
	if len(des) != 1 || des[0].Name() != cacheDirName(b[strings.Index(b, "@")+1:]) {
		t.Fatalf("image cache holds %v; want only the new image", des)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	home := t.TempDir()
	rt1 := newRuntime(t, home, nil)
	up, down := testFunction("up-pr-1", echoImage(t, "a"), 1), testFunction("down-pr-2", echoImage(t, "a"), 2)
	for _, f := range []preview.Function{up, down} {
		if err := rt1.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rt1.Scale(ctx, down.Name, 0); err != nil {
		t.Fatal(err)
	}
	pid := rt1.pid(up.Name)
	if err := rt1.Close(); err != nil {
		t.Fatal(err)
	}
	if pid == 0 || !processGone(pid) {
		t.Fatalf("process %d survives Close", pid)
	}
	if err := rt1.Apply(ctx, up); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Apply after Close: %v", err)
	}

	rt2 := newRuntime(t, home, nil)
	if _, err := New(home, nil); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("a second runtime on the same home: %v", err)
	}
	addr, err := rt2.WaitEndpoint(ctx, up.Name)
	if err != nil {
		t.Fatalf("restored function: %v", err)
	}
	if e := getEcho(t, "http://"+addr); e.Env["GLIMPSE_PR"] != "1" || rt2.pid(up.Name) == pid {
		t.Fatalf("restored process: %+v, pid %d (was %d)", e, rt2.pid(up.Name), pid)
	}
	st, err := rt2.Get(ctx, down.Name)
	if err != nil || st.Replicas != 0 || st.Labels[preview.LabelPR] != "2" || st.Annotations["glimpse.dev/routes"] != "/graphql" {
		t.Fatalf("restored scaled-down function: %+v, %v", st, err)
	}
	if _, err := rt2.WaitEndpoint(ctx, down.Name); !errors.Is(err, ErrScaledToZero) {
		t.Fatalf("WaitEndpoint at zero: %v", err)
	}
	// Unchanged Apply after a restart does not restart the process.
	pid2 := rt2.pid(up.Name)
	if err := rt2.Apply(ctx, up); err != nil || rt2.pid(up.Name) != pid2 {
		t.Fatalf("Apply after restore: %v, pid %d -> %d", err, pid2, rt2.pid(up.Name))
	}
}

func TestCrashRestart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	fn := testFunction("crash-pr-1", echoImage(t, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	rt.mu.RLock()
	rp := rt.fns[fn.Name].rp
	rt.mu.RUnlock()
	old, _ := rp.state()
	if resp, err := (&http.Client{}).Get("http://" + old.addr + "/crash"); err == nil {
		resp.Body.Close()
		t.Fatalf("/crash answered %s", resp.Status)
	}
	<-old.exited
	for {
		addr, err := rt.WaitEndpoint(ctx, fn.Name)
		if err != nil {
			t.Fatalf("after a crash: %v", err)
		}
		if p, _ := rp.state(); p != nil && p != old {
			getEcho(t, "http://"+addr)
			if p.pid == old.pid {
				t.Fatalf("same pid %d after restart", p.pid)
			}
			return
		}
		time.Sleep(time.Millisecond) // the supervisor has not noticed yet
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), func(o *Options) { o.ReadyTimeout = 300 * time.Millisecond })
	img := echoImage(t, "a")

	t.Run("ExitsAtOnce", func(t *testing.T) {
		fn := testFunction("exit-pr-1", img, 1)
		fn.Env["ECHOFN_MODE"] = "exit"
		err := rt.Apply(ctx, fn)
		if preview.CodeOf(err) != preview.FailedPrecondition || !strings.Contains(err.Error(), "exiting as asked") {
			t.Fatalf("Apply = %v; want FailedPrecondition with the process's output", err)
		}
		if _, err := rt.Get(ctx, fn.Name); !preview.IsNotFound(err) {
			t.Fatalf("a failed create left a function: %v", err)
		}
	})
	t.Run("NeverListens", func(t *testing.T) {
		fn := testFunction("nolisten-pr-1", img, 1)
		side := freeTestPort(t) // it listens there, not on $PORT
		fn.Env["ECHOFN_MODE"], fn.Env["ECHOFN_CHILD_PORT"] = "nolisten", side
		seen := make(chan bool, 1)
		applied := make(chan struct{})
		go func() { // the process ran: it answered on its side port while Apply waited
			for {
				if answers("127.0.0.1:" + side) {
					seen <- true
					return
				}
				select {
				case <-applied:
					seen <- false
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		err := rt.Apply(ctx, fn)
		close(applied)
		if preview.CodeOf(err) != preview.DeadlineExceeded {
			t.Fatalf("Apply = %v; want DeadlineExceeded", err)
		}
		if !<-seen {
			t.Fatal("the process never listened on its side port while Apply waited")
		}
		if answers("127.0.0.1:" + side) {
			t.Fatalf("process still answers on its side port %s after the ready timeout", side)
		}
	})
	t.Run("FailedUpdateKeepsOld", func(t *testing.T) {
		fn := testFunction("keep-pr-1", img, 1)
		if err := rt.Apply(ctx, fn); err != nil {
			t.Fatal(err)
		}
		pid := rt.pid(fn.Name)
		bad := testFunction("keep-pr-1", img, 1)
		bad.Env["ECHOFN_MODE"] = "exit"
		if err := rt.Apply(ctx, bad); err == nil {
			t.Fatal("Apply of a crashing update succeeded")
		}
		st, _ := rt.Get(ctx, fn.Name)
		if st.Env["ECHOFN_MODE"] != "" || rt.pid(fn.Name) != pid || processGone(pid) {
			t.Fatalf("after a failed update: env %v pid %d (was %d)", st.Env, rt.pid(fn.Name), pid)
		}
	})
	t.Run("MissingImage", func(t *testing.T) {
		fn := testFunction("missing-pr-1", fixture.regHost+"/echofn@sha256:"+strings.Repeat("0", 64), 1)
		if err := rt.Apply(ctx, fn); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("Apply of a missing image = %v; want InvalidArgument", err)
		}
	})
	t.Run("BadReference", func(t *testing.T) {
		fn := testFunction("badref-pr-1", "UPPER/Case::x", 1)
		if err := rt.Apply(ctx, fn); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("Apply of a bad reference = %v; want InvalidArgument", err)
		}
	})
}

func TestTagReference(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	byDigest := echoImage(t, "tagged")
	fn := testFunction("tag-pr-1", fixture.regHost+"/echofn:tagged", 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	rt.mu.RLock()
	d := rt.fns[fn.Name].digest
	rt.mu.RUnlock()
	if !strings.HasSuffix(byDigest, "@"+d) {
		t.Fatalf("tag resolved to %s; pushed %s", d, byDigest)
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fn := testFunction("cancel-pr-1", echoImage(t, "a"), 1)
	if err := rt.Apply(ctx, fn); preview.CodeOf(err) != preview.Canceled {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := rt.Scale(ctx, fn.Name, 1); preview.CodeOf(err) != preview.Canceled {
		t.Fatalf("Scale: %v", err)
	}
	if _, err := rt.Get(ctx, fn.Name); preview.CodeOf(err) != preview.Canceled {
		t.Fatalf("Get: %v", err)
	}
}

func TestConcurrentApplySameFunction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	img := echoImage(t, "a")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rt.Apply(ctx, testFunction("same-pr-1", img, 1+i%2))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Exactly one process runs, and it matches the recorded spec.
	st, _ := rt.Get(ctx, "same-pr-1")
	addr, err := rt.Endpoint("same-pr-1")
	if err != nil {
		t.Fatal(err)
	}
	if e := getEcho(t, "http://"+addr); e.Env["GLIMPSE_PR"] != st.Env["GLIMPSE_PR"] {
		t.Fatalf("process runs PR %s, state says %s", e.Env["GLIMPSE_PR"], st.Env["GLIMPSE_PR"])
	}
}

// The daemon dies without Close: the kernel kills its functions.
const childEnv = "LOCALFAAS_TEST_CHILD_HOME"

// The child daemon runs its function with the env in LOCALFAAS_TEST_FN_ENV
// (JSON) added, and with Sandbox "off" or "required" when
// LOCALFAAS_TEST_SANDBOX says so.
func runChild() {
	opts := &Options{}
	switch os.Getenv("LOCALFAAS_TEST_SANDBOX") {
	case "off":
		opts.Sandbox = SandboxOff
	case "required":
		opts.Sandbox = SandboxRequired
	}
	rt, err := New(os.Getenv(childEnv), opts)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fn := testFunction("orphan-pr-1", os.Getenv("LOCALFAAS_TEST_IMAGE"), 1)
	if extra := os.Getenv("LOCALFAAS_TEST_FN_ENV"); extra != "" {
		if err := json.Unmarshal([]byte(extra), &fn.Env); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
	if err := rt.Apply(context.Background(), fn); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(rt.pid(fn.Name))
	for {
		time.Sleep(time.Hour)
	}
}

func TestProcessesDieWithDaemon(t *testing.T) {
	t.Parallel()
	img := echoImage(t, "a")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+t.TempDir(), "LOCALFAAS_TEST_IMAGE="+img)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil || pid <= 0 {
		t.Fatalf("child daemon said %q (%v)", line, err)
	}
	if processGone(pid) {
		t.Fatalf("function %d not running under the child daemon", pid)
	}
	cmd.Process.Kill() // SIGKILL: no Close
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("function %d outlived its daemon", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package plugin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// testPluginBin is the test plugin (internal/testplugin), built once.
var testPluginBin string

// hostEnv makes the test binary act as a plugin host (for the kill -9
// test): it starts the plugin at that path, prints the plugin's pid and
// waits to be killed.
const hostEnv = "GLIMPSE_PLUGIN_TEST_HOST"

// noDeathSignalEnv makes that host start the plugin without Linux's
// parent-death signal, leaving the plugin's watch of its parent alone.
const noDeathSignalEnv = "GLIMPSE_PLUGIN_TEST_NO_PDEATHSIG"

func TestMain(m *testing.M) {
	if p := os.Getenv(hostEnv); p != "" {
		runHost(p)
		return
	}
	dir, err := os.MkdirTemp("", "glimpse-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPluginBin = filepath.Join(dir, BinaryPrefix+"test")
	build := exec.Command("go", "build", "-o", testPluginBin, "./internal/testplugin")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	Shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runHost(path string) {
	if os.Getenv(noDeathSignalEnv) != "" {
		deathSignal = func(*exec.Cmd) {}
	}
	c := Open(path, nil)
	ctx := context.Background()
	d, err := c.DNS(ctx)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	pids, err := d.Hosts(ctx, preview.Labels{"test/pid": ""})
	if err != nil || len(pids) != 1 {
		fmt.Println("error:", pids, err)
		os.Exit(1)
	}
	fmt.Println(pids[0])
	select {}
}

// inProcess returns a Client over go-plugin's in-process gRPC connection
// serving p: the real gRPC path without a subprocess.
func inProcess(t *testing.T, p Providers) *Client {
	t.Helper()
	c := &Client{name: "inprocess", start: func() (*session, func(), error) {
		gc, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{dispenseName: &grpcPlugin{p: &p}})
		raw, err := gc.Dispense(dispenseName)
		if err != nil {
			return nil, nil, err
		}
		return raw.(*session), func() { gc.Close() }, nil // Close also stops the server
	}}
	t.Cleanup(func() { c.Close() })
	return c
}

// subprocess returns a Client of the test plugin binary.
func subprocess(t testing.TB) *Client {
	c := Open(testPluginBin, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

// must returns a function that fails t on a non-nil error and otherwise
// returns the value: must[preview.DNS](t)(c.DNS(ctx)).
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func memImage(t *testing.T) string { return "mem.invalid/app@sha256:" + strings.Repeat("0", 64) }

func writeSource(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runSuites runs every previewtest suite through the adapters of the
// Client newClient returns (one Client, so one plugin, per suite).
func runSuites(t *testing.T, newClient func(t *testing.T) *Client) {
	ctx := context.Background()
	t.Run("Router", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunRouterTests(t, previewtest.RouterHarness{
			New: func(t *testing.T) preview.Router { return must[preview.Router](t)(c.Router(ctx)) },
		})
	})
	t.Run("FunctionRuntime", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
			New:   func(t *testing.T) preview.FunctionRuntime { return must[preview.FunctionRuntime](t)(c.Runtime(ctx)) },
			Image: memImage,
		})
	})
	t.Run("AssetStore", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
			New: func(t *testing.T) preview.AssetStore { return must[preview.AssetStore](t)(c.Assets(ctx)) },
		})
	})
	t.Run("DNS", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunDNSTests(t, previewtest.DNSHarness{
			New: func(t *testing.T) preview.DNS { return must[preview.DNS](t)(c.DNS(ctx)) },
		})
	})
	// The registry's images are pushed through the plugin's builder, so
	// both travel the wire.
	t.Run("Registry", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunRegistryTests(t, previewtest.RegistryHarness{
			New: func(t *testing.T) preview.Registry { return must[preview.Registry](t)(c.Registry(ctx)) },
			Push: func(t *testing.T, repo, tag string, seed int) string {
				dir := t.TempDir()
				writeSource(t, dir, fmt.Sprintf("package main // %d\n", seed))
				b := must[preview.Builder](t)(c.Builder(ctx))
				res, err := b.Build(ctx, preview.BuildRequest{Target: preview.Target{App: "x", PR: 1, Commit: "c"}, SourceDir: dir, Repository: repo, Tag: tag})
				if err != nil {
					t.Fatal(err)
				}
				return res.Digest
			},
		})
	})
	t.Run("Builder", func(t *testing.T) {
		c := newClient(t)
		previewtest.RunBuilderTests(t, previewtest.BuilderHarness{
			New:      func(t *testing.T) preview.Builder { return must[preview.Builder](t)(c.Builder(ctx)) },
			Registry: func(t *testing.T) preview.Registry { return must[preview.Registry](t)(c.Registry(ctx)) },
			Source: func(t *testing.T) string {
				dir := t.TempDir()
				writeSource(t, dir, "package main\n")
				return dir
			},
			Change: func(t *testing.T, dir string) { writeSource(t, dir, "package main // changed\n") },
			Break: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "BROKEN"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
		})
	})
}

func memProviders() Providers {
	reg := previewtest.NewMemRegistry()
	return Providers{
		Name: "mem", Version: "test",
		Builder: &previewtest.MemBuilder{Registry: reg}, Registry: reg,
		Runtime: previewtest.NewMemRuntime(), Assets: previewtest.NewMemAssets(),
		Router: previewtest.NewMemRouter(), DNS: previewtest.NewMemDNS(),
	}
}

func TestConformanceInProcess(t *testing.T) {
	runSuites(t, func(t *testing.T) *Client { return inProcess(t, memProviders()) })
}

func TestConformanceSubprocess(t *testing.T) {
	runSuites(t, func(t *testing.T) *Client { return subprocess(t) })
}

func TestOptionalInterfacesFollowThePlugin(t *testing.T) {
	ctx := context.Background()
	c := subprocess(t)
	info := must[Info](t)(c.Describe(ctx))
	if info.Name != "test" || info.Version != "v0.0.1-test" || info.ProtocolVersion != ProtocolVersion {
		t.Fatalf("Describe = %+v", info)
	}
	rt := must[preview.FunctionRuntime](t)(c.Runtime(ctx))
	if _, ok := rt.(preview.GenerationRemover); !ok {
		t.Error("the runtime adapter lacks GenerationRemover although MemRuntime has it")
	}
	if _, ok := rt.(preview.LogReader); ok {
		t.Error("the runtime adapter has LogReader although MemRuntime lacks it")
	}
	if _, err := c.CDN(ctx); preview.CodeOf(err) != preview.Unimplemented {
		t.Errorf("CDN of a plugin without one: %v, want Unimplemented", err)
	}
}

func TestErrorsKeepCodeAndMessage(t *testing.T) {
	ctx := context.Background()
	d := must[preview.DNS](t)(subprocess(t).DNS(ctx))
	for code := preview.Unknown + 1; code <= preview.Aborted; code++ {
		t.Run(code.String(), func(t *testing.T) {
			err := d.Remove(ctx, "code-"+code.String()+".x.localhost")
			if got := preview.CodeOf(err); got != code {
				t.Fatalf("code = %v (%v), want %v", got, err, code)
			}
			if got := preview.CodeOf(err).Retryable(); got != code.Retryable() {
				t.Errorf("retryable = %v, want %v", got, code.Retryable())
			}
			if want := "test failure " + code.String(); err.Error() != want {
				t.Errorf("message = %q, want %q", err.Error(), want)
			}
		})
	}
}

// TestContextReachesPlugin checks that a deadline and a cancellation of
// the host's context reach the plugin's provider (which records what it
// saw) and that the host's call fails with the matching code.
func TestContextReachesPlugin(t *testing.T) {
	d := must[preview.DNS](t)(subprocess(t).DNS(context.Background()))
	for _, tc := range []struct {
		name, seen string
		ctx        func() (context.Context, context.CancelFunc)
		want       preview.Code
	}{
		{"deadline", "seen-deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, preview.DeadlineExceeded},
		{"cancel", "seen-cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, preview.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			err := d.Ensure(ctx, "block."+tc.name+".localhost", nil)
			if preview.CodeOf(err) != tc.want {
				t.Fatalf("Ensure: %v (code %v), want %v", err, preview.CodeOf(err), tc.want)
			}
			want := tc.seen + "." + tc.name + ".localhost"
			deadline := time.Now().Add(5 * time.Second)
			for {
				hosts := must[[]string](t)(d.Hosts(context.Background(), nil))
				if strings.Contains(" "+strings.Join(hosts, " ")+" ", " "+want+" ") {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("the plugin did not record %s; hosts %v", want, hosts)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func pluginPid(t *testing.T, d preview.DNS) int {
	t.Helper()
	pids := must[[]string](t)(d.Hosts(context.Background(), preview.Labels{"test/pid": ""}))
	return must[int](t)(strconv.Atoi(pids[0]))
}

func TestCrashMidCallThenRestart(t *testing.T) {
	ctx := context.Background()
	c := subprocess(t)
	d := must[preview.DNS](t)(c.DNS(ctx))
	before := pluginPid(t, d)
	err := d.Ensure(ctx, "crash.x.localhost", nil)
	if preview.CodeOf(err) != preview.Unavailable || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Ensure that crashes the plugin: %v (code %v), want one line with code Unavailable", err, preview.CodeOf(err))
	}
	if err := d.Ensure(ctx, "pr-1.after.localhost", nil); err != nil {
		t.Fatalf("the call after the crash: %v", err)
	}
	if after := pluginPid(t, d); after == before {
		t.Fatalf("plugin pid %d after the crash, want a new process", after)
	}
	if alive(before) {
		t.Errorf("the crashed plugin %d is still running", before)
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestNoPluginOutlivesKilledHost kills -9 a real host process and checks
// that its plugin ends: through the parent-death signal, and through the
// plugin's watch of its parent alone (what other systems rely on).
func TestNoPluginOutlivesKilledHost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   string
		limit time.Duration
	}{
		{"pdeathsig", "", 5 * time.Second},
		{"parent-watch", noDeathSignalEnv + "=1", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := exec.Command(os.Args[0], "-test.run=^$")
			host.Env = append(os.Environ(), hostEnv+"="+testPluginBin, tc.env)
			out, err := host.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			host.Stderr = os.Stderr
			if err := host.Start(); err != nil {
				t.Fatal(err)
			}
			defer host.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("reading the plugin pid from the host: %v", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("host said %q", line)
			}
			if !alive(pid) {
				t.Fatalf("plugin %d is not running while its host is", pid)
			}
			if err := host.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			host.Wait()
			killed := time.Now()
			for alive(pid) {
				if time.Since(killed) > tc.limit {
					syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("plugin %d still runs %v after its host was killed -9", pid, tc.limit)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("plugin ended %v after its host was killed", time.Since(killed).Round(time.Millisecond))
		})
	}
}

// TestHandshakeMismatchIsOneLine starts a fake plugin that announces
// another protocol version.
func TestHandshakeMismatchIsOneLine(t *testing.T) {
	bin := filepath.Join(t.TempDir(), BinaryPrefix+"future")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '1|2|tcp|127.0.0.1:1|grpc'\nexec sleep 10\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Open(bin, nil)
	defer c.Close()
	_, err := c.Describe(context.Background())
	t.Logf("handshake error: %v", err)
	if preview.CodeOf(err) != preview.Unavailable || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "2") {
		t.Fatalf("Describe of a protocol 2 plugin: %v, want one Unavailable line naming the version", err)
	}
}

func TestLargeBlobStreams(t *testing.T) {
	ctx := context.Background()
	s := must[preview.AssetStore](t)(subprocess(t).Assets(ctx))
	content := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16) // 10 MiB
	sum := sha256.Sum256(content)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	m := preview.Manifest{Files: map[string]preview.AssetFile{"/big.bin": {Digest: digest, Size: int64(len(content)), ContentType: "application/octet-stream"}}}
	st, err := s.Publish(ctx, "big/pr-1/abc", m, preview.Labels{preview.LabelManagedBy: preview.ManagedByValue}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
	if err != nil || st.Uploaded != 1 || st.UploadedBytes != int64(len(content)) {
		t.Fatalf("Publish = %+v, %v", st, err)
	}
	rc, err := s.Open(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != int64(len(content)) {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("the blob read back differs")
	}
	if _, err := s.Open(ctx, "sha256:"+strings.Repeat("1", 64)); !preview.IsNotFound(err) {
		t.Fatalf("Open of a missing blob: %v, want NotFound", err)
	}
}

func TestBuildProgressStreams(t *testing.T) {
	ctx := context.Background()
	c := subprocess(t)
	b := must[preview.Builder](t)(c.Builder(ctx))
	reg := must[preview.Registry](t)(c.Registry(ctx))
	dir := t.TempDir()
	writeSource(t, dir, "package main // progress\n")
	var lines []string
	res, err := b.Build(ctx, preview.BuildRequest{Target: preview.Target{App: "prog", PR: 1, Commit: "c"}, SourceDir: dir,
		Repository: reg.Repository("prog"), Tag: "pr-1-c", Progress: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "built sha256:") || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("progress %q, result %+v", lines, res)
	}
}

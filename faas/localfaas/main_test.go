//go:build unix

package localfaas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

// The test image: testdata/echofn built once per test binary, assembled by
// kobuild and pushed, in variants that differ in one env var (and so in
// digest), to an embedded registry served on loopback.
var fixture struct {
	once    sync.Once
	err     error
	dir     string
	srv     *httptest.Server
	reg     *embedregistry.Registry
	mu      sync.Mutex
	images  map[string]string
	regHost string
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	code := m.Run()
	if fixture.srv != nil {
		fixture.srv.Close()
		fixture.reg.Close()
	}
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

func setupFixture() error {
	fixture.once.Do(func() {
		fixture.images = map[string]string{}
		fixture.dir, fixture.err = os.MkdirTemp("", "localfaas-test-")
		if fixture.err != nil {
			return
		}
		bin := filepath.Join(fixture.dir, "echofn")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/echofn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fixture.err = fmt.Errorf("building echofn: %v\n%s", err, out)
			return
		}
		fixture.reg, fixture.err = embedregistry.New(filepath.Join(fixture.dir, "registry"), &embedregistry.Options{NoSync: true})
		if fixture.err != nil {
			return
		}
		fixture.srv = httptest.NewServer(fixture.reg.Handler())
		fixture.regHost = strings.TrimPrefix(fixture.srv.URL, "http://")
	})
	return fixture.err
}

// echoImage returns "127.0.0.1:port/echofn@sha256:..." for variant.
func echoImage(t testing.TB, variant string) string {
	t.Helper()
	if err := setupFixture(); err != nil {
		t.Fatal(err)
	}
	fixture.mu.Lock()
	defer fixture.mu.Unlock()
	if ref, ok := fixture.images[variant]; ok {
		return ref
	}
	ref, err := pushEcho(variant)
	if err != nil {
		t.Fatal(err)
	}
	fixture.images[variant] = ref
	return ref
}

func pushEcho(variant string) (string, error) {
	img, err := kobuild.ImageFromBinary(filepath.Join(fixture.dir, "echofn"), kobuild.ImageConfig{
		Platform:   "linux/" + runtime.GOARCH,
		Entrypoint: []string{kobuild.AppDir + "/echofn", "--flag"},
		Env:        []string{"ECHOFN_IMAGE=1", "ECHOFN_VARIANT=" + variant},
	})
	if err != nil {
		return "", err
	}
	// A working directory the image lacks: created as Docker does.
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg := cf.Config
	cfg.WorkingDir = "/work"
	if img, err = mutate.Config(img, cfg); err != nil {
		return "", err
	}
	d, err := kobuild.Push(context.Background(), img, []string{fixture.regHost + "/echofn:" + variant}, nil)
	if err != nil {
		return "", err
	}
	return fixture.regHost + "/echofn@" + d, nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newRuntime(t testing.TB, home string, mod func(*Options)) *Runtime {
	t.Helper()
	o := &Options{Logger: testLogger(t), StopTimeout: 5 * time.Second, RestartBackoff: 5 * time.Millisecond}
	if mod != nil {
		mod(o)
	}
	rt, err := New(home, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo is what echofn answers.
type echo struct {
	Env     map[string]string `json:"env"`
	Cwd     string            `json:"cwd"`
	PID     int               `json:"pid"`
	UID     int               `json:"uid"`
	GID     int               `json:"gid"`
	Groups  []int             `json:"groups"`
	Args    []string          `json:"args"`
	Path    string            `json:"path"`
	RawPath string            `json:"rawPath"`
	Query   string            `json:"query"`
	Host    string            `json:"host"`
	Method  string            `json:"method"`
}

func getEcho(t testing.TB, url string) echo {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
	return e
}

// processGone reports whether pid no longer runs (it may linger as a zombie
// of an init that does not reap).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// "pid (comm) S ..." where comm may contain spaces.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// freeTestPort returns a loopback port that was free a moment ago.
func freeTestPort(t testing.TB) string {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// answers reports whether something accepts TCP connections at addr.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// eventually polls cond every 5ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

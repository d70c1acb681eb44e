// Package registrytest starts real OCI registries for tests: Glimpse's
// embedded registry in-process, and the CNCF distribution registry as a
// child process when GLIMPSE_REGISTRY_BIN names its binary. Both listen on
// 127.0.0.1 on a free port and stop when the test ends.
package registrytest

import (
	"github.com/glimpse-dev/glimpse/internal/testenv"

	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

// EnvRegistryBin names the distribution registry binary
// (go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2).
const EnvRegistryBin = "GLIMPSE_REGISTRY_BIN"

// Embedded starts an embedded registry storing in a temporary directory and
// returns its host:port ("127.0.0.1:41234") and the registry itself. Files
// are not fsynced (faster; they need not survive a power loss).
func Embedded(t testing.TB) (string, *embedregistry.Registry) {
	t.Helper()
	return EmbeddedAt(t, t.TempDir())
}

// EmbeddedAt is Embedded storing in dir. The registry is closed when the
// test ends; close it earlier to reopen dir.
func EmbeddedAt(t testing.TB, dir string) (string, *embedregistry.Registry) {
	t.Helper()
	reg, err := embedregistry.New(dir, &embedregistry.Options{NoSync: true})
	if err != nil {
		t.Fatalf("embedregistry.New: %v", err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() {
		srv.Close()
		reg.Close()
	})
	return srv.Listener.Addr().String(), reg
}

// Distribution starts the CNCF distribution registry found at
// $GLIMPSE_REGISTRY_BIN with filesystem storage in a temporary directory and
// deletes enabled, and returns its host:port. It skips the test when the
// variable is unset (fails it under CI) and fails it when the registry does
// not start.
func Distribution(t testing.TB) string {
	t.Helper()
	bin := testenv.Require(t, EnvRegistryBin, "distribution registry to test against")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := startDistribution(t, bin)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("distribution registry did not start: %v", lastErr)
	return ""
}

func startDistribution(t testing.TB, bin string) (string, error) {
	dir := t.TempDir()
	// Take a free port and hand it to the registry; another process could
	// take it in between, in which case the caller tries again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Poll for readiness: the registry has no readiness signal of its own.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return addr, nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return "", fmt.Errorf("registry exited: %v: %s", err, out.String())
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("registry not ready on %s: %s", addr, out.String())
		case <-tick.C:
		}
	}
}

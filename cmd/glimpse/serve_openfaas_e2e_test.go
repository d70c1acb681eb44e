package main

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// TestServeInFrontOfOpenFaaS is issue 9's acceptance test: `glimpse serve`
// configured by a serve config file with runtime openfaas:// pointed at an
// OpenFaaS gateway it did not start (the emulations of faas-netes behind
// the CE gateway, and of Pro), assets on disk. `glimpse up` through the CLI
// deploys through the gateway; requests to the preview host reach the
// function through the gateway's /function/NAME and the edge counts them;
// with idle.after 2s the idle controller scales Pro to zero, and on CE
// reports the clamp (the metric and the log) and the function keeps
// answering; on Pro the next request wakes the function through the edge.
func TestServeInFrontOfOpenFaaS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the daemon")
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		pro  bool
	}{{"faas-netes behind the CE gateway", false}, {"pro", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const pw = "gateway-secret"
			gw := openfaastest.NewServer(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Pro: tc.pro, Password: pw})
			home := t.TempDir()
			cfg := filepath.Join(t.TempDir(), "serve.yaml")
			yml := "runtime: openfaas://" + strings.TrimPrefix(gw.URL, "http://") + "\nidle:\n  wakeTimeout: 20s\n"
			if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"OPENFAAS_PASSWORD=" + pw}
			s := startStackWith(t, bin, home, env, "--config", cfg)
			app := testapp.Copy(t, "../../examples/hello")
			y, _ := os.ReadFile(filepath.Join(app, "glimpse.yaml"))
			if err := os.WriteFile(filepath.Join(app, "glimpse.yaml"), []byte(strings.Replace(string(y), "after: 15m", "after: 2s", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := s.try("up", app, "--pr", "9", "--commit", "9999999")
			if err != nil {
				t.Fatalf("up: %v\n%s", err, stderr)
			}
			url := lastLine(stdout)
			st, ok := gw.Status("openfaas-fn", "hello-pr-9")
			if !ok || st.Replicas != 1 || (*st.Labels)["glimpse.dev/pr"] != "9" {
				t.Fatalf("the gateway has %+v (found %v), want hello-pr-9 with one replica and Glimpse's labels", st, ok)
			}
			c := s.client()
			if code, body, _ := get(t, c, "GET", url, ""); code != 200 || !strings.Contains(body, "<") {
				t.Fatalf("GET / (static, from disk) = %d %q", code, body)
			}
			invocations := func() int {
				n := 0
				for _, call := range gw.Calls() {
					if strings.HasPrefix(call.Path, "/function/hello-pr-9") {
						n++
					}
				}
				return n
			}
			for i := 1; i <= 3; i++ {
				code, body, _ := get(t, c, "POST", url+"graphql", "{}")
				if code != 200 || body != "ok\n" {
					t.Fatalf("POST /graphql #%d = %d %q, want the gateway's function answer", i, code, body)
				}
			}
			if n := invocations(); n != 3 {
				t.Fatalf("the gateway saw %d calls of /function/hello-pr-9, want 3", n)
			}
			out, _, err := s.try("ls", "-o", "json")
			if err != nil || !strings.Contains(out, `"lastRequest"`) {
				t.Fatalf("ls -o json after requests: %v %s; want the edge's last request", err, out)
			}

			// Idle: Pro goes to zero; CE is clamped and reported.
			deadline := time.Now().Add(30 * time.Second)
			for {
				st, _ := gw.Status("openfaas-fn", "hello-pr-9")
				if tc.pro && st.Replicas == 0 {
					break
				}
				if !tc.pro && s.metric(t, "glimpse_idle_scale_down_clamped_total") > 0 {
					if st.Replicas != 1 {
						t.Fatalf("CE: replicas %d after the clamp, want 1", st.Replicas)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("30s after the last request: replicas %d, clamps %v", st.Replicas, s.metric(t, "glimpse_idle_scale_down_clamped_total"))
				}
				time.Sleep(200 * time.Millisecond)
			}
			code, body, _ := get(t, c, "POST", url+"graphql", "{}")
			if code != 200 || body != "ok\n" {
				t.Fatalf("first request after idle = %d %q", code, body)
			}
			wakes := s.metric(t, "glimpse_edge_wakes_total")
			st, _ = gw.Status("openfaas-fn", "hello-pr-9")
			if tc.pro && (wakes != 1 || st.Replicas != 1) {
				t.Fatalf("Pro after the request: %v wakes, %d replicas; want 1 and 1", wakes, st.Replicas)
			}
			if !tc.pro && wakes != 0 {
				t.Fatalf("CE: %v wakes, want none (the function never slept)", wakes)
			}
			if n := invocations(); n != 4 {
				t.Fatalf("the gateway saw %d calls, want 4", n)
			}
			if _, stderr, err := s.try("down", app, "--pr", "9"); err != nil {
				t.Fatalf("down: %v\n%s", err, stderr)
			}
			if _, ok := gw.Status("openfaas-fn", "hello-pr-9"); ok {
				t.Fatal("the function is still on the gateway after down")
			}
		})
	}
}

// metric returns the sum of the samples of the named series on the
// daemon's /metrics.
func (s *stack) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

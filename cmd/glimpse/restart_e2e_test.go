package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestRestartUnderLoad kills the daemon with SIGKILL at random points while
// requests and ups run, restarts it on the same GLIMPSE_HOME, and checks
// that every preview comes back from its labelled state: the edge serves
// each live preview's page and function, no function process of the
// killed daemon is left, and an up interrupted by the kill is repaired by
// the next up. GLIMPSE_RESTART_RUNS sets the number of kill/restart
// cycles (default 3).
func TestRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	bin := buildBinary(t)
	s := startStack(t, bin)
	dirs := map[int]string{}
	for pr := 1; pr <= 3; pr++ {
		dirs[pr] = variant(t, fmt.Sprintf("pr%d-v0", pr))
		s.run(t, "up", dirs[pr], "--pr", fmt.Sprint(pr), "--commit", fmt.Sprintf("%040d", pr))
	}
	runs := envInt("GLIMPSE_RESTART_RUNS", 3)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for run := 0; run < runs; run++ {
		// Load: requests to every preview, and one up with a new commit.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var served atomic.Int64
		c := s.client()
		for pr := 1; pr <= 3; pr++ {
			wg.Add(1)
			go func(pr int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := c.Get(fmt.Sprintf("http://pr-%d.hello.localhost/", pr))
					if err == nil {
						resp.Body.Close()
						served.Add(1)
					}
				}
			}(pr)
		}
		pr := 1 + run%3
		next := variant(t, fmt.Sprintf("pr%d-v%d", pr, run+1))
		upDone := make(chan error, 1)
		go func() {
			_, _, err := s.try("up", next, "--pr", fmt.Sprint(pr), "--commit", fmt.Sprintf("%039d%d", run+1, pr))
			upDone <- err
		}()
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		old := s.cmd.Process.Pid
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
		close(stop)
		wg.Wait()
		upErr := <-upDone
		if served.Load() == 0 {
			t.Fatalf("run %d: no request was served before the kill", run)
		}
		// Nothing the killed daemon started survives it.
		deadline := time.Now().Add(5 * time.Second)
		for len(functionProcesses(t, s.home)) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if procs := functionProcesses(t, s.home); len(procs) > 0 {
			t.Fatalf("run %d: function processes outlived daemon %d: %v", run, old, procs)
		}

		s = startStackIn(t, bin, s.home)
		if upErr == nil {
			dirs[pr] = next
		} else {
			// The interrupted up is repaired by the next one.
			s.run(t, "up", next, "--pr", fmt.Sprint(pr), "--commit", fmt.Sprintf("%039d%d", run+1, pr))
			dirs[pr] = next
		}
		stdout, _ := s.run(t, "ls", "-o", "json")
		var list []map[string]any
		if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list) != 3 {
			t.Fatalf("run %d: ls after restart = %s, want three previews", run, stdout)
		}
		c = s.client()
		for p := 1; p <= 3; p++ {
			want := strings.TrimSuffix(strings.TrimPrefix(pageOf(t, dirs[p]), "<h1>"), "</h1>\n")
			code, body, _ := get(t, c, "GET", fmt.Sprintf("http://pr-%d.hello.localhost/", p), "")
			if code != 200 || !strings.Contains(body, want) {
				t.Fatalf("run %d: PR %d after restart: GET / = %d %q, want page %q", run, p, code, body, want)
			}
			code, body, _ = get(t, c, "POST", fmt.Sprintf("http://pr-%d.hello.localhost/graphql", p), "{}")
			if code != 200 || !strings.Contains(body, fmt.Sprintf(`"pr":%d`, p)) {
				t.Fatalf("run %d: PR %d after restart: POST /graphql = %d %q", run, p, code, body)
			}
		}
		t.Logf("run %d: killed after %d requests, up interrupted: %v", run, served.Load(), upErr != nil)
	}
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err != nil || n <= 0 {
		return def
	}
	return n
}

// pageOf reads the index page of the app in dir.
func pageOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "public", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

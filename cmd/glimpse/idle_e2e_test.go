package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// TestScaleToZeroE2E is issue 3's acceptance run on the real binary: with
// idle.after 2s the function process goes away after a request and 2+ s
// of silence (ls shows replicas 0), and the next request brings it back.
func TestScaleToZeroE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	s := startStack(t, buildBinary(t))
	dir := testapp.Copy(t, "../../examples/hello")
	yaml, _ := os.ReadFile(filepath.Join(dir, "glimpse.yaml"))
	os.WriteFile(filepath.Join(dir, "glimpse.yaml"), []byte(strings.Replace(string(yaml), "after: 15m", "after: 2s", 1)), 0o644)

	stdout, _ := s.run(t, "up", dir, "--pr", "5", "--commit", "5555555")
	url := lastLine(stdout)
	c := s.client()
	if code, body, _ := get(t, c, "POST", url+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":5`) {
		t.Fatalf("POST /graphql = %d %s", code, body)
	}
	ls := func() map[string]any {
		out, _ := s.run(t, "ls", "-o", "json")
		var list []map[string]any
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
			t.Fatalf("ls -o json = %s (%v)", out, err)
		}
		return list[0]
	}
	if p := ls(); p["replicas"] != float64(1) || p["lastRequest"] == nil {
		t.Fatalf("ls right after a request = %v; want 1 replica and a last request", p)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := ls()
		if p["replicas"] == float64(0) && p["status"] == "sleeping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still awake 30s after the last request: %v", p)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The runtime reports zero replicas as it stops the process, which
	// then exits on its SIGTERM: give it the stop's time to be gone.
	for gone := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		procs := functionProcesses(t, s.home)
		if len(procs) == 0 {
			break
		}
		if time.Now().After(gone) {
			t.Fatalf("function processes 10s after it was reported asleep: %v", procs)
		}
	}
	if code, body, _ := get(t, c, "POST", url+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":5`) {
		t.Fatalf("first request after sleep = %d %s", code, body)
	}
	if procs := functionProcesses(t, s.home); len(procs) != 1 {
		t.Fatalf("function processes after the wake: %v, want 1", procs)
	}
	if p := ls(); p["replicas"] != float64(1) || p["status"] != "ready" {
		t.Fatalf("ls after the wake = %v", p)
	}
}

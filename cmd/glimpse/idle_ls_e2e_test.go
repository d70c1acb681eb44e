package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// ls and status show the idle timeout in force and its source on the real
// binary: glimpse.yaml's idle.after beats `serve --idle-after`, which
// applies to an app that sets none.
func TestLsShowsIdleTimeoutAndSource(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	s := startStackWith(t, buildBinary(t), t.TempDir(), nil, "--idle-after", "7m")
	dir := testapp.Copy(t, "../../examples/hello")
	yamlPath := filepath.Join(dir, "glimpse.yaml")
	yaml, _ := os.ReadFile(yamlPath)
	// PR 1: no idle.after in glimpse.yaml; PR 2: idle.after 3m.
	os.WriteFile(yamlPath, []byte(strings.Replace(string(yaml), "idle:\n  after: 15m\n", "", 1)), 0o644)
	s.run(t, "up", dir, "--pr", "1", "--commit", "1111111")
	os.WriteFile(yamlPath, []byte(strings.Replace(string(yaml), "after: 15m", "after: 3m", 1)), 0o644)
	s.run(t, "up", dir, "--pr", "2", "--commit", "2222222")

	out, _ := s.run(t, "ls", "-o", "json")
	var list []struct {
		PR   int `json:"pr"`
		Idle *struct {
			After   string  `json:"after"`
			Seconds float64 `json:"seconds"`
			Source  string  `json:"source"`
		} `json:"idle"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[0].Idle == nil || list[1].Idle == nil {
		t.Fatalf("ls -o json = %s (%v)", out, err)
	}
	if i := list[0].Idle; list[0].PR != 1 || i.After != "7m0s" || i.Seconds != 420 || i.Source != "serve" {
		t.Errorf("PR 1 (no idle.after) idle = %+v; want 7m from serve", i)
	}
	if i := list[1].Idle; list[1].PR != 2 || i.After != "3m0s" || i.Source != "glimpse.yaml" {
		t.Errorf("PR 2 (idle.after 3m) idle = %+v; want 3m from glimpse.yaml", i)
	}
	table, _ := s.run(t, "ls")
	if !strings.Contains(table, "IDLE AFTER") || !strings.Contains(table, "7m (serve)") || !strings.Contains(table, "3m (glimpse.yaml)") {
		t.Errorf("ls table does not show the idle timeouts:\n%s", table)
	}
	st, _ := s.run(t, "status", dir, "--pr", "1", "-o", "json")
	var status struct {
		Idle *struct {
			After, Source string
		} `json:"idle"`
	}
	if err := json.Unmarshal([]byte(st), &status); err != nil || status.Idle == nil || status.Idle.After != "7m0s" || status.Idle.Source != "serve" {
		t.Errorf("status -o json of PR 1 = %s (%v); want idle 7m from serve", st, err)
	}
	if text, _ := s.run(t, "status", dir, "--pr", "2"); !strings.Contains(text, "idle after") || !strings.Contains(text, "3m (glimpse.yaml)") {
		t.Errorf("status of PR 2 does not show its idle timeout:\n%s", text)
	}
}

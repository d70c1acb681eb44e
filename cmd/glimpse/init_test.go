package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
)

func TestAppNameFor(t *testing.T) {
	for in, want := range map[string]string{
		"hello": "hello", "My App!": "my-app", "web_site-2": "web-site-2", "--x--": "x",
		"Ünïcode": "n-code", strings.Repeat("a", 50): strings.Repeat("a", 40),
	} {
		if got := appNameFor(in); got != want {
			t.Errorf("appNameFor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestInitScaffoldsAnAppThatDeploys: init writes an app whose glimpse.yaml
// loads, that up deploys on the local stack with its page and function
// answering, and that open finds; a second init refuses to overwrite.
func TestInitScaffoldsAnAppThatDeploys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My App")
	if _, _, err := runCLI(t, t.TempDir(), "init", dir); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(dir)
	if err != nil || f.App != "my-app" || f.Spec.Function.Source != "function" {
		t.Fatalf("config.Load of the scaffold = %+v, %v", f, err)
	}
	_, _, err = runCLI(t, t.TempDir(), "init", dir)
	if err == nil || !strings.Contains(err.Error(), "glimpse.yaml already exists: init never overwrites") {
		t.Fatalf("second init: %v", err)
	}
	if _, _, err := runCLI(t, t.TempDir(), "init", t.TempDir(), "--app", "Bad_Name"); err == nil || !strings.Contains(err.Error(), `app name "Bad_Name"`) {
		t.Fatalf("init --app Bad_Name: %v", err)
	}
	if testing.Short() {
		return
	}
	s := startStack(t, buildBinary(t))
	stdout, _ := s.run(t, "up", dir, "--pr", "1", "--commit", "1234567")
	url := lastLine(stdout)
	c := s.client()
	index, _ := os.ReadFile(filepath.Join(dir, "public", "index.html"))
	if code, body, _ := get(t, c, "GET", url, ""); code != 200 || body != string(index) {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, body, _ := get(t, c, "GET", url+"api/hello", ""); code != 200 || !strings.Contains(body, `"pr":"1"`) || !strings.Contains(body, `"app":"my-app"`) {
		t.Fatalf("GET /api/hello = %d %q", code, body)
	}
	if out, _ := s.run(t, "open", dir, "--pr", "1", "--print"); strings.TrimSpace(out) != url {
		t.Fatalf("open --print = %q, want %q", out, url)
	}
	if _, stderr, err := s.try("open", dir, "--pr", "2", "--print"); err == nil || !strings.Contains(stderr, "app my-app has no preview for pull request #2") {
		t.Fatalf("open of a missing preview: %v %q", err, stderr)
	}
}

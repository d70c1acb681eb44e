package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/plugin"
)

// TestGlimpseUpThroughThePlugin is what a user of the plugin does: the
// plugin binary in $GLIMPSE_HOME/plugins, glimpse.yaml naming
// dns: pdns://..., and the glimpse CLI (built from this repository, the
// module this example replaces) against a running `glimpse serve`. `glimpse
// up` finds the plugin by the URL's scheme, the preview's name resolves in
// PowerDNS, the daemon serves the preview on that name, and `glimpse down`
// removes the record; `glimpse plugins` lists the plugin.
func TestGlimpseUpThroughThePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds glimpse and runs the daemon")
	}
	s := startPDNS(t)
	home := t.TempDir()
	bin := filepath.Join(t.TempDir(), "glimpse")
	build := exec.Command("go", "build", "-o", bin, "./cmd/glimpse")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building glimpse: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(home, "plugins", plugin.BinaryPrefix+"pdns"), ".").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	env := append(os.Environ(), "GLIMPSE_HOME="+home, "PDNS_API_KEY="+apiKey)
	glimpse := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}

	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0")
	serve.Env = env
	var serveLog strings.Builder
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(os.Interrupt)
		serve.Wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", serveLog.String())
		}
	})
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		var info struct{ Addr string }
		if b, err := os.ReadFile(filepath.Join(home, "serve.json")); err == nil && json.Unmarshal(b, &info) == nil && info.Addr != "" {
			if resp, err := http.Get("http://" + info.Addr + "/healthz"); err == nil {
				resp.Body.Close()
				addr = info.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("glimpse serve did not start")
		}
	}

	out, stderr, err := glimpse("plugins", "-o", "json")
	if err != nil || !strings.Contains(out, `"pdns"`) || !strings.Contains(out, "DNS") {
		t.Fatalf("glimpse plugins: %v\n%s\n%s", err, out, stderr)
	}

	app := t.TempDir()
	os.MkdirAll(filepath.Join(app, "public"), 0o755)
	os.WriteFile(filepath.Join(app, "public", "index.html"), []byte("<h1>through PowerDNS</h1>\n"), 0o644)
	yml := "app: hello\nassets: {dir: public}\nproviders:\n  domain: " + zone + "\n  dns: " + s.url() + "\n"
	os.WriteFile(filepath.Join(app, "glimpse.yaml"), []byte(yml), 0o644)
	if _, stderr, err := glimpse("up", app, "--pr", "7", "--commit", "7777777"); err != nil {
		t.Fatalf("glimpse up: %v\n%s", err, stderr)
	}
	host := "pr-7.hello." + zone
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, s.dns)
	}}
	addrs, err := r.LookupHost(context.Background(), host)
	if err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Fatalf("DNS answer for %s after up: %v, %v; want 127.0.0.1", host, addrs, err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "<h1>through PowerDNS</h1>\n" {
		t.Fatalf("GET http://%s/ = %d %q", host, resp.StatusCode, body)
	}

	if _, stderr, err := glimpse("down", app, "--pr", "7"); err != nil {
		t.Fatalf("glimpse down: %v\n%s", err, stderr)
	}
	if addrs, err := r.LookupHost(context.Background(), host); err == nil {
		t.Fatalf("%s still resolves after down: %v", host, addrs)
	}
	// An unknown scheme without a plugin is one line naming where it looked.
	os.WriteFile(filepath.Join(app, "glimpse.yaml"), []byte("app: hello\nassets: {dir: public}\nproviders: {dns: 'nosuch://x'}\n"), 0o644)
	_, stderr, err = glimpse("up", app, "--pr", "8")
	if err == nil || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, `unknown scheme "nosuch"`) || !strings.Contains(stderr, "glimpse-plugin-nosuch") {
		t.Fatalf("up with an unknown scheme: %v\n%s", err, stderr)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestServeConfigPrecedence: defaults, then the file, then the
// environment, then flags.
func TestServeConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:7000\nruntime: openfaas://file:8080\nidle:\n  after: 1m\n  maxAwake: 3\n"), 0o644)
	env := map[string]string{"GLIMPSE_SERVE_IDLE_AFTER": "2m", "GLIMPSE_SERVE_RUNTIME": "openfaas://env:8080"}
	f := &serveFlags{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"--idle-after", "3m", "--waiting-page"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.resolve(file, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.Runtime != "openfaas://env:8080" || cfg.IdleAfter != 3*time.Minute || cfg.MaxAwake != 3 || !cfg.WaitingPage {
		t.Fatalf("resolved %+v", cfg)
	}
	// No file, no environment, no flags: the embedded defaults.
	cfg, err = (&serveFlags{}).resolve("", func(string) string { return "" })
	if err != nil || cfg.Listen != "127.0.0.1:8080" || cfg.Runtime != "" || cfg.Assets != "" || cfg.Registry != "" {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
	// The file named by the environment.
	cfg, err = (&serveFlags{}).resolve("", func(k string) string {
		if k == "GLIMPSE_SERVE_CONFIG" {
			return file
		}
		return ""
	})
	if err != nil || cfg.Runtime != "openfaas://file:8080" {
		t.Fatalf("GLIMPSE_SERVE_CONFIG: %+v, %v", cfg, err)
	}
}

// TestServeBadConfigIsOneLine: each way to get serve's configuration
// wrong is one line naming the key and where it was set, before anything
// starts.
func TestServeBadConfigIsOneLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("idle:\n  after: 5\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("runtime: openfaas://x:1\ngateway: y\n"), 0o644)
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"serve", "--config", bad}, "", "serve config " + bad + ": line 2: idle.after: \"5\": want a duration"},
		{[]string{"serve", "--config", unknown}, "", "line 2: unknown key gateway"},
		{[]string{"serve", "--config", filepath.Join(dir, "missing.yaml")}, "", "serve config: open"},
		{[]string{"serve", "--idle-after", "-1s"}, "", `invalid argument "-1s" for "--idle-after" flag: idle.after: "-1s": want a duration`},
		{[]string{"serve", "--runtime", "gateway:8080"}, "", `runtime: "gateway:8080": want a provider URL`},
		{[]string{"serve"}, "GLIMPSE_SERVE_MAX_CONNS=lots", `$GLIMPSE_SERVE_MAX_CONNS: limits.maxConns: "lots"`},
		{[]string{"serve", "--runtime", "nope://x"}, "", "runtime:"},
	} {
		t.Run(strings.Join(tc.args, " ")+tc.env, func(t *testing.T) {
			if tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				t.Setenv(k, v)
			}
			_, _, err := runCLI(t, t.TempDir(), append(tc.args, "--listen", "127.0.0.1:0")...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line with %q", err, tc.want)
			}
		})
	}
}

package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseServe(t *testing.T) {
	var s Serve
	yml := `
listen: 0.0.0.0:9000
runtime: openfaas://gateway.openfaas:8080?namespace=openfaas-fn
assets: s3://previews?endpoint=http://127.0.0.1:9000
registry: none
idle:
  after: 5m
  maxAwake: 20
  wakeTimeout: 30s
  waitingPage: true
limits:
  maxBodyBytes: -1
  maxConns: 100
`
	if err := ParseServe([]byte(yml), &s); err != nil {
		t.Fatal(err)
	}
	want := Serve{Listen: "0.0.0.0:9000", Runtime: "openfaas://gateway.openfaas:8080?namespace=openfaas-fn",
		Assets: "s3://previews?endpoint=http://127.0.0.1:9000", Registry: "none",
		IdleAfter: 5 * time.Minute, MaxAwake: 20, WakeTimeout: 30 * time.Second, WaitingPage: true,
		MaxBodyBytes: -1, MaxConns: 100}
	if s != want {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
	// An empty file, or one of comments, sets nothing.
	for _, empty := range []string{"", "# nothing\n", "~\n"} {
		var e Serve
		if err := ParseServe([]byte(empty), &e); err != nil || e != (Serve{}) {
			t.Fatalf("ParseServe(%q) = %+v, %v", empty, e, err)
		}
	}
}

// TestParseServeErrors: every bad file is one line naming the line and
// the key, with no Go type names.
func TestParseServeErrors(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"runtme: openfaas://x:8080\n", "line 1: unknown key runtme"},
		{"idle:\n  aftr: 5m\n", "line 2: unknown key idle.aftr"},
		{"idle:\n  after: soon\n", `line 2: idle.after: "soon": want a duration`},
		{"idle:\n  after: -5m\n", `idle.after: "-5m": want a duration such as 90s or 15m, not negative`},
		{"idle: 5m\n", "line 1: idle is a section"},
		{"listen: 8080\n", `line 1: listen: "8080": want HOST:PORT`},
		{"runtime: gateway:8080\n", `line 1: runtime: "gateway:8080": want a provider URL`},
		{"registry: docker\n", `registry: "docker": want embedded or none`},
		{"idle:\n  maxAwake: many\n", `idle.maxAwake: "many": want a whole number of at least 0`},
		{"idle:\n  waitingPage: sure\n", `idle.waitingPage: "sure": want true or false`},
		{"limits:\n  maxConns: -2\n", `limits.maxConns: "-2": want a whole number of at least -1`},
		{"listen: [a, b]\n", "line 1: listen: want a single value"},
		{"listen: a:1\nlisten: b:2\n", "line 2: listen is set twice"},
		{"- listen\n", "line 1: want a mapping of keys"},
		{"listen: a:1\n---\nlisten: b:2\n", "more than one YAML document"},
		{"listen: [\n", "line"},
		{"limits:\n  idle:\n    after: 1s\n", "unknown key limits.idle"},
	} {
		var s Serve
		err := ParseServe([]byte(tc.yml), &s)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") ||
			strings.Contains(err.Error(), "time.Duration") || strings.Contains(err.Error(), "config.") {
			t.Errorf("ParseServe(%q) = %v, want one line with %q", tc.yml, err, tc.want)
		}
	}
}

func TestLoadServeNamesTheFile(t *testing.T) {
	p := t.TempDir() + "/serve.yaml"
	os.WriteFile(p, []byte("idle:\n  after: x\n"), 0o644)
	var s Serve
	err := LoadServe(p, &s)
	if err == nil || !strings.HasPrefix(err.Error(), "serve config "+p+": line 2: idle.after:") {
		t.Fatalf("LoadServe = %v", err)
	}
	if err := LoadServe(p+".missing", &s); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("LoadServe(missing) = %v", err)
	}
}

// TestServeReferenceListsEveryKey keeps docs/glimpse-serve-yaml.md in step
// with ServeKeys: a row per key with its flag and environment variable.
func TestServeReferenceListsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/glimpse-serve-yaml.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(ServeKeys) < 10 {
		t.Fatalf("only %d keys", len(ServeKeys))
	}
	for _, k := range ServeKeys {
		row := "| `" + k.Key + "` | `--" + k.Flag + "` | `" + k.Env + "` |"
		if !strings.Contains(string(b), row) {
			t.Errorf("docs/glimpse-serve-yaml.md has no row starting %s", row)
		}
	}
}

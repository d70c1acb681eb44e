package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadExample(t *testing.T) {
	f, err := Load("../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	if f.App != "hello" || f.Function == nil || f.Function.Routes[0] != "/graphql" || f.Assets.Dir != "public" || f.Idle.After != "15m" {
		t.Fatalf("example spec = %+v", f.Spec)
	}
}

func TestLoadDefaults(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "glimpse.yaml", "app: shop\nfunction: {}\nassets: {}\nproviders:\n  runtime: openfaas://127.0.0.1:8080\n")
	write(t, dir, "function/main.go", "package main")
	write(t, dir, "public/index.html", "hi")
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Function.Source != "function" || f.Assets.Dir != "public" || f.Providers.Runtime != "openfaas://127.0.0.1:8080" {
		t.Fatalf("defaults not applied: %+v %+v", f.Spec, f.Providers)
	}
}

func TestLoadErrors(t *testing.T) {
	outside := t.TempDir()
	cases := []struct {
		name, yaml, want string
		code             preview.Code
	}{
		{"missing file", "", "no glimpse.yaml", preview.NotFound},
		{"bad app name", "app: Hello_World\nassets: {}\n", "app \"Hello_World\"", preview.InvalidArgument},
		{"unknown key", "app: a\nasets: {}\n", "asets", preview.InvalidArgument},
		{"assets outside", "app: a\nassets: {dir: ../" + filepath.Base(outside) + "}\n", "outside the app directory", preview.InvalidArgument},
		{"absolute assets", "app: a\nassets: {dir: " + outside + "}\n", "must be relative", preview.InvalidArgument},
		{"missing assets dir", "app: a\nassets: {dir: nope}\n", "does not exist", preview.InvalidArgument},
		{"nothing to deploy", "app: a\n", "neither function nor assets", preview.InvalidArgument},
		{"bad route", "app: a\nfunction: {source: ., routes: [graphql]}\n", "absolute path", preview.InvalidArgument},
		{"bad idle", "app: a\nassets: {dir: .}\nidle: {after: soon}\n", "idle.after", preview.InvalidArgument},
		{"not yaml", "app: [\n", "glimpse.yaml", preview.InvalidArgument},
		{"empty", " ", "empty", preview.InvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(filepath.Dir(outside), "app-"+strings.ReplaceAll(c.name, " ", "-"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if c.yaml != "" {
				write(t, dir, "glimpse.yaml", c.yaml)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("got nil error")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, c.want)
			}
			if got := preview.CodeOf(err); got != c.code {
				t.Fatalf("code = %v, want %v", got, c.code)
			}
		})
	}
}

func TestSymlinkOutsideRejected(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	write(t, dir, "glimpse.yaml", "app: a\nassets: {dir: site}\n")
	if err := os.Symlink(outside, filepath.Join(dir, "site")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("assets dir symlinked outside the app: err = %v", err)
	}
}

func TestFunctionLabelsFromStackAndSpec(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "fn/main.go", "package main")
	write(t, dir, "stack.yml", "version: 1.0\nprovider: {name: openfaas}\nfunctions:\n  shop:\n    handler: ./fn\n    labels: {team: a, tier: web}\n    annotations: {note: from-stack}\n")
	write(t, dir, "glimpse.yaml", "app: shop\nfunction: {stack: stack.yml, labels: {tier: api}}\n")
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Function.Labels["team"] != "a" || f.Function.Labels["tier"] != "api" || f.Function.Annotations["note"] != "from-stack" {
		t.Fatalf("labels %v annotations %v: want the stack's, overridden by glimpse.yaml", f.Function.Labels, f.Function.Annotations)
	}
	write(t, dir, "glimpse.yaml", "app: shop\nfunction: {stack: stack.yml, labels: {glimpse.dev/app: other}}\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("a glimpse.dev/ label in glimpse.yaml: err = %v, want reserved", err)
	}
}

func TestOwnerMustBeALabel(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "public"), 0o755)
	os.WriteFile(filepath.Join(dir, "glimpse.yaml"), []byte("app: a\nassets: {dir: public}\nproviders: {owner: \"Team Web!\"}\n"), 0o644)
	_, err := Load(dir)
	if err == nil || preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "providers.owner") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Load with a bad owner = %v; want a one-line InvalidArgument naming providers.owner", err)
	}
}

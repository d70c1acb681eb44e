package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// A stack file as `faas-cli new` writes it, with every field a function
// can set and a key faas-cli does not know.
const stackYML = `version: 1.0
provider:
  name: openfaas
  gateway: ${OPENFAAS_URL:-http://127.0.0.1:8080}
configuration:
  templates:
    - name: golang-middleware
      source: https://github.com/openfaas/golang-http-template
functions:
  hello:
    lang: golang-middleware
    handler: ./hello
    image: ${REGISTRY:-ghcr.io/acme}/hello:${TAG:-latest}
    fprocess: ./handler
    environment:
      write_timeout: 10s
      PORT: 8080
      DEBUG: true
      PRICE: $$5
    environment_file:
      - env/common.yml
      - env/override.yml
    secrets: [api-key]
    labels:
      com.openfaas.scale.min: "1"
    annotations:
      topic: cron-function
    limits: {memory: 128Mi, cpu: 100m}
    requests: {memory: 64Mi}
    constraints: ["node.platform.os == linux"]
    build_args: {GO111MODULE: "on"}
    build_options: [dev]
    readonly_root_filesystem: true
    some_future_key: 1
  world:
    lang: Dockerfile
    handler: ./world
    image: ghcr.io/acme/world:latest
`

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseStack(t *testing.T) {
	t.Parallel()
	s, err := ParseStack([]byte(stackYML), lookupFrom(map[string]string{"TAG": "v2", "REGISTRY": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0" || s.Provider.Name != "openfaas" || s.Provider.Gateway != "http://127.0.0.1:8080" || len(s.Configuration.Templates) != 1 {
		t.Fatalf("stack = %+v", s)
	}
	if got := strings.Join(s.Names(), ","); got != "hello,world" {
		t.Fatalf("names = %s", got)
	}
	h := s.Functions["hello"]
	if h.Name != "hello" || h.Lang != "golang-middleware" || h.Handler != "./hello" || h.Image != "ghcr.io/acme/hello:v2" || h.FProcess != "./handler" {
		t.Fatalf("hello = %+v", h)
	}
	if h.Environment["PORT"] != "8080" || h.Environment["DEBUG"] != "true" || h.Environment["PRICE"] != "$5" || h.Environment["write_timeout"] != "10s" {
		t.Fatalf("environment = %v", h.Environment)
	}
	if len(h.EnvironmentFile) != 2 || h.Secrets[0] != "api-key" || h.Labels["com.openfaas.scale.min"] != "1" || h.Annotations["topic"] != "cron-function" {
		t.Fatalf("hello = %+v", h)
	}
	if h.Limits.Memory != "128Mi" || h.Limits.CPU != "100m" || h.Requests.Memory != "64Mi" || h.Constraints[0] == "" ||
		h.BuildArgs["GO111MODULE"] != "on" || h.BuildOptions[0] != "dev" || !h.ReadOnlyRootFilesystem {
		t.Fatalf("hello = %+v", h)
	}
	if s.Functions["world"].Lang != "dockerfile" {
		t.Fatalf("lang Dockerfile not normalised: %q", s.Functions["world"].Lang)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Parallel()
	env := lookupFrom(map[string]string{"A": "a", "EMPTY": "", "B_2": "b"})
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$A/${A}/${B_2}x", "a/a/bx"},
		{"${UNSET}|$UNSET|", "||"},
		{"${UNSET:-d}|${EMPTY:-d}|${A:-d}", "d|d|a"},
		{"${UNSET=d}|${EMPTY=d}|${UNSET:=d}|${EMPTY:=d}", "d||d|d"},
		{"${UNSET:-${A}}", "a"},
		{"$$A $${A} $1 $ end$", "$A ${A} $1 $ end$"},
	} {
		got, err := expandEnv(c.in, env)
		if err != nil || got != c.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"${A", "${A^^}", "${A-d}", "${}", "${1A}"} {
		if _, err := expandEnv(bad, env); err == nil {
			t.Errorf("expandEnv(%q): no error", bad)
		}
	}
}

func TestParseStackErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, yaml, want string }{
		{"empty", "", "empty"},
		{"not yaml", "functions: [\n", "did not find"},
		{"legacy provider", "provider: {name: faas}\nfunctions: {a: {handler: .}}\n", `provider.name must be "openfaas"`},
		{"version", "version: 2.0\nprovider: {name: openfaas}\nfunctions: {a: {handler: .}}\n", "version"},
		{"no functions", "provider: {name: openfaas}\n", "no functions"},
		{"null function", "provider: {name: openfaas}\nfunctions: {a: }\n", "functions.a is empty"},
		{"bad substitution", "provider: {name: openfaas}\nfunctions: {a: {image: \"${TAG^^}\"}}\n", "unsupported substitution"},
	} {
		_, err := ParseStack([]byte(c.yaml), lookupFrom(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line containing %q", c.name, err, c.want)
		}
	}
}

func TestStackSelectAndRuntimeURL(t *testing.T) {
	t.Parallel()
	s, err := ParseStack([]byte(stackYML), lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, app, want, wantErr string }{
		{"world", "x", "world", ""},
		{"", "hello", "hello", ""},
		{"helo", "hello", "", `function "helo" is not in the stack file (functions: hello, world)`},
		{"", "shop", "", `2 functions (hello, world) and none is named "shop"`},
	} {
		f, err := s.Select(c.name, c.app)
		switch {
		case c.wantErr != "":
			if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Select(%q, %q) = %v; want %q", c.name, c.app, err, c.wantErr)
			}
		case err != nil || f.Name != c.want:
			t.Errorf("Select(%q, %q) = %v, %v; want %s", c.name, c.app, f, err, c.want)
		}
	}
	one := &Stack{Functions: map[string]*StackFunction{"only": {Name: "only"}}}
	if f, err := one.Select("", "app"); err != nil || f.Name != "only" {
		t.Errorf("the only function: %v, %v", f, err)
	}

	for _, c := range []struct{ gw, ns, want string }{
		{"http://127.0.0.1:8080", "", "openfaas://127.0.0.1:8080"},
		{"https://gw.example.com/", "openfaas-fn", "openfaas://gw.example.com?namespace=openfaas-fn&tls=true"},
		{"", "", ""},
		{"gw:8080", "", ""},
		{"http://gw:8080/prefix", "", ""},
		{"http://user:pw@gw:8080", "", ""},
	} {
		got, err := (&Stack{Provider: StackProvider{Gateway: c.gw}}).RuntimeURL(c.ns)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("RuntimeURL(%q, %q) = %q, %v; want %q", c.gw, c.ns, got, err, c.want)
		}
	}
}

// glimpse.yaml pointing at a stack file: the handler becomes the source,
// the stack's environment (files included) goes under glimpse.yaml's env.
func TestLoadWithStack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "glimpse.yaml", "app: hello\nfunction:\n  stack: stack.yml\n  env: {write_timeout: 30s}\nassets: {dir: public}\n")
	write(t, dir, "stack.yml", stackYML)
	write(t, dir, "hello/main.go", "package main")
	write(t, dir, "world/Dockerfile", "FROM scratch")
	write(t, dir, "public/index.html", "hi")
	write(t, dir, "env/common.yml", "environment:\n  FROM_FILE: common\n  LEVEL: common\n")
	write(t, dir, "env/override.yml", "environment:\n  LEVEL: override\n")
	f, err := load(dir, lookupFrom(map[string]string{"TAG": "v3"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := f.Function
	if fs.Source != "hello" || fs.Routes[0] != "/graphql" {
		t.Fatalf("function = %+v", fs)
	}
	want := map[string]string{"write_timeout": "30s", "PORT": "8080", "DEBUG": "true", "PRICE": "$5", "FROM_FILE": "common", "LEVEL": "override", "fprocess": "./handler"}
	if len(fs.Env) != len(want) {
		t.Fatalf("env = %v; want %v", fs.Env, want)
	}
	for k, v := range want {
		if fs.Env[k] != v {
			t.Fatalf("env[%s] = %q; want %q (env %v)", k, fs.Env[k], v, fs.Env)
		}
	}
	if f.StackFunction == nil || f.StackFunction.Name != "hello" || f.StackFunction.Labels["com.openfaas.scale.min"] != "1" || f.Stack.Functions["hello"].Image != "ghcr.io/acme/hello:v3" {
		t.Fatalf("stack function = %+v", f.StackFunction)
	}

	// An explicit source wins; another function by name; a stack in a
	// subdirectory resolves its handler from there.
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: deploy/stack.yml, stackFunction: world, source: world}\n")
	write(t, dir, "deploy/stack.yml", "provider: {name: openfaas}\nfunctions:\n  world: {handler: ../world, environment: {W: 1}}\n")
	if f, err = load(dir, lookupFrom(nil)); err != nil || f.Function.Source != "world" || f.Function.Env["W"] != "1" {
		t.Fatalf("explicit source: %+v, %v", f, err)
	}
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: deploy/stack.yml}\n")
	if f, err = load(dir, lookupFrom(nil)); err != nil || f.Function.Source != "world" {
		t.Fatalf("handler relative to the stack file: %+v, %v", f, err)
	}
}

func TestLoadWithStackErrors(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	write(t, outside, "stack.yml", stackYML)
	for _, c := range []struct {
		name, glimpse, stack, want string
	}{
		{"unknown function", "function: {stack: stack.yml, stackFunction: helo}", stackYML, `function "helo" is not in the stack file (functions: hello, world)`},
		{"ambiguous", "function: {stack: stack.yml}", strings.Replace(stackYML, "  hello:", "  hi:", 1), "choose one with function.stackFunction"},
		{"no stack", "function: {stackFunction: hello}", "", "needs function.stack"},
		{"missing stack", "function: {stack: nope.yml}", "", "does not exist"},
		{"stack outside", "function: {stack: OUTSIDE/stack.yml}", "", "outside the app directory"},
		{"handler outside", "function: {stack: stack.yml}", "provider: {name: openfaas}\nfunctions: {hello: {handler: ../..}}\n", "handler"},
		{"missing handler", "function: {stack: stack.yml}", "provider: {name: openfaas}\nfunctions: {hello: {handler: ./gone}}\n", "does not exist"},
		{"env file outside", "function: {stack: stack.yml, source: .}", "provider: {name: openfaas}\nfunctions: {hello: {environment_file: [../../x.yml]}}\n", "environment_file"},
		{"bad stack", "function: {stack: stack.yml}", "provider: {name: faas}\nfunctions: {hello: {}}\n", "stack.yml: provider.name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rel, _ := filepath.Rel(dir, outside)
			write(t, dir, "glimpse.yaml", "app: hello\n"+strings.Replace(c.glimpse, "OUTSIDE", rel, 1)+"\n")
			if c.stack != "" {
				write(t, dir, "stack.yml", c.stack)
			}
			os.MkdirAll(filepath.Join(dir, "hello"), 0o755)
			_, err := load(dir, lookupFrom(nil))
			if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want one InvalidArgument line containing %q", err, c.want)
			}
		})
	}
}

func TestStackLangBuilder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ lang, configured, want string }{
		{"", "", ""},
		{"", "docker://", "docker://"},
		{"golang-middleware", "", "ko://?template=golang-middleware"},
		{"golang-http", "ko://?platform=linux/arm64", "ko://?platform=linux%2Farm64&template=golang-http"},
		{"golang-middleware", "docker://", "docker://"},
		{"dockerfile", "", "docker://"},
		{"dockerfile", "docker://?network=none", "docker://?network=none"},
	} {
		f := &StackFunction{Name: "fn", Lang: c.lang}
		if got, err := f.BuilderURL(c.configured); err != nil || got != c.want {
			t.Errorf("lang %q builder %q: %q, %v; want %q", c.lang, c.configured, got, err, c.want)
		}
	}
	for _, c := range []struct{ lang, configured, want string }{
		{"python3", "", "lang: python3 is not a template Glimpse can build; it builds golang-middleware, golang-http (with the templates-sdk replace), dockerfile (docker builder); run faas-cli template pull"},
		{"dockerfile", "ko://", "lang is dockerfile, which the docker:// builder builds, but providers.builder is ko://"},
		{"golang-http", "ko://?template=golang-middleware", "says template=golang-middleware"},
	} {
		f := &StackFunction{Name: "fn", Lang: c.lang}
		_, err := f.BuilderURL(c.configured)
		if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("lang %q builder %q: %v; want one line containing %q", c.lang, c.configured, err, c.want)
		}
	}
	// Through Load: the stack's lang picks the builder, and an unknown
	// lang fails there, before any build or push.
	dir := t.TempDir()
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml}\n")
	write(t, dir, "hello/handler.go", "package function")
	write(t, dir, "stack.yml", "provider: {name: openfaas}\nfunctions: {hello: {lang: golang-middleware, handler: ./hello}}\n")
	if f, err := load(dir, lookupFrom(nil)); err != nil || f.Providers.Builder != "ko://?template=golang-middleware" {
		t.Fatalf("golang-middleware: %+v, %v", f, err)
	}
	write(t, dir, "stack.yml", "provider: {name: openfaas}\nfunctions: {hello: {lang: Dockerfile, handler: ./hello}}\n")
	if f, err := load(dir, lookupFrom(nil)); err != nil || f.Providers.Builder != "docker://" || f.Function.Source != "hello" {
		t.Fatalf("dockerfile: %+v, %v", f, err)
	}
	write(t, dir, "stack.yml", "provider: {name: openfaas}\nfunctions: {hello: {lang: python3, handler: ./hello}}\n")
	_, err := load(dir, lookupFrom(nil))
	if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "stack.yml: stack file: functions.hello: lang: python3 is not a template Glimpse can build") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("python3: %v", err)
	}
}

package config

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// A project as faas-cli template pull and faas-cli new leave it: stack.yml
// next to template/<lang>/ and the handler directory (the layout of
// openfaas/templates and of faas-cli's sample stack files), here with a
// template named like one of the store's.
func templateApp(t *testing.T, stack string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml}\n")
	write(t, dir, "stack.yml", stack)
	write(t, dir, "hello/handler.py", "def handle(req):\n    return req\n")
	write(t, dir, "template/python3-http/Dockerfile", "FROM scratch\n")
	write(t, dir, "template/python3-http/template.yml", "language: python3-http\n")
	write(t, dir, "template/node20/Dockerfile", "FROM scratch\n")
	write(t, dir, "common/util.py", "x = 1\n")
	return dir
}

const templateStack = `version: 1.0
provider: {name: openfaas, gateway: http://127.0.0.1:8080}
configuration:
  copy: [common]
functions:
  hello:
    lang: python3-http
    handler: ./hello
    image: hello:latest
    build_args: {PIP_INDEX: "https://pypi.internal/simple", RETRIES: 3}
    build_options: [dev]
`

func builderQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "docker" {
		t.Fatalf("builder %q: want a docker:// URL (%v)", u, err)
	}
	return p.Query()
}

// A lang with a template/<lang>/ directory selects the docker:// builder
// with the template, the project (the stack file's directory), the
// build_args, build_options and configuration.copy.
func TestStackTemplateBuilder(t *testing.T) {
	t.Parallel()
	dir := templateApp(t, templateStack)
	f, err := load(dir, lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	q := builderQuery(t, f.Providers.Builder)
	if q.Get("template") != "python3-http" || q.Get("project") != real || f.Function.Source != "hello" ||
		!slices.Equal(q["arg"], []string{"PIP_INDEX=https://pypi.internal/simple", "RETRIES=3"}) ||
		!slices.Equal(q["option"], []string{"dev"}) || !slices.Equal(q["copy"], []string{"common"}) {
		t.Fatalf("builder = %s (source %s)", f.Providers.Builder, f.Function.Source)
	}
	if w := f.StackFunction.Warnings(f.Providers.Builder); len(w) != 0 {
		t.Fatalf("warnings with a docker builder = %q; want none", w)
	}

	// A configured docker:// keeps its own settings.
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml}\nproviders: {builder: \"docker://?network=none\"}\n")
	if f, err = load(dir, lookupFrom(nil)); err != nil {
		t.Fatal(err)
	}
	if q := builderQuery(t, f.Providers.Builder); q.Get("network") != "none" || q.Get("template") != "python3-http" {
		t.Fatalf("configured docker builder = %s", f.Providers.Builder)
	}

	// lang: dockerfile takes build_args and copy, not build_options (no
	// template.yml), which is a warning.
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml}\n")
	write(t, dir, "stack.yml", strings.Replace(templateStack, "lang: python3-http", "lang: dockerfile", 1))
	write(t, dir, "hello/Dockerfile", "FROM scratch\n")
	if f, err = load(dir, lookupFrom(nil)); err != nil {
		t.Fatal(err)
	}
	q = builderQuery(t, f.Providers.Builder)
	if q.Get("template") != "" || q.Get("project") != real || len(q["arg"]) != 2 || len(q["option"]) != 0 || q.Get("copy") != "common" {
		t.Fatalf("dockerfile builder = %s", f.Providers.Builder)
	}
	if w := f.StackFunction.Warnings(f.Providers.Builder); len(w) != 1 || !strings.Contains(w[0], "functions.hello.build_options is ignored: lang: dockerfile has no template.yml") {
		t.Fatalf("warnings = %q", w)
	}
}

// A lang Glimpse cannot build, a template lang with a ko:// builder and a
// lang that is not a directory name are one line at load, before any
// build; the line names the templates the project has.
func TestStackTemplateBuilderErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, lang, glimpse, want string }{
		{"unknown lang", "ruby", "", "lang: ruby is not a template Glimpse can build; it builds golang-middleware, golang-http (with the templates-sdk replace), dockerfile (docker builder) or a template of template/ (node20, python3-http); run faas-cli template pull (or faas-cli template store pull ruby) next to the stack file to get template/ruby"},
		{"ko builder", "python3-http", "providers: {builder: ko://}\n", "functions.hello.lang is python3-http, a template the docker:// builder builds, but providers.builder is ko://"},
		{"path lang", "../template/node20", "", "lang: ../template/node20 is not a template Glimpse can build"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := templateApp(t, strings.Replace(templateStack, "lang: python3-http", "lang: "+c.lang, 1))
			write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml}\n"+c.glimpse)
			_, err := load(dir, lookupFrom(nil))
			if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load = %v; want one InvalidArgument line containing %q", err, c.want)
			}
		})
	}
}

// build_args values are strings (numbers and booleans are written as
// faas-cli passes them); a list or a map is one line naming the key.
func TestStackBuildArgsNotString(t *testing.T) {
	t.Parallel()
	head := "provider: {name: openfaas}\nfunctions:\n  fn:\n    lang: dockerfile\n    handler: ./fn\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"list value", head + "    build_args:\n      PKGS: [a, b]\n", "line 7: functions.fn.build_args.PKGS must be a string, not a list"},
		{"map value", head + "    build_args:\n      OPTS: {a: 1}\n", "line 7: functions.fn.build_args.OPTS must be a string, not a map"},
		{"not a map", head + "    build_args: [A=1]\n", "line 6: functions.fn.build_args must be a map of NAME: value"},
	} {
		_, err := ParseStack([]byte(c.yaml), lookupFrom(nil))
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want one line containing %q", c.name, err, c.want)
		}
	}
	s, err := ParseStack([]byte(head+"    build_args: {N: 3, B: true, E: }\n"), lookupFrom(nil))
	if err != nil || s.Functions["fn"].BuildArgs["N"] != "3" || s.Functions["fn"].BuildArgs["B"] != "true" {
		t.Fatalf("scalar build_args: %+v, %v", s, err)
	}
}

// Labels, annotations and environment are applied to the function; every
// other setting the runtimes or the builder cannot apply is one warning
// line naming its key, and nothing is left unnamed.
func TestStackWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "glimpse.yaml", "app: hello\nfunction: {stack: stack.yml, labels: {team: web}}\n")
	write(t, dir, "stack.yml", stackYML)
	write(t, dir, "hello/main.go", "package main")
	write(t, dir, "env/common.yml", "environment: {}\n")
	write(t, dir, "env/override.yml", "environment: {}\n")
	f, err := load(dir, lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	fs := f.Function
	if fs.Labels["com.openfaas.scale.min"] != "1" || fs.Labels["team"] != "web" || fs.Annotations["topic"] != "cron-function" || fs.Env["PORT"] != "8080" {
		t.Fatalf("applied: labels %v annotations %v env %v", fs.Labels, fs.Annotations, fs.Env)
	}
	w := f.StackFunction.Warnings(f.Providers.Builder)
	for _, key := range []string{"secrets", "constraints", "readonly_root_filesystem", "build_args", "build_options"} {
		n := 0
		for _, l := range w {
			if strings.Contains(l, "functions.hello."+key+" is ignored: ") && !strings.Contains(l, "\n") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("warnings name %s %d times, want once: %q", key, n, w)
		}
	}
	if len(w) != 5 {
		t.Errorf("%d warnings, want 5: %q", len(w), w)
	}
	// limits and requests are the function's resources.
	if want := (preview.Resources{Requests: preview.ResourceList{Memory: "64Mi"}, Limits: preview.ResourceList{CPU: "100m", Memory: "128Mi"}}); fs.Resources != want {
		t.Errorf("resources %+v, want %+v", fs.Resources, want)
	}
	for _, l := range w {
		if strings.Contains(l, "labels") || strings.Contains(l, "annotations") || strings.Contains(l, "environment") || strings.Contains(l, "limits") || strings.Contains(l, "requests") {
			t.Errorf("warning about an applied setting: %q", l)
		}
	}

	all := &StackFunction{Name: "x", BuildSecrets: map[string]string{"a": "b"}, Platforms: "linux/arm64", SkipBuild: true, copy: []string{"c"}}
	w = all.Warnings("ko://")
	for i, want := range []string{"functions.x.build_secrets is ignored", "functions.x.platforms is ignored", "functions.x.skip_build is ignored", "configuration.copy is ignored for functions.x: the builder ko:// builds without a Dockerfile"} {
		if i >= len(w) || !strings.Contains(w[i], want) {
			t.Errorf("warnings = %q; want [%d] to contain %q", w, i, want)
		}
	}
	if len((&StackFunction{Name: "x"}).Warnings("ko://")) != 0 {
		t.Error("warnings for a function with nothing to ignore")
	}
}

package dockerbuild_test

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/faas/localfaas"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// templateProject lays out what faas-cli template pull and faas-cli new
// leave in a project (the shape of openfaas/templates: template/<lang>/
// with Dockerfile, template.yml and a function/ skeleton; the handler in
// its own directory next to stack.yml), with a FROM scratch template since
// nothing can be pulled here: the handler directory holds the static
// webfn binary, which the template copies from its handler folder.
func templateProject(t testing.TB) (project, handler string) {
	t.Helper()
	bin, err := os.ReadFile(webfnBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	project = t.TempDir()
	write(t, project, "template/webtpl/Dockerfile", `FROM scratch
ARG ADDITIONAL_PACKAGE
ARG GREETING
LABEL packages="$ADDITIONAL_PACKAGE" greeting="$GREETING"
COPY handler/ /home/app/
COPY index.txt /home/index.txt
ENTRYPOINT ["/home/app/app"]
`, 0o644)
	write(t, project, "template/webtpl/template.yml", `language: webtpl
fprocess: /home/app/app
welcome_message: |
  You created a webtpl function.
handler_folder: handler
build_options:
  - name: dev
    packages: [make, gcc]
  - name: tools
    packages: [curl, make]
`, 0o644)
	write(t, project, "template/webtpl/index.txt", "from the template\n", 0o644)
	write(t, project, "template/webtpl/handler/app", "the template's placeholder", 0o755)
	write(t, project, "template/webtpl/.dockerignore", "**/*.log\n", 0o644)
	handler = filepath.Join(project, "fn")
	write(t, handler, "app", string(bin), 0o755)
	write(t, handler, "debug.log", "ignored", 0o644)
	write(t, handler, "build/fn/stale", "faas-cli's own output, skipped", 0o644)
	write(t, handler, "template/x", "skipped", 0o644)
	write(t, project, "common/lib/data.txt", "shared\n", 0o644)
	return project, handler
}

// imageFiles returns the regular files of img, sorted, and its labels.
func imageFiles(t *testing.T, image string) ([]string, map[string]string) {
	t.Helper()
	ref, _ := ociregistry.ParseReference(image, false)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, strings.TrimPrefix(h.Name, "/"))
		}
	}
	slices.Sort(files)
	return files, cf.Config.Labels
}

func templateQuery(project string, extra ...string) string {
	q := url.Values{"network": {"none"}, "template": {"webtpl"}, "project": {project}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] == "template" {
			q.Set(extra[i], extra[i+1])
		} else {
			q.Add(extra[i], extra[i+1])
		}
	}
	return q.Encode()
}

// A faas-cli template builds on the real engine as faas-cli lays out
// build/<fn>/: the handler overlays the template's handler_folder (build/
// and template/ left out), copy paths land under it, build_options fill
// ADDITIONAL_PACKAGE merged with the stack's own value, build_args reach
// the Dockerfile, .dockerignore applies; the image runs as a preview.
func TestTemplateBuildRuns(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	project, handler := templateProject(t)
	b := newBuilder(t, host, templateQuery(project, "copy", "common/lib", "option", "dev", "option", "tools",
		"arg", "GREETING=hi", "arg", "ADDITIONAL_PACKAGE=zlib make"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := b.Build(ctx, request(reg, "tpl", handler, 7, "abcdef1", nil))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	files, labels := imageFiles(t, res.Image)
	want := []string{"home/app/app", "home/app/common/lib/data.txt", "home/index.txt"}
	if !slices.Equal(files, want) {
		t.Fatalf("image files = %q, want %q", files, want)
	}
	if labels["packages"] != "curl gcc make zlib" || labels["greeting"] != "hi" || labels[preview.LabelApp] != "tpl" {
		t.Fatalf("labels = %v; want packages \"curl gcc make zlib\", greeting hi and Glimpse's", labels)
	}

	rt, err := localfaas.New(t.TempDir(), &localfaas.Options{StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	fn := preview.Function{Name: preview.FunctionName("tpl", 7), Image: res.Image, Env: map[string]string{"GLIMPSE_PR": "7"},
		Labels: preview.OwnerLabels("test", preview.Target{App: "tpl", PR: 7}).With(preview.LabelSourceHash, res.SourceHash)}
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	addr, err := rt.WaitEndpoint(ctx, fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from docker, pr 7\n" {
		t.Fatalf("function answered %d %q", resp.StatusCode, body)
	}

	// An ignored or skipped file changes nothing; a template file or a
	// copied file builds anew.
	write(t, handler, "debug.log", "changed", 0o644)
	write(t, handler, "build/fn/stale", "changed", 0o644)
	if again, err := b.Build(ctx, request(reg, "tpl", handler, 8, "abcdef2", nil)); err != nil || !again.Reused {
		t.Fatalf("Build after ignored changes = %+v, %v; want reuse", again, err)
	}
	for _, p := range []string{"template/webtpl/index.txt", "common/lib/data.txt"} {
		h1, err := b.SourceHash(ctx, handler)
		if err != nil {
			t.Fatal(err)
		}
		write(t, project, p, "changed "+p, 0o644)
		if h2, err := b.SourceHash(ctx, handler); err != nil || h2 == h1 {
			t.Fatalf("source hash after changing %s = %s, %v; want a new one (was %s)", p, h2, err, h1)
		}
	}
}

// lang: dockerfile builds the handler's own Dockerfile on the real engine,
// with configuration.copy paths added to its context, as faas-cli does.
func TestDockerfileLangWithCopy(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	project := t.TempDir()
	handler := source(t)
	write(t, handler, "Dockerfile", "FROM scratch\nCOPY app /app\nCOPY shared/ /shared/\nENTRYPOINT [\"/app\"]\n", 0o644)
	write(t, project, "shared/conf.txt", "c", 0o644)
	b := newBuilder(t, host, url.Values{"network": {"none"}, "project": {project}, "copy": {"shared"}}.Encode())
	res, err := b.Build(context.Background(), request(reg, "dfcopy", handler, 2, "abcdef1", nil))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	files, _ := imageFiles(t, res.Image)
	if want := []string{"app", "shared/conf.txt"}; !slices.Equal(files, want) {
		t.Fatalf("image files = %q, want %q", files, want)
	}
}

// A base image the engine does not have and cannot pull (no network here)
// is one line naming the image, before anything is pushed.
func TestTemplateNeedsPull(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	project, handler := templateProject(t)
	write(t, project, "template/webtpl/Dockerfile", "FROM glimpse-test-absent/python:3.12-alpine\nCOPY handler/ /home/app/\n", 0o644)
	b := newBuilder(t, host, templateQuery(project))
	req := request(reg, "pull", handler, 1, "abcdef1", nil)
	_, err := b.Build(context.Background(), req)
	if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "the engine has no image glimpse-test-absent/python:3.12-alpine and could not pull it") {
		t.Fatalf("Build = %v; want one InvalidArgument line naming the image", err)
	}
	if _, err := reg.Resolve(context.Background(), req.Repository+":"+req.Tag); preview.CodeOf(err) != preview.NotFound {
		t.Fatalf("Resolve after a failed build = %v; want NotFound (nothing pushed)", err)
	}
}

// Every template mistake is one InvalidArgument line from Build, found
// before the engine is contacted (there is none at the address) or
// anything pushed.
func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	noEngine := "unix://" + filepath.Join(t.TempDir(), "absent.sock")
	cases := []struct {
		name   string
		query  func(project string) string
		change func(t *testing.T, project string)
		want   string
	}{
		{"missing template dir", func(p string) string { return templateQuery(p, "template", "python3") }, nil,
			"no directory template/python3 in"},
		{"unsupported key", func(p string) string { return templateQuery(p) },
			func(t *testing.T, p string) {
				write(t, p, "template/webtpl/template.yml", "language: webtpl\nbuild_secrets: {a: b}\n", 0o644)
			}, `line 2: key "build_secrets" is not one Glimpse builds with`},
		{"mount_ssh", func(p string) string { return templateQuery(p) },
			func(t *testing.T, p string) { write(t, p, "template/webtpl/template.yml", "mount_ssh: true\n", 0o644) },
			"mount_ssh: true needs BuildKit's SSH forwarding"},
		{"bad build_options", func(p string) string { return templateQuery(p) },
			func(t *testing.T, p string) {
				write(t, p, "template/webtpl/template.yml", "build_options: [dev]\n", 0o644)
			}, "each build_options entry must be {name: NAME, packages: [PKG, ...]}"},
		{"handler_folder outside", func(p string) string { return templateQuery(p) },
			func(t *testing.T, p string) {
				write(t, p, "template/webtpl/template.yml", "handler_folder: ../up\n", 0o644)
			}, `handler_folder "../up" must be a directory inside the template`},
		{"unknown build option", func(p string) string { return templateQuery(p, "option", "gpu") }, nil,
			`build_options "gpu" is not in template/webtpl/template.yml (its build_options: dev, tools)`},
		{"no Dockerfile", func(p string) string { return templateQuery(p) },
			func(t *testing.T, p string) { os.Remove(filepath.Join(p, "template/webtpl/Dockerfile")) },
			"template webtpl has no Dockerfile"},
		{"copy outside the project", func(p string) string { return templateQuery(p, "copy", "../elsewhere") }, nil,
			`stack.yml configuration.copy: "../elsewhere"`},
		{"copy of the whole project", func(p string) string { return templateQuery(p, "copy", ".") }, nil,
			"is the whole project"},
		{"copy missing", func(p string) string { return templateQuery(p, "copy", "nothing") }, nil,
			`stack.yml configuration.copy: "nothing" does not exist in`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			project, handler := templateProject(t)
			if c.change != nil {
				c.change(t, project)
			}
			b := newBuilder(t, noEngine, c.query(project))
			req := request(reg, "bad", handler, 1, "abcdef1", nil)
			_, err := b.Build(context.Background(), req)
			if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Build = %v (code %v); want one InvalidArgument line containing %q", err, preview.CodeOf(err), c.want)
			}
			if _, err := reg.Resolve(context.Background(), req.Repository+":"+req.Tag); preview.CodeOf(err) != preview.NotFound {
				t.Fatalf("Resolve after a refused build = %v; want NotFound", err)
			}
		})
	}
}

// Template options that cannot work are refused when the URL is opened.
func TestTemplateURLErrors(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]string{
		"template=../x&project=/p":            "want a template name",
		"template=python3":                    "need project=, the absolute directory",
		"copy=shared&project=rel":             "need project=, the absolute directory",
		"option=dev":                          "option=dev: build options come from a template's template.yml",
		"template=python3&bogus=1&project=/p": "bogus",
	} {
		_, err := preview.Builders.Open(context.Background(), "docker://?"+q, &preview.OpenOptions{Getenv: func(string) string { return "" }})
		if preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), want) {
			t.Errorf("open docker://?%s = %v; want one InvalidArgument line containing %q", q, err, want)
		}
	}
}

// A stack.yml in faas-cli's shape (lang naming a template of template/,
// build_args, build_options, configuration.copy) loaded by package config
// selects this builder with the template, and the image it builds runs.
func TestStackTemplateThroughConfig(t *testing.T) {
	t.Parallel()
	host := engine(t)
	regHost, _ := registrytest.Embedded(t)
	reg := openRegistry(t, regHost)
	project, _ := templateProject(t)
	write(t, project, "glimpse.yaml", "app: tpl\nfunction: {stack: stack.yml, routes: [/]}\nproviders: {builder: \"docker://"+host+"?network=none\"}\n", 0o644)
	write(t, project, "stack.yml", `version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:8080
configuration:
  copy:
    - common/lib
functions:
  tpl:
    lang: webtpl
    handler: ./fn
    image: ghcr.io/acme/tpl:latest
    build_args:
      GREETING: from-stack
    build_options:
      - dev
`, 0o644)
	f, err := config.Load(project)
	if err != nil {
		t.Fatal(err)
	}
	if w := f.StackFunction.Warnings(f.Providers.Builder); len(w) != 0 {
		t.Fatalf("warnings = %q", w)
	}
	b, err := preview.Builders.Open(context.Background(), f.Providers.Builder, &preview.OpenOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("open %s: %v", f.Providers.Builder, err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		defer c.Close()
	}
	res, err := b.Build(context.Background(), request(reg, "tpl", filepath.Join(project, f.Function.Source), 3, "abcdef1", nil))
	if err != nil {
		t.Fatalf("Build with %s: %v", f.Providers.Builder, err)
	}
	files, labels := imageFiles(t, res.Image)
	if !slices.Contains(files, "home/app/common/lib/data.txt") || labels["greeting"] != "from-stack" || labels["packages"] != "gcc make" {
		t.Fatalf("image files %q labels %v", files, labels)
	}
}

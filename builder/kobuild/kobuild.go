package kobuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

func init() {
	preview.Builders.Register("ko", open)
}

// open is the opener of
// ko://[?platform=linux/arm64][&insecure=true][&template=golang-middleware].
func open(_ context.Context, u *url.URL, o *preview.OpenOptions) (preview.Builder, error) {
	q, err := preview.QueryParams(u, "platform", "insecure", "template")
	if err != nil {
		return nil, err
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, preview.Errorf(preview.InvalidArgument, "ko:// takes no host or path, only query parameters platform, insecure and template")
	}
	opts := &Options{Platform: q.Get("platform"), Template: q.Get("template"), Getenv: o.Env}
	if v := q.Get("insecure"); v != "" {
		if opts.Insecure, err = strconv.ParseBool(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "insecure=%q: want true or false", v)
		}
	}
	return New(opts)
}

// Options configure a Builder. Nil means defaults.
type Options struct {
	// Platform is "linux/<arch>[/<variant>]"; empty means linux/amd64.
	Platform string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Template is the OpenFaaS template (stack.yml lang) the source is
	// written for: TemplateGolangMiddleware or TemplateGolangHTTP. Empty
	// means a main package, or else the template whose Handle the package
	// declares.
	Template string
	// Insecure uses plain HTTP for every registry (loopback ones always).
	Insecure bool
	// Getenv reads registry credentials (ociregistry.EnvUsername and
	// EnvPassword); nil means os.Getenv.
	Getenv func(string) string
	// Keychain replaces the default credentials.
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

// Builder is the ko:// preview.Builder: it compiles a Go main package with
// the local toolchain (no Docker) and pushes a one-layer image. It is safe
// for concurrent use; builds of different sources run in parallel.
type Builder struct {
	platform string
	goos     string
	goarch   string
	goarm    string
	gobin    string
	template string
	insecure bool
	kc       authn.Keychain
	images   *ociregistry.Images // reuse by source hash and push, shared with dockerbuild
}

var _ preview.Builder = (*Builder)(nil)

// New returns a Builder. An invalid platform is an InvalidArgument error.
// It does no I/O.
func New(opts *Options) (*Builder, error) {
	if opts == nil {
		opts = &Options{}
	}
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	switch opts.Template {
	case "", TemplateGolangMiddleware, TemplateGolangHTTP:
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "template=%q: ko:// builds the templates %s", opts.Template, strings.Join(Templates, ", "))
	}
	b := &Builder{
		platform: plat.OS + "/" + plat.Architecture,
		goos:     plat.OS,
		goarch:   plat.Architecture,
		gobin:    opts.Go,
		template: opts.Template,
		insecure: opts.Insecure,
		kc:       opts.Keychain,
	}
	if plat.Variant != "" {
		b.platform += "/" + plat.Variant
		if plat.Architecture == "arm" {
			b.goarm = strings.TrimPrefix(plat.Variant, "v")
		}
	}
	if b.gobin == "" {
		b.gobin = "go"
	}
	if b.kc == nil {
		b.kc = ociregistry.Keychain(opts.Getenv, "")
	}
	if b.images, err = ociregistry.NewImages(&ociregistry.ImagesOptions{Insecure: b.insecure, Keychain: b.kc, Transport: opts.Transport}); err != nil {
		return nil, err
	}
	return b, nil
}

// buildEnv is the environment of the go commands Build runs: the
// process's, with the target platform and CGO_ENABLED=0 set by Glimpse,
// and, when goflags is not empty, GOFLAGS=goflags (see quietGOFLAGS).
func (b *Builder) buildEnv(goflags string) []string {
	env := make([]string, 0, len(os.Environ())+5)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOARM":
			continue
		case "GOFLAGS":
			if goflags != "" {
				continue
			}
		}
		env = append(env, kv)
	}
	env = append(env, "CGO_ENABLED=0", "GOOS="+b.goos, "GOARCH="+b.goarch)
	if b.goarm != "" {
		env = append(env, "GOARM="+b.goarm)
	}
	if goflags != "" {
		env = append(env, "GOFLAGS="+goflags)
	}
	return env
}

// outputFlags are go command flags that change what go build prints (or
// whether it builds at all) but not the binary: Glimpse drops them from
// the user's GOFLAGS so that a compile error is reported as the
// compiler's message.
var outputFlags = map[string]bool{"v": true, "x": true, "n": true, "work": true, "json": true}

// quietGOFLAGS returns the effective GOFLAGS (as `go env` reports them,
// from the environment or the go env file) without outputFlags. The
// result is never empty: an empty GOFLAGS variable would let the go env
// file's value back in, so it falls back to -buildvcs=false, which
// buildFlags passes anyway.
func quietGOFLAGS(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if !outputFlags[name] {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return "-buildvcs=false"
	}
	return strings.Join(keep, " ")
}

// buildFlags are the flags of go build; they are part of the source hash.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// binaryName is the name of the binary in the image: the source
// directory's base name, reduced to [a-z0-9._-], or "app".
func binaryName(dir string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(filepath.Base(dir)) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_' || r == '.' {
			sb.WriteRune(r)
		}
	}
	n := strings.Trim(sb.String(), ".")
	if n == "" {
		return "app"
	}
	return n
}

// SourceHash returns the source hash of the Go main package in dir as Build
// computes it (32 hex digits), without building or contacting a registry.
func (b *Builder) SourceHash(ctx context.Context, dir string) (string, error) {
	h, _, err := b.hashAndPlan(ctx, dir)
	return h, err
}

// hashAndPlan decides how to build dir (see planFor) and hashes it.
func (b *Builder) hashAndPlan(ctx context.Context, dir string) (string, *plan, error) {
	env, err := b.goEnv(ctx, dir)
	if err != nil {
		return "", nil, err
	}
	p, err := b.planFor(dir, env)
	if err != nil {
		return "", nil, err
	}
	p.goflags = env["GOFLAGS"]
	h, err := sourceHash(dir, env, append(b.settings(dir), p.settings()...))
	return h, p, err
}

func (b *Builder) settings(dir string) []string {
	return append([]string{"platform=" + b.platform, "cgo=0", "binary=" + binaryName(dir)}, buildFlags...)
}

// goEnv runs `go env -json` in dir with the process's environment (and
// the target platform); its GOFLAGS is the one go build runs with
// (quietGOFLAGS of the user's).
func (b *Builder) goEnv(ctx context.Context, dir string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, b.gobin, append([]string{"env", "-json"}, goEnvVars...)...)
	cmd.Dir = dir
	cmd.Env = b.buildEnv("")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, preview.WithCode(preview.CodeOf(ctx.Err()), fmt.Errorf("go env: %w", ctx.Err()))
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, preview.Errorf(preview.FailedPrecondition, "the go command %q was not found: install Go to use ko://", b.gobin)
		}
		return nil, preview.Errorf(preview.FailedPrecondition, "go env in %s: %s", dir, firstLine(stderr.String(), err.Error()))
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, preview.Errorf(preview.Internal, "go env -json: %v", err)
	}
	// The flags go build runs with, hashed as such: -v does not rebuild.
	env["GOFLAGS"] = quietGOFLAGS(env["GOFLAGS"])
	return env, nil
}

// Build builds req.SourceDir, a Go main package inside a module, and
// pushes it as req.Repository:src-<hash16> and req.Repository:req.Tag.
//
// The source hash covers: every file under req.SourceDir (recursively,
// except VCS directories); every file but _test.go files (not
// subdirectories) of each package it imports, transitively, from a local module (the enclosing module, modules
// replaced by a directory, go.work modules), plus what their //go:embed
// patterns match; go.mod, go.sum and vendor/modules.txt of the module,
// go.mod/go.sum of local replacements, go.work and go.work.sum; the Go
// version and the GOFLAGS (less those that only change what go build
// prints: -v, -x, -n, -work, -json), GOEXPERIMENT and GOAMD64-style settings; the
// platform, build flags and binary name; and the kobuild format version.
// Imports are found by parsing, without build constraints, so the set is a
// superset of what the build reads: an unrelated change can cause a rebuild,
// a relevant one is never missed. Dependencies from the module cache are
// pinned by go.sum. Files are named by module path and relative path, so the
// hash does not depend on where the checkout lives.
//
// When the repository already has src-<hash16>, Build only tags that
// manifest req.Tag and returns Reused. Otherwise it runs `go build` with
// CGO_ENABLED=0, -trimpath, -ldflags="-s -w" and those GOFLAGS (from the
// environment or the go env file; using the Go build cache),
// assembles an image (see ImageFromBinary; labels are req.Labels plus
// glimpse.dev/source-hash) and pushes it. A compile error is an
// InvalidArgument error whose message holds the first compiler error line;
// the full output goes to req.Progress. Nothing is tagged req.Tag on failure.
func (b *Builder) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	progress := req.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if err := ctx.Err(); err != nil {
		return preview.BuildResult{}, preview.WithCode(preview.CodeOf(err), fmt.Errorf("build: %w", err))
	}
	if fi, err := os.Stat(req.SourceDir); err != nil || !fi.IsDir() {
		return preview.BuildResult{}, preview.Errorf(preview.InvalidArgument, "function source %s is not a directory", req.SourceDir)
	}
	hash, pl, err := b.hashAndPlan(ctx, req.SourceDir)
	if err != nil {
		return preview.BuildResult{}, err
	}
	// Reuse: one GET of the manifest, one PUT of it under the new tag.
	if res, ok, err := b.images.Reuse(ctx, req, hash); err != nil || ok {
		return res, err
	}

	tmp, err := os.MkdirTemp("", "kobuild-")
	if err != nil {
		return preview.BuildResult{}, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, binaryName(req.SourceDir))
	what := req.SourceDir
	var overlay string
	if pl.template != "" {
		what += " (lang: " + pl.template + ", with a generated main)"
		if overlay, err = pl.writeOverlay(tmp); err != nil {
			return preview.BuildResult{}, err
		}
	}
	progress(fmt.Sprintf("building %s for %s (source %s)", what, b.platform, hash[:16]))
	start := time.Now()
	if err := b.compile(ctx, req.SourceDir, pl, overlay, bin, progress); err != nil {
		return preview.BuildResult{}, err
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	labels[preview.LabelSourceHash] = hash
	img, err := ImageFromBinary(bin, ImageConfig{Platform: b.platform, Labels: labels})
	if err != nil {
		return preview.BuildResult{}, err
	}
	size, _ := fileSize(bin)
	progress(fmt.Sprintf("built %s (%s) in %s", filepath.Base(bin), humanBytes(size), time.Since(start).Round(time.Millisecond)))
	// src-<hash> first, req.Tag last: a failure never leaves req.Tag
	// pointing at an image whose src tag is missing.
	req.Progress = progress
	return b.images.Publish(ctx, req, hash, img)
}

// compile runs go build in dir for the package in p.pkgDir (dir itself,
// or the generated main's directory in overlay) with GOFLAGS p.goflags,
// reporting its output through progress.
func (b *Builder) compile(ctx context.Context, dir string, p *plan, overlay, out string, progress func(string)) error {
	args := append([]string{"build", "-o", out}, buildFlags...)
	target := "."
	if overlay != "" {
		args = append(args, "-overlay", overlay)
		target = "./" + filepath.Base(p.pkgDir)
	}
	cmd := exec.CommandContext(ctx, b.gobin, append(args, target)...)
	cmd.Dir = dir
	cmd.Env = b.buildEnv(p.goflags)
	cmd.WaitDelay = 5 * time.Second
	output, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return preview.WithCode(preview.CodeOf(ctx.Err()), fmt.Errorf("go build: %w", ctx.Err()))
	}
	if errors.Is(err, exec.ErrNotFound) {
		return preview.Errorf(preview.FailedPrecondition, "the go command %q was not found: install Go to use ko://", b.gobin)
	}
	text := strings.TrimSpace(string(output))
	for _, l := range strings.Split(text, "\n") {
		progress(l)
	}
	return preview.Errorf(preview.InvalidArgument, "go build %s: %s", dir, firstLine(text, err.Error()))
}

// firstLine returns the first line of compiler output that says what is
// wrong (skipping "# package" headers), or def.
func firstLine(out, def string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "# ") {
			return l
		}
	}
	return def
}

func fileSize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

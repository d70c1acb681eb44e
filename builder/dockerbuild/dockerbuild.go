package dockerbuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// EnvDockerHost is the environment variable naming the engine when the
// builder URL does not, as for the docker CLI.
const EnvDockerHost = "DOCKER_HOST"

// DefaultHost is the engine address used when neither the URL nor
// DOCKER_HOST names one.
const DefaultHost = "unix:///var/run/docker.sock"

func init() {
	preview.Builders.Register("docker", open)
}

// open is the opener of docker://; see the package documentation.
func open(_ context.Context, u *url.URL, o *preview.OpenOptions) (preview.Builder, error) {
	q, err := preview.QueryParams(u, "dockerfile", "target", "platform", "arg", "network", "insecure", "template", "project", "copy", "option")
	if err != nil {
		return nil, err
	}
	host, err := hostFromURL(u)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = o.Env(EnvDockerHost)
	}
	opts := &Options{
		Host:       host,
		Dockerfile: q.Get("dockerfile"),
		Target:     q.Get("target"),
		Platform:   q.Get("platform"),
		Network:    q.Get("network"),
		Getenv:     o.Env,
		CertPath:   o.Env("DOCKER_CERT_PATH"),
		Template:   q.Get("template"),
		Project:    q.Get("project"),
		Copy:       q["copy"],
		// faas-cli's build_options.
		BuildOptions: q["option"],
	}
	if v := q.Get("insecure"); v != "" {
		if opts.Insecure, err = strconv.ParseBool(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "insecure=%q: want true or false", v)
		}
	}
	for _, a := range q["arg"] {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, preview.Errorf(preview.InvalidArgument, "arg=%q: want NAME=value, or NAME to take the value from the environment", a)
		}
		if !ok {
			v = o.Env(k)
		}
		if opts.BuildArgs == nil {
			opts.BuildArgs = map[string]string{}
		}
		opts.BuildArgs[k] = v
	}
	return New(opts)
}

// hostFromURL returns the engine address that a docker:// URL names, or ""
// when it names none:
//
//	docker://                          ""
//	docker:///var/run/docker.sock      unix:///var/run/docker.sock
//	docker://unix:///run/docker.sock   unix:///run/docker.sock
//	docker://tcp://10.0.0.5:2376       tcp://10.0.0.5:2376
//	docker://10.0.0.5:2376             tcp://10.0.0.5:2376
func hostFromURL(u *url.URL) (string, error) {
	switch {
	case u.Opaque != "":
		return "", preview.Errorf(preview.InvalidArgument, "write the builder as docker:// or docker:///path/to/docker.sock")
	case u.Host == "" && (u.Path == "" || u.Path == "/"):
		return "", nil
	case u.Host == "":
		return "unix://" + u.Path, nil
	case u.Host == "unix:":
		p := "/" + strings.TrimLeft(u.Path, "/")
		if p == "/" {
			return "", preview.Errorf(preview.InvalidArgument, "docker://unix:// needs a socket path, such as docker://unix:///var/run/docker.sock")
		}
		return "unix://" + p, nil
	case u.Host == "tcp:":
		hp := strings.TrimPrefix(u.Path, "//")
		if hp == "" || strings.Contains(hp, "/") {
			return "", preview.Errorf(preview.InvalidArgument, "docker://tcp:// needs host:port, such as docker://tcp://10.0.0.5:2376")
		}
		return "tcp://" + hp, nil
	case u.Path == "" || u.Path == "/":
		return "tcp://" + u.Host, nil
	}
	return "", preview.Errorf(preview.InvalidArgument, "docker://%s%s: write the engine as docker://host:port, docker://unix:///path or docker:///path", u.Host, u.Path)
}

// Options configure a Builder. Nil means defaults.
type Options struct {
	// Host is the engine address: unix:///path/docker.sock or
	// tcp://host:port. Empty means DefaultHost.
	Host string
	// CertPath is a directory with ca.pem, cert.pem and key.pem for a
	// tcp:// engine that requires TLS (DOCKER_CERT_PATH).
	CertPath string
	// Dockerfile is the Dockerfile's path inside the build context;
	// default "Dockerfile".
	Dockerfile string
	// Target is the stage of a multi-stage Dockerfile to build; empty
	// means the last.
	Target string
	// Platform is "os/arch[/variant]" of the image; empty means the
	// engine's own platform (asked once). The image configuration is set
	// to it, so a FROM scratch image is labelled correctly.
	Platform string
	// BuildArgs are the Dockerfile's ARG values.
	BuildArgs map[string]string
	// Network is the network mode of RUN steps: "none" (no network: a
	// hermetic build), "host", or a network name; empty means the
	// engine's default, as for docker build.
	Network string
	// Insecure uses plain HTTP for every registry (loopback ones always).
	Insecure bool
	// Template is a faas-cli template (a stack.yml lang) in
	// Project/template/<Template>/, what faas-cli template pull leaves:
	// Build then builds, as faas-cli build does, the template directory
	// with the source directory (the handler) copied into the template's
	// handler_folder (default function/); see Builder.Build. Empty: the
	// source directory is the build context.
	Template string
	// Project is the directory holding template/ and the Copy paths,
	// faas-cli's working directory (the stack file's directory). Required
	// with Template or Copy.
	Project string
	// Copy are paths relative to Project copied into the handler folder
	// (the context root without Template), as stack.yml's
	// configuration.copy; each must stay inside Project.
	Copy []string
	// BuildOptions name build_options of the template's template.yml; their
	// packages go into the ADDITIONAL_PACKAGE build argument, as faas-cli
	// puts them. Needs Template.
	BuildOptions []string
	// Getenv reads registry credentials (ociregistry.EnvUsername and
	// EnvPassword); nil means os.Getenv.
	Getenv func(string) string
	// Keychain replaces the default registry credentials
	// (ociregistry.Keychain).
	Keychain authn.Keychain
	// Transport is the HTTP transport for registries; nil means
	// go-containerregistry's default.
	Transport http.RoundTripper
}

// Builder is the docker:// preview.Builder: it builds a Docker context on a
// Docker engine through the Engine API (the classic builder, which every
// engine has and which needs no session), exports the image and pushes it
// with go-containerregistry. It is safe for concurrent use.
type Builder struct {
	cli        *client.Client
	host       string
	dockerfile string
	target     string
	platform   string // as configured; "" means the engine's
	network    string
	buildArgs  map[string]string
	images     *ociregistry.Images

	// A faas-cli template build (see Options.Template).
	template     string
	project      string
	copy         []string
	buildOptions []string

	platMu     sync.Mutex
	enginePlat string
}

var _ preview.Builder = (*Builder)(nil)

// New returns a Builder. It does no I/O: an unreachable engine is reported
// by Build. Invalid options are InvalidArgument errors.
func New(opts *Options) (*Builder, error) {
	if opts == nil {
		opts = &Options{}
	}
	host := opts.Host
	if host == "" {
		host = DefaultHost
	}
	if !strings.HasPrefix(host, "unix://") && !strings.HasPrefix(host, "tcp://") {
		return nil, preview.Errorf(preview.InvalidArgument, "docker engine %q: want unix:///path/docker.sock or tcp://host:port", host)
	}
	df, err := dockerfilePath(opts.Dockerfile)
	if err != nil {
		return nil, err
	}
	if err := checkTemplateOptions(opts); err != nil {
		return nil, err
	}
	if opts.Platform != "" {
		if _, err := parsePlatform(opts.Platform); err != nil {
			return nil, err
		}
	}
	copts := []client.Opt{client.WithHost(host), client.WithUserAgent("glimpse")}
	if opts.CertPath != "" && strings.HasPrefix(host, "tcp://") {
		copts = append(copts, client.WithTLSClientConfig(filepath.Join(opts.CertPath, "ca.pem"), filepath.Join(opts.CertPath, "cert.pem"), filepath.Join(opts.CertPath, "key.pem")))
	}
	cli, err := client.New(copts...)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "docker engine %q: %v", host, err)
	}
	images, err := ociregistry.NewImages(&ociregistry.ImagesOptions{Insecure: opts.Insecure, Keychain: opts.Keychain, Getenv: opts.Getenv, Transport: opts.Transport})
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for k, v := range opts.BuildArgs {
		args[k] = v
	}
	return &Builder{
		cli: cli, host: host, dockerfile: df, target: opts.Target, platform: opts.Platform,
		network: opts.Network, buildArgs: args, images: images,
		template: opts.Template, project: opts.Project, copy: slices.Clone(opts.Copy), buildOptions: slices.Clone(opts.BuildOptions),
	}, nil
}

// Close releases the engine connection. Build must not be called after.
func (b *Builder) Close() error { return b.cli.Close() }

// Host returns the engine address the Builder uses.
func (b *Builder) Host() string { return b.host }

// unreachable turns an engine connection failure into the one-line
// Unavailable error Build reports.
func (b *Builder) unreachable(err error) error {
	return preview.Errorf(preview.Unavailable, "docker engine at %s is not reachable (start dockerd, or set DOCKER_HOST or the builder URL docker://unix:///path/docker.sock): %s", b.host, oneLine(errText(err)))
}

func errText(err error) string {
	// The client wraps dial errors in a sentence of its own; keep the
	// underlying cause, which names the socket or address.
	var inner error = err
	for {
		u := errors.Unwrap(inner)
		if u == nil {
			break
		}
		inner = u
	}
	if inner != err && inner.Error() != "" {
		return inner.Error()
	}
	return err.Error()
}

// engineErr classifies an error from the engine API.
func (b *Builder) engineErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return preview.WithCode(preview.CodeOf(ctx.Err()), fmt.Errorf("%s: %w", what, ctx.Err()))
	}
	if client.IsErrConnectionFailed(err) {
		return b.unreachable(err)
	}
	return preview.WithCode(preview.Internal, fmt.Errorf("%s: %s", what, oneLine(err.Error())))
}

// enginePlatform returns the engine's "os/arch", asking it once.
func (b *Builder) enginePlatform(ctx context.Context) (string, error) {
	b.platMu.Lock()
	defer b.platMu.Unlock()
	if b.enginePlat != "" {
		return b.enginePlat, nil
	}
	v, err := b.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return "", b.engineErr(ctx, "docker engine version", err)
	}
	arch := v.Arch
	switch arch { // the engine reports uname names
	case "x86_64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	}
	b.enginePlat = v.Os + "/" + arch
	return b.enginePlat, nil
}

// settings are the build settings that enter the source hash; args are
// the build arguments of this build.
func (b *Builder) settings(platform string, args map[string]string) []string {
	s := []string{"dockerfile=" + b.dockerfile, "target=" + b.target, "platform=" + platform, "network=" + b.network}
	if b.template != "" {
		s = append(s, "template="+b.template)
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s = append(s, "arg "+k+"="+args[k])
	}
	return s
}

// SourceHash returns the source hash of the build context in dir as Build
// computes it (32 hex digits), without building. With no platform
// configured it asks the engine for its platform.
func (b *Builder) SourceHash(ctx context.Context, dir string) (string, error) {
	_, hash, _, err := b.prepare(ctx, dir)
	return hash, err
}

func (b *Builder) prepare(ctx context.Context, dir string) (*buildContext, string, string, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, "", "", preview.Errorf(preview.InvalidArgument, "build context %s is not a directory", dir)
	}
	var bc *buildContext
	var err error
	if b.template == "" && len(b.copy) == 0 {
		bc, err = readContext(dir, b.dockerfile)
		if bc != nil {
			bc.args = b.buildArgs
		}
	} else {
		var args map[string]string
		if bc, args, err = b.assemble(dir); bc != nil {
			bc.args = args
		}
	}
	if err != nil {
		return nil, "", "", err
	}
	df := bc.abs(b.dockerfile)
	if df == "" {
		if b.template != "" {
			return nil, "", "", preview.Errorf(preview.InvalidArgument, "template %s has no %s (template/%s in %s)", b.template, b.dockerfile, b.template, b.project)
		}
		return nil, "", "", preview.Errorf(preview.InvalidArgument, "no %s in the build context %s", b.dockerfile, dir)
	}
	if bc.dockerfileContent, err = os.ReadFile(df); err != nil {
		return nil, "", "", preview.Errorf(preview.InvalidArgument, "reading %s: %v", b.dockerfile, err)
	}
	platform := b.platform
	if platform == "" {
		if platform, err = b.enginePlatform(ctx); err != nil {
			return nil, "", "", err
		}
	}
	hash, err := bc.hash(b.settings(platform, bc.args))
	if err != nil {
		return nil, "", "", err
	}
	return bc, hash, platform, nil
}

// Build builds req.SourceDir, a Docker build context, and pushes the image
// as req.Repository:src-<hash16> and req.Repository:req.Tag.
//
// With a template (Options.Template), req.SourceDir is the faas-cli
// handler and the context is the one the package documentation describes;
// with copy paths and no template, the copy paths join req.SourceDir's
// files. Either way the hash below covers the assembled context, and a
// missing template, an unreadable or unsupported template.yml, an unknown
// build option or a copy path outside the project is an InvalidArgument
// error of one line, before the engine or the registry is contacted.
//
// The source hash covers the files the engine would see (every file of
// the context that .dockerignore does not exclude, with the docker CLI's
// pattern rules, plus the Dockerfile and .dockerignore), by path, type,
// permission bits and content (not times or owners); the Dockerfile path,
// target, platform, network mode and build arguments; and the dockerbuild
// format version. Base images are not resolved: a FROM tag that moves
// upstream does not change the hash (pin base images by digest to have
// such a change rebuild).
//
// When the repository already has src-<hash16>, Build only tags that
// manifest req.Tag and returns Reused: no engine call when a platform is
// configured, one (the engine's platform, once per Builder) otherwise.
// Otherwise it sends the context to the engine's classic builder, streams
// every line of the build log to req.Progress, exports the image, sets its
// configuration's platform and adds the labels req.Labels plus
// glimpse.dev/source-hash, and pushes it with go-containerregistry
// (credentials from ociregistry.Keychain), so the engine needs no access
// to the registry. The image stays in the engine,
// tagged req.Repository:src-<hash16>, as the layer cache of later builds.
//
// A failing build is an InvalidArgument error of one line naming the
// failing step and the engine's message; an unreachable engine is an
// Unavailable error saying where Build looked. Nothing is tagged req.Tag
// on failure.
func (b *Builder) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	progress := req.Progress
	if progress == nil {
		progress = func(string) {}
	}
	req.Progress = progress
	if err := ctx.Err(); err != nil {
		return preview.BuildResult{}, preview.WithCode(preview.CodeOf(err), fmt.Errorf("build: %w", err))
	}
	bc, hash, platform, err := b.prepare(ctx, req.SourceDir)
	if err != nil {
		return preview.BuildResult{}, err
	}
	if res, ok, err := b.images.Reuse(ctx, req, hash); err != nil || ok {
		return res, err
	}

	srcTag := req.Repository + ":" + ociregistry.SourceTag(hash)
	progress(fmt.Sprintf("building %s with the docker engine at %s for %s (source %s)", req.SourceDir, b.host, platform, hash[:16]))
	start := time.Now()
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	labels[preview.LabelSourceHash] = hash
	id, err := b.build(ctx, bc, srcTag, progress)
	if err != nil {
		return preview.BuildResult{}, err
	}
	progress(fmt.Sprintf("built %s in %s", shortID(id), time.Since(start).Round(time.Millisecond)))
	img, cleanup, err := b.export(ctx, id)
	if err != nil {
		return preview.BuildResult{}, err
	}
	defer cleanup()
	if img, err = configure(img, platform, labels); err != nil {
		return preview.BuildResult{}, err
	}
	return b.images.Publish(ctx, req, hash, img)
}

// message is one JSON object of the engine's build or push stream.
type message struct {
	Stream      string                    `json:"stream"`
	Status      string                    `json:"status"`
	Error       string                    `json:"error"`
	ErrorDetail *struct{ Message string } `json:"errorDetail"`
	Aux         json.RawMessage           `json:"aux"`
}

// build runs the classic builder and returns the image ID.
func (b *Builder) build(ctx context.Context, bc *buildContext, tag string, progress func(string)) (string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(bc.writeTar(pw)) }()
	defer pr.Close()

	args := map[string]*string{}
	for k, v := range bc.args {
		args[k] = &v
	}
	opts := client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  b.dockerfile,
		Target:      b.target,
		BuildArgs:   args,
		NetworkMode: b.network,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	}
	if b.platform != "" && pullsBaseImage(bc.dockerfileContent) {
		p, _ := parsePlatform(b.platform)
		opts.Platforms = []ocispec.Platform{{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}}
	}
	resp, err := b.cli.ImageBuild(ctx, pr, opts)
	if err != nil {
		pr.CloseWithError(err)
		if ctx.Err() == nil && !client.IsErrConnectionFailed(err) {
			return "", preview.Errorf(preview.InvalidArgument, "docker build %s: %s", bc.dir, oneLine(err.Error()))
		}
		return "", b.engineErr(ctx, "docker build", err)
	}
	defer resp.Body.Close()

	var id, step, partial string
	emit := func(text string) {
		text = partial + text
		lines := strings.Split(text, "\n")
		partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			l = strings.TrimRight(l, "\r ")
			if strings.TrimSpace(l) == "" {
				continue
			}
			if strings.HasPrefix(l, "Step ") {
				step = l
			}
			progress(l)
		}
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			if ctx.Err() != nil {
				return "", b.engineErr(ctx, "docker build", err)
			}
			return "", preview.Errorf(preview.Unavailable, "docker build %s: reading the engine's output: %v", bc.dir, err)
		}
		if m.Stream != "" {
			emit(m.Stream)
		}
		if m.Status != "" {
			emit(m.Status + "\n")
		}
		if len(m.Aux) > 0 {
			var r build.Result
			if json.Unmarshal(m.Aux, &r) == nil && r.ID != "" {
				id = r.ID
			}
		}
		if m.Error != "" || m.ErrorDetail != nil {
			emit("\n")
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			progress("error: " + msg)
			if img := fromImage(step); img != "" {
				msg = "the engine has no image " + img + " and could not pull it (pull or load it into the engine first, or build from scratch): " + msg
			}
			if step != "" {
				return "", preview.Errorf(preview.InvalidArgument, "docker build %s: %s: %s", bc.dir, step, oneLine(msg))
			}
			return "", preview.Errorf(preview.InvalidArgument, "docker build %s: %s", bc.dir, oneLine(msg))
		}
	}
	emit("\n")
	if ctx.Err() != nil {
		return "", b.engineErr(ctx, "docker build", ctx.Err())
	}
	if id == "" {
		// Engines before API 1.30 say it only in the log; the tag is as good.
		id = tag
	}
	return id, nil
}

// export saves the image from the engine (a docker-save archive),
// unpacks it into a temporary directory and returns it as an image whose
// layers are gzipped once, at the fastest level, and cached, so that the
// push computes each digest and uploads without compressing twice.
// cleanup removes the directory.
func (b *Builder) export(ctx context.Context, id string) (v1.Image, func(), error) {
	dir, err := os.MkdirTemp("", "glimpse-docker-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	rc, err := b.cli.ImageSave(ctx, []string{id})
	if err != nil {
		cleanup()
		return nil, nil, b.engineErr(ctx, "docker save", err)
	}
	err = untar(rc, dir)
	rc.Close()
	if err != nil {
		cleanup()
		return nil, nil, b.engineErr(ctx, "docker save", err)
	}
	img, err := imageFromSave(dir)
	if err != nil {
		cleanup()
		return nil, nil, preview.Errorf(preview.Internal, "reading the image the engine saved: %v", err)
	}
	return img, cleanup, nil
}

// untar writes the regular files of a tar stream under dir.
func untar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		name := path.Clean(h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// imageFromSave reads an unpacked docker-save archive holding one image.
func imageFromSave(dir string) (v1.Image, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("the archive holds %d images, want 1", len(m))
	}
	cfgRaw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path.Clean(m[0].Config))))
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, err
	}
	layers := make([]v1.Layer, 0, len(m[0].Layers))
	for _, l := range m[0].Layers {
		layer, err := tarball.LayerFromFile(filepath.Join(dir, filepath.FromSlash(path.Clean(l))),
			tarball.WithCompressedCaching, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return nil, err
		}
		layers = append(layers, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	// The saved configuration, whose diff IDs are those of the layers.
	return mutate.ConfigFile(img, cf)
}

// configure sets the image configuration's platform, which the classic
// builder stamps with its own on FROM scratch images, and adds labels. The
// labels are added here rather than by the engine, which would run one
// LABEL step (one container) per label and lose its layer cache whenever
// a label changes, as the pull request label does.
func configure(img v1.Image, platform string, labels map[string]string) (v1.Image, error) {
	p, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, preview.Errorf(preview.Internal, "reading the image configuration: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	for k, v := range labels {
		cf.Config.Labels[k] = v
	}
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, preview.Errorf(preview.Internal, "setting the image configuration: %v", err)
	}
	return out, nil
}

// pullsBaseImage reports whether a Dockerfile has a stage built on an image
// other than scratch or an earlier stage. Only then is the platform sent
// to the engine (it chooses the base image's variant): the classic builder
// fails a COPY into a FROM scratch stage built for another platform than
// its own ("does not match the specified platform"), and a scratch image
// gets its platform from configure anyway. A FROM it cannot read (a
// variable, say) counts as a base image.
func pullsBaseImage(dockerfile []byte) bool {
	stages := map[string]bool{}
	for _, line := range strings.Split(string(dockerfile), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		args := f[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			return true
		}
		img := strings.ToLower(args[0])
		if img != "scratch" && !stages[img] {
			return true
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return false
}

// fromImage returns the image of a "Step N/M : FROM image [AS name]" log
// line, or "" for another step or a FROM of scratch.
func fromImage(step string) string {
	_, ins, ok := strings.Cut(step, " : ")
	f := strings.Fields(ins)
	if !ok || len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
		return ""
	}
	for _, a := range f[1:] {
		if !strings.HasPrefix(a, "--") {
			if strings.EqualFold(a, "scratch") {
				return ""
			}
			return a
		}
	}
	return ""
}

// parsePlatform parses "os/arch[/variant]".
func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" || p.OSVersion != "" {
		return v1.Platform{}, preview.Errorf(preview.InvalidArgument, "platform %q: want os/arch[/variant], such as linux/amd64", s)
	}
	return *p, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

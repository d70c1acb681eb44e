package previewtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// In-memory reference providers: the contracts of package preview written
// out as the smallest correct implementation, for unit tests of code built
// on the interfaces (the Pipeline's plan, fault injection) and as the
// reading of a contract when a real provider's behaviour is in doubt. Each
// passes its conformance suite (memory_test.go). They are safe for
// concurrent use and honour cancellation; nothing persists.

// MemRouter is an in-memory preview.Router with compare-and-swap versions
// from a counter that never repeats.
type MemRouter struct {
	mu     sync.Mutex
	routes map[string]preview.Route
	seq    int64
}

// NewMemRouter returns an empty MemRouter.
func NewMemRouter() *MemRouter { return &MemRouter{routes: map[string]preview.Route{}} }

var _ preview.Router = (*MemRouter)(nil)

// Route returns the stored route for host, or NotFound.
func (m *MemRouter) Route(ctx context.Context, host string) (preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return preview.Route{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.routes[preview.NormalizeHost(host)]
	if !ok {
		return preview.Route{}, preview.Errorf(preview.NotFound, "no route for host %q", host)
	}
	return copyRoute(r), nil
}

// SetRoute stores r if the stored version is r.Version (see preview.Router).
func (m *MemRouter) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return preview.Route{}, err
	}
	r.Host = preview.NormalizeHost(r.Host)
	if err := r.Validate(); err != nil {
		return preview.Route{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.routes[r.Host]
	if (!ok && r.Version != "") || (ok && cur.Version != r.Version) {
		return preview.Route{}, preview.Errorf(preview.Aborted, "route %s: version %q is not the stored one", r.Host, r.Version)
	}
	m.seq++
	r = copyRoute(r)
	r.Version = "v" + strconv.FormatInt(m.seq, 10)
	m.routes[r.Host] = r
	return copyRoute(r), nil
}

// Routes lists the routes whose labels match selector, sorted by host.
func (m *MemRouter) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []preview.Route{}
	for _, r := range m.routes {
		if r.Labels.Matches(selector) {
			out = append(out, copyRoute(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// DeleteRoute removes host's route; a missing one is success.
func (m *MemRouter) DeleteRoute(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.routes, preview.NormalizeHost(host))
	return nil
}

func copyRoute(r preview.Route) preview.Route {
	r.FunctionPaths = append([]string(nil), r.FunctionPaths...)
	r.Labels = r.Labels.Clone()
	return r
}

// MemRuntime is an in-memory preview.FunctionRuntime and
// preview.GenerationRemover. Its Apply and RemoveOlder check the
// generation and write under one lock, as a runtime with conditional
// writes does. Fail, when set, makes Apply fail for a function: a
// function that "does not start".
type MemRuntime struct {
	mu  sync.Mutex
	fns map[string]preview.FunctionStatus
	// secrets are each function's Secrets; held are the secrets the
	// runtime holds by name (CreateSecret), for SecretNames.
	secrets map[string]map[string]string
	held    map[string]string
	// Fail, when not nil, is called by Apply before it writes; a non-nil
	// result is returned and nothing changes.
	Fail func(fn preview.Function) error
}

// NewMemRuntime returns an empty MemRuntime.
func NewMemRuntime() *MemRuntime {
	return &MemRuntime{fns: map[string]preview.FunctionStatus{}, secrets: map[string]map[string]string{}, held: map[string]string{}}
}

// CreateSecret stores a secret the runtime holds, for functions that name
// it in SecretNames (faas-cli secret create); it replaces one of that name.
func (m *MemRuntime) CreateSecret(name, value string) error {
	if err := preview.ValidateSecretName(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held[name] = value
	return nil
}

// Secret returns the secret name as function fn sees it: one of its
// Secrets, or a secret the runtime holds that it names in SecretNames.
func (m *MemRuntime) Secret(fn, name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.secrets[fn][name]; ok {
		return v, true
	}
	st, ok := m.fns[fn]
	if ok && slices.Contains(st.SecretNames, name) {
		v, ok := m.held[name]
		return v, ok
	}
	return "", false
}

var _ preview.FunctionRuntime = (*MemRuntime)(nil)

// Apply creates fn with one replica or updates it, keeping the replica
// count; never over a newer generation.
func (m *MemRuntime) Apply(ctx context.Context, fn preview.Function) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fn.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.fns[fn.Name]
	if ok {
		if err := preview.CheckGeneration(cur.Function, fn); err != nil {
			return err
		}
	}
	for _, n := range fn.SecretNames {
		if _, ok := m.held[n]; !ok {
			return preview.Errorf(preview.FailedPrecondition, "function %s: secret %q does not exist", fn.Name, n)
		}
	}
	if m.Fail != nil {
		if err := m.Fail(fn); err != nil {
			return err
		}
	}
	m.secrets[fn.Name] = maps.Clone(fn.Secrets)
	st := preview.FunctionStatus{Function: copyFunction(fn), Replicas: 1, AvailableReplicas: 1}
	if ok {
		st.Replicas, st.AvailableReplicas, st.CreatedAt = cur.Replicas, cur.AvailableReplicas, cur.CreatedAt
	}
	m.fns[fn.Name] = st
	return nil
}

// Get returns the function's status, or NotFound.
func (m *MemRuntime) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	if err := ctx.Err(); err != nil {
		return preview.FunctionStatus{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.fns[name]
	if !ok {
		return preview.FunctionStatus{}, preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	st.Function = copyFunction(st.Function)
	return st, nil
}

// List returns the functions whose labels match selector, sorted by name.
func (m *MemRuntime) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []preview.FunctionStatus{}
	for _, st := range m.fns {
		if st.Labels.Matches(selector) {
			st.Function = copyFunction(st.Function)
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Scale sets the replicas (0 allowed) and returns them.
func (m *MemRuntime) Scale(ctx context.Context, name string, replicas int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if replicas < 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "replicas must not be negative, got %d", replicas)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.fns[name]
	if !ok {
		return 0, preview.Errorf(preview.NotFound, "function %s not found", name)
	}
	st.Replicas, st.AvailableReplicas = replicas, replicas
	m.fns[name] = st
	return replicas, nil
}

// Remove deletes the function; a missing one is success.
func (m *MemRuntime) Remove(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.fns, name)
	delete(m.secrets, name)
	return nil
}

var _ preview.GenerationRemover = (*MemRuntime)(nil)

// RemoveOlder removes the function if its generation is lower than below,
// checking and removing under one lock (see preview.GenerationRemover).
func (m *MemRuntime) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.fns[name]
	if !ok || preview.GenerationOf(st.Annotations) >= below {
		return false, nil
	}
	delete(m.fns, name)
	delete(m.secrets, name)
	return true, nil
}

// copyFunction copies f without its secret values, as a runtime reports
// it.
func copyFunction(f preview.Function) preview.Function {
	f.Secrets = nil
	f.SecretNames = slices.Clone(f.SecretNames)
	f.Env = preview.Labels(f.Env).Clone()
	f.Labels = f.Labels.Clone()
	f.Annotations = preview.Labels(f.Annotations).Clone()
	return f
}

// MemAssets is an in-memory preview.AssetStore: blobs by digest, verified
// on upload, and manifests replaced whole under one lock.
type MemAssets struct {
	mu        sync.Mutex
	blobs     map[string][]byte
	manifests map[string]memManifest
}

type memManifest struct {
	m      preview.Manifest
	labels preview.Labels
}

// NewMemAssets returns an empty MemAssets.
func NewMemAssets() *MemAssets {
	return &MemAssets{blobs: map[string][]byte{}, manifests: map[string]memManifest{}}
}

var _ preview.AssetStore = (*MemAssets)(nil)

// Publish stores the missing blobs of m, then the manifest (see
// preview.AssetStore).
func (s *MemAssets) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	var st preview.PublishStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := preview.ValidateAssetPrefix(prefix); err != nil {
		return st, err
	}
	paths := make([]string, 0, len(m.Files))
	for p, f := range m.Files {
		if !preview.ValidDigest(f.Digest) {
			return st, preview.Errorf(preview.InvalidArgument, "%s: digest %q is not sha256:<64 hex>", p, f.Digest)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	st.Files = len(paths)
	seen := map[string]bool{}
	for _, p := range paths {
		f := m.Files[p]
		s.mu.Lock()
		_, have := s.blobs[f.Digest]
		s.mu.Unlock()
		if have || seen[f.Digest] {
			st.Reused++
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		rc, err := open(p)
		if err != nil {
			return st, preview.WithCode(preview.InvalidArgument, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return st, preview.WithCode(preview.Internal, err)
		}
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != f.Digest {
			return st, preview.Errorf(preview.InvalidArgument, "%s: content has digest %s, the manifest says %s", p, got, f.Digest)
		}
		s.mu.Lock()
		s.blobs[f.Digest] = b
		s.mu.Unlock()
		seen[f.Digest] = true
		st.Uploaded++
		st.UploadedBytes += int64(len(b))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.manifests[prefix]
	st.Unchanged = ok && old.m.Equal(m)
	s.manifests[prefix] = memManifest{m: copyManifest(m), labels: labels.Clone()}
	return st, nil
}

// Manifest returns the manifest at prefix, or NotFound.
func (s *MemAssets) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	if err := ctx.Err(); err != nil {
		return preview.Manifest{}, err
	}
	if err := preview.ValidateAssetPrefix(prefix); err != nil {
		return preview.Manifest{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mm, ok := s.manifests[prefix]
	if !ok {
		return preview.Manifest{}, preview.Errorf(preview.NotFound, "no manifest at %s", prefix)
	}
	return copyManifest(mm.m), nil
}

// Open returns the blob with the digest, or NotFound.
func (s *MemAssets) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[digest]
	if !ok {
		return nil, preview.Errorf(preview.NotFound, "no blob %s", digest)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// List returns the prefixes whose labels match selector, sorted.
func (s *MemAssets) List(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []preview.ManifestInfo{}
	for p, mm := range s.manifests {
		if mm.labels.Matches(selector) {
			out = append(out, preview.ManifestInfo{Prefix: p, Labels: mm.labels.Clone()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out, nil
}

// Delete removes the manifest at prefix; a missing prefix is success.
// Blobs stay (removing them here would race a Publish that found them
// present), as the contract allows.
func (s *MemAssets) Delete(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := preview.ValidateAssetPrefix(prefix); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.manifests, prefix)
	return nil
}

func copyManifest(m preview.Manifest) preview.Manifest {
	c := preview.Manifest{Files: make(map[string]preview.AssetFile, len(m.Files))}
	for p, f := range m.Files {
		c.Files[p] = f
	}
	return c
}

// MemRegistry is an in-memory preview.Registry: repositories under the
// host "mem.invalid", tags naming digests.
type MemRegistry struct {
	mu   sync.Mutex
	tags map[string]map[string]string // app -> tag -> digest
}

// NewMemRegistry returns an empty MemRegistry.
func NewMemRegistry() *MemRegistry { return &MemRegistry{tags: map[string]map[string]string{}} }

var _ preview.Registry = (*MemRegistry)(nil)

const memRegistryHost = "mem.invalid/"

// Repository returns "mem.invalid/<app>".
func (r *MemRegistry) Repository(app string) string { return memRegistryHost + app }

// Put tags digest as app:tag (what a push does).
func (r *MemRegistry) Put(app, tag, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tags[app] == nil {
		r.tags[app] = map[string]string{}
	}
	r.tags[app][tag] = digest
}

// Resolve returns the digest ref names, or NotFound.
func (r *MemRegistry) Resolve(ctx context.Context, ref string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(ref, memRegistryHost)
	if !ok {
		return "", preview.Errorf(preview.InvalidArgument, "reference %q is not in this registry", ref)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if app, d, ok := strings.Cut(rest, "@"); ok {
		for _, got := range r.tags[app] {
			if got == d {
				return d, nil
			}
		}
		return "", preview.Errorf(preview.NotFound, "manifest %s not found", ref)
	}
	app, tag, ok := strings.Cut(rest, ":")
	if !ok {
		tag = "latest"
	}
	d, ok := r.tags[app][tag]
	if !ok {
		return "", preview.Errorf(preview.NotFound, "tag %s not found", ref)
	}
	return d, nil
}

// Tags lists app's tags, sorted; an unknown app has none.
func (r *MemRegistry) Tags(ctx context.Context, app string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for t := range r.tags[app] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// DeleteTag removes app:tag; a missing tag is success.
func (r *MemRegistry) DeleteTag(ctx context.Context, app, tag string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tags[app], tag)
	return nil
}

// MemBuilder is an in-memory preview.Builder: the "image" of a source
// directory is a digest of its files, pushed to Registry, reused through
// a source tag as real builders do. A source directory holding a file
// named BROKEN fails to build, with a one-line error.
type MemBuilder struct {
	Registry *MemRegistry
	// Hook, when not nil, runs at the start of every Build; a non-nil
	// result fails the build (tests use it to block or to fail).
	Hook func(ctx context.Context, req preview.BuildRequest) error
}

var _ preview.Builder = (*MemBuilder)(nil)

// Build hashes req.SourceDir and tags the resulting digest (see
// preview.Builder).
func (b *MemBuilder) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	if err := ctx.Err(); err != nil {
		return preview.BuildResult{}, err
	}
	if b.Hook != nil {
		if err := b.Hook(ctx, req); err != nil {
			return preview.BuildResult{}, err
		}
	}
	app := strings.TrimPrefix(req.Repository, memRegistryHost)
	h := sha256.New()
	err := filepath.WalkDir(req.SourceDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == "BROKEN" {
			return preview.Errorf(preview.InvalidArgument, "source %s is broken (it has a BROKEN file)", req.SourceDir)
		}
		c, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(req.SourceDir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(c))
		h.Write(c)
		return nil
	})
	if err != nil {
		return preview.BuildResult{}, preview.WithCode(preview.InvalidArgument, err)
	}
	src := hex.EncodeToString(h.Sum(nil))
	srcTag := preview.SourceTagPrefix + src[:16]
	img := sha256.Sum256([]byte("image of " + src))
	digest := "sha256:" + hex.EncodeToString(img[:])
	res := preview.BuildResult{Image: req.Repository + "@" + digest, Digest: digest, SourceHash: src}
	if d, err := b.Registry.Resolve(ctx, req.Repository+":"+srcTag); err == nil && d == digest {
		res.Reused = true
	}
	b.Registry.Put(app, srcTag, digest)
	b.Registry.Put(app, req.Tag, digest)
	if req.Progress != nil {
		req.Progress("built " + digest[:19])
	}
	return res, nil
}

// DeliversSecrets reports true: this runtime delivers Function.Secrets and
// SecretNames (preview.SecretsRuntime).
func (m *MemRuntime) DeliversSecrets() bool { return true }

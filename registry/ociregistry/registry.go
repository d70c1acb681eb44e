package ociregistry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
)

// Environment variables holding basic-auth credentials for the registry.
const (
	EnvUsername = "GLIMPSE_REGISTRY_USERNAME"
	EnvPassword = "GLIMPSE_REGISTRY_PASSWORD"
)

func init() {
	preview.Registries.Register("oci", open)
}

// open is the opener of oci://host[:port][/path-prefix][?insecure=true].
func open(_ context.Context, u *url.URL, o *preview.OpenOptions) (preview.Registry, error) {
	q, err := preview.QueryParams(u, "insecure")
	if err != nil {
		return nil, err
	}
	insecure := false
	if v := q.Get("insecure"); v != "" {
		if insecure, err = strconv.ParseBool(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "insecure=%q: want true or false", v)
		}
	}
	if u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "registry URL needs a host: oci://host[:port][/path-prefix]")
	}
	return New(u.Host+u.Path, &Options{Insecure: insecure, Getenv: o.Env})
}

// Options configure a Registry. Nil means defaults.
type Options struct {
	// Insecure uses plain HTTP for every host. Loopback and *.localhost
	// hosts use plain HTTP regardless.
	Insecure bool
	// Getenv reads EnvUsername and EnvPassword; nil means os.Getenv.
	Getenv func(string) string
	// Keychain replaces the default credentials (environment, then the
	// Docker configuration).
	Keychain authn.Keychain
	// Transport is the HTTP transport; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

// Registry is a preview.Registry for one OCI registry and repository
// prefix. It is safe for concurrent use and reuses connections and tokens
// across calls.
type Registry struct {
	base     string // host[:port][/prefix]
	host     string
	insecure bool
	opts     []remote.Option
	puller   *remote.Puller
	pusher   *remote.Pusher
}

var _ preview.Registry = (*Registry)(nil)

// New returns a Registry whose repositories live under base,
// "host[:port][/path-prefix]". It does no I/O; an invalid base is an
// InvalidArgument error.
func New(base string, opts *Options) (*Registry, error) {
	if opts == nil {
		opts = &Options{}
	}
	base = strings.TrimSuffix(base, "/")
	host, _, _ := strings.Cut(base, "/")
	if host != "localhost" && !strings.ContainsAny(host, ".:") {
		return nil, preview.Errorf(preview.InvalidArgument, "registry host %q must contain a '.' or a port (or be localhost)", host)
	}
	if _, err := name.NewRepository(base+"/app", name.StrictValidation); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "registry %q: %v", base, err)
	}
	r := &Registry{base: base, host: host, insecure: opts.Insecure}
	kc := opts.Keychain
	if kc == nil {
		kc = Keychain(opts.Getenv, host)
	}
	r.opts = []remote.Option{remote.WithAuthFromKeychain(kc), remote.WithUserAgent("glimpse")}
	if opts.Transport != nil {
		r.opts = append(r.opts, remote.WithTransport(opts.Transport))
	}
	var err error
	if r.puller, err = remote.NewPuller(r.opts...); err != nil {
		return nil, err
	}
	if r.pusher, err = remote.NewPusher(r.opts...); err != nil {
		return nil, err
	}
	return r, nil
}

// Repository returns base/app, such as "127.0.0.1:5000/hello". No I/O.
func (r *Registry) Repository(app string) string { return r.base + "/" + app }

func (r *Registry) remote(ctx context.Context) []remote.Option {
	return []remote.Option{remote.Reuse(r.puller), remote.Reuse(r.pusher), remote.WithContext(ctx)}
}

// Resolve returns the manifest digest that ref (repo:tag or repo@digest)
// names, or NotFound. ref may name any registry; credentials from the
// environment are sent only to this registry's host.
func (r *Registry) Resolve(ctx context.Context, ref string) (string, error) {
	nr, err := ParseReference(ref, r.insecure)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(nr, r.remote(ctx)...)
	if err != nil {
		return "", Classify(ctx, fmt.Errorf("resolve %s: %w", ref, err))
	}
	return desc.Digest.String(), nil
}

// Tags lists the tags of app's repository, sorted. An unknown repository
// has no tags (nil, no error).
func (r *Registry) Tags(ctx context.Context, app string) ([]string, error) {
	repo, err := r.repo(app)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(repo, r.remote(ctx)...)
	if err != nil {
		err = Classify(ctx, fmt.Errorf("list tags of %s: %w", repo, err))
		if preview.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	slices.Sort(tags)
	return tags, nil
}

// DeleteTag removes tag from app's repository; the manifest stays, with its
// other tags. A missing tag is success. A registry that refuses to delete
// tags answers Unimplemented (deletes disabled, or the OCI tag delete not
// supported) or PermissionDenied.
func (r *Registry) DeleteTag(ctx context.Context, app, tag string) error {
	repo, err := r.repo(app)
	if err != nil {
		return err
	}
	t, err := name.NewTag(repo.String()+":"+tag, insecureOpt(r.insecure || IsLocalHost(repo.RegistryStr()))...)
	if err != nil || t.TagStr() != tag {
		return preview.Errorf(preview.InvalidArgument, "invalid tag %q", tag)
	}
	if err := remote.Delete(t, r.remote(ctx)...); err != nil {
		return preview.IgnoreNotFound(Classify(ctx, fmt.Errorf("delete tag %s: %w", t, err)))
	}
	return nil
}

func (r *Registry) repo(app string) (name.Repository, error) {
	if err := preview.ValidateDNSLabel(app); err != nil {
		return name.Repository{}, preview.Errorf(preview.InvalidArgument, "app %q: %v", app, err)
	}
	repo, err := name.NewRepository(r.Repository(app), insecureOpt(r.insecure || IsLocalHost(r.host))...)
	if err != nil {
		return name.Repository{}, preview.Errorf(preview.InvalidArgument, "repository %q: %v", r.Repository(app), err)
	}
	return repo, nil
}

func insecureOpt(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

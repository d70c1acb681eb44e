package ociregistry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
)

// SourceTagPrefix begins the tags under which builders keep the image built
// from one source hash: "src-" followed by the first 16 hex digits of the
// hash. Garbage collection (preview.Pipeline.GC) treats these tags as a
// build cache.
const SourceTagPrefix = preview.SourceTagPrefix

// sourceTagHexLen is how many characters of the source hash a source tag keeps.
const sourceTagHexLen = 16

// SourceTag returns the tag that keeps the image of a source hash,
// SourceTagPrefix plus the hash's first 16 characters (all of it when
// shorter).
func SourceTag(hash string) string {
	if len(hash) > sourceTagHexLen {
		hash = hash[:sourceTagHexLen]
	}
	return SourceTagPrefix + hash
}

// ImagesOptions configure Images. Nil means defaults.
type ImagesOptions struct {
	// Insecure uses plain HTTP for every registry (loopback ones always).
	Insecure bool
	// Keychain supplies credentials; nil means Keychain(Getenv, "").
	Keychain authn.Keychain
	// Getenv reads EnvUsername and EnvPassword when Keychain is nil; nil
	// means os.Getenv.
	Getenv func(string) string
	// Transport is the HTTP transport; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

// Images is the registry side that every builder shares: the reuse of an
// image by source hash and the push of a freshly built image under its
// source tag and the preview's tag, in that order. Builders compute the
// source hash their own way and call Reuse before building and Publish
// after. Images is safe for concurrent use and reuses connections and
// tokens across calls.
type Images struct {
	insecure bool
	opts     []remote.Option
}

// NewImages returns an Images. It does no I/O.
func NewImages(opts *ImagesOptions) (*Images, error) {
	if opts == nil {
		opts = &ImagesOptions{}
	}
	kc := opts.Keychain
	if kc == nil {
		kc = Keychain(opts.Getenv, "")
	}
	base := []remote.Option{remote.WithAuthFromKeychain(kc), remote.WithUserAgent("glimpse")}
	if opts.Transport != nil {
		base = append(base, remote.WithTransport(opts.Transport))
	}
	puller, err := remote.NewPuller(base...)
	if err != nil {
		return nil, err
	}
	pusher, err := remote.NewPusher(base...)
	if err != nil {
		return nil, err
	}
	return &Images{insecure: opts.Insecure, opts: append(base, remote.Reuse(puller), remote.Reuse(pusher))}, nil
}

// RemoteOptions returns the go-containerregistry options Images uses
// (credentials, user agent, transport, shared connections), for builders
// that talk to the registry themselves.
func (s *Images) RemoteOptions() []remote.Option { return append([]remote.Option(nil), s.opts...) }

// Insecure reports whether Images speaks plain HTTP to every registry.
func (s *Images) Insecure() bool { return s.insecure }

func (s *Images) refs(req preview.BuildRequest, hash string) (src, tag string, err error) {
	if hash == "" {
		return "", "", preview.Errorf(preview.Internal, "empty source hash")
	}
	src, tag = req.Repository+":"+SourceTag(hash), req.Repository+":"+req.Tag
	for _, r := range []string{src, tag} {
		if _, err := ParseReference(r, s.insecure); err != nil {
			return "", "", err
		}
	}
	return src, tag, nil
}

// Reuse looks for req.Repository:SourceTag(hash). When it exists, Reuse
// tags that manifest req.Tag (one GET, one PUT of the manifest, no blob
// moves), reports it through req.Progress and returns a result with Reused
// set and ok true. When it does not exist, Reuse returns ok false and no
// error, and the caller builds. Repeating Reuse is harmless: the tag is
// set to the same manifest.
func (s *Images) Reuse(ctx context.Context, req preview.BuildRequest, hash string) (res preview.BuildResult, ok bool, err error) {
	src, tag, err := s.refs(req, hash)
	if err != nil {
		return res, false, err
	}
	srcRef, _ := ParseReference(src, s.insecure)
	tagRef, _ := ParseReference(tag, s.insecure)
	ro := append([]remote.Option{remote.WithContext(ctx)}, s.opts...)
	desc, err := remote.Get(srcRef, ro...)
	if err != nil {
		if err := Classify(ctx, err); !preview.IsNotFound(err) {
			return res, false, preview.WithCode(preview.CodeOf(err), fmt.Errorf("look up %s: %w", src, err))
		}
		return res, false, nil
	}
	if err := remote.Put(tagRef, desc, ro...); err != nil {
		return res, false, Classify(ctx, fmt.Errorf("tag %s: %w", tag, err))
	}
	d := desc.Digest.String()
	if req.Progress != nil {
		req.Progress(fmt.Sprintf("source %s unchanged: reusing %s (%s)", SourceTag(hash)[len(SourceTagPrefix):], src, d))
	}
	return preview.BuildResult{Image: req.Repository + "@" + d, Digest: d, SourceHash: hash, Reused: true}, true, nil
}

// Publish pushes img as req.Repository:SourceTag(hash) and then as
// req.Repository:req.Tag, so that a failure never leaves req.Tag naming an
// image whose source tag is missing, and returns the result (Reused
// false). Blobs the registry has are not uploaded again. On failure
// req.Tag is not set (unless it already named this image); blobs and the
// source tag may stay.
func (s *Images) Publish(ctx context.Context, req preview.BuildRequest, hash string, img v1.Image) (preview.BuildResult, error) {
	src, tag, err := s.refs(req, hash)
	if err != nil {
		return preview.BuildResult{}, err
	}
	d, err := Push(ctx, img, []string{src, tag}, s.insecure, s.opts...)
	if err != nil {
		return preview.BuildResult{}, err
	}
	if req.Progress != nil {
		req.Progress(fmt.Sprintf("pushed %s@%s as %s and %s", req.Repository, d, SourceTag(hash), req.Tag))
	}
	return preview.BuildResult{Image: req.Repository + "@" + d, Digest: d, SourceHash: hash}, nil
}

// Push pushes img under every reference in refs, in order (blobs once per
// repository, then one manifest per reference), and returns its manifest
// digest. Loopback registries, or every registry when insecure is set, are
// spoken to over plain HTTP. A failure leaves the references before the
// failing one in place. Errors carry codes as Classify gives them. opts
// should carry credentials (remote.WithAuthFromKeychain); without them the
// push is anonymous.
func Push(ctx context.Context, img v1.Image, refs []string, insecure bool, opts ...remote.Option) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	ro := append([]remote.Option{remote.WithContext(ctx), remote.WithUserAgent("glimpse")}, opts...)
	pushed := map[string]bool{} // repositories that have the blobs
	for _, s := range refs {
		r, err := ParseReference(s, insecure)
		if err != nil {
			return "", err
		}
		if repo := r.Context().String(); !pushed[repo] {
			err = remote.Write(r, img, ro...)
			pushed[repo] = err == nil
		} else {
			err = remote.Put(r, img, ro...)
		}
		if err != nil {
			return "", Classify(ctx, fmt.Errorf("push %s: %w", s, err))
		}
	}
	return d.String(), nil
}

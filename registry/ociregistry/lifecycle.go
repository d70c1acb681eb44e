package ociregistry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
)

// The lifecycle side of Registry, used by garbage collection
// (preview.Pipeline.GC finds these methods through preview.AppLister and
// preview.ManifestDeleter).

var (
	_ preview.AppLister       = (*Registry)(nil)
	_ preview.ManifestDeleter = (*Registry)(nil)
)

// Apps lists the apps that have a repository in the registry: the
// repositories of the registry's catalog that sit directly under the
// registry's path prefix and whose last element is an app name (a DNS
// label), sorted. Registries without a catalog API (Docker Hub, GHCR, ECR)
// answer Unimplemented, PermissionDenied or NotFound; callers then name the
// apps themselves. It reads the whole catalog, page by page.
func (r *Registry) Apps(ctx context.Context) ([]string, error) {
	reg, err := name.NewRegistry(r.host, insecureOpt(r.insecure || IsLocalHost(r.host))...)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "registry %q: %v", r.host, err)
	}
	repos, err := remote.Catalog(ctx, reg, r.remote(ctx)...)
	if err != nil {
		err = Classify(ctx, fmt.Errorf("catalog of %s: %w", r.host, err))
		if preview.CodeOf(err) == preview.Unknown {
			err = preview.WithCode(preview.Unavailable, err)
		}
		return nil, err
	}
	prefix := ""
	if _, p, ok := strings.Cut(r.base, "/"); ok {
		prefix = p + "/"
	}
	var apps []string
	for _, repo := range repos {
		rest, ok := strings.CutPrefix(repo, prefix)
		if !ok || strings.Contains(rest, "/") || preview.ValidateDNSLabel(rest) != nil {
			continue
		}
		apps = append(apps, rest)
	}
	slices.Sort(apps)
	return slices.Compact(apps), nil
}

// DeleteManifest deletes the manifest digest ("sha256:...") from app's
// repository. Unlike DeleteTag this removes the image itself, and with it
// every tag that names it, on the registries measured (CNCF distribution,
// the embedded registry); call it only when no tag that must stay names
// digest. A missing manifest is success. A registry that refuses deletes
// answers Unimplemented or PermissionDenied.
func (r *Registry) DeleteManifest(ctx context.Context, app, digest string) error {
	repo, err := r.repo(app)
	if err != nil {
		return err
	}
	if !preview.ValidDigest(digest) {
		return preview.Errorf(preview.InvalidArgument, "invalid digest %q", digest)
	}
	d, err := name.NewDigest(repo.String()+"@"+digest, insecureOpt(r.insecure || IsLocalHost(repo.RegistryStr()))...)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "invalid digest %q: %v", digest, err)
	}
	if err := remote.Delete(d, r.remote(ctx)...); err != nil {
		return preview.IgnoreNotFound(Classify(ctx, fmt.Errorf("delete manifest %s: %w", d, err)))
	}
	return nil
}

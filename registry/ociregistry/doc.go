// Package ociregistry implements preview.Registry for any registry that
// speaks the OCI distribution API (the CNCF distribution registry, GHCR,
// ECR, Harbor, Glimpse's embedded registry), over go-containerregistry. It
// registers the URL scheme oci://host[:port][/path-prefix] (query parameter
// insecure=true forces plain HTTP; loopback and *.localhost hosts always use
// it). Credentials come from the environment (GLIMPSE_REGISTRY_USERNAME and
// GLIMPSE_REGISTRY_PASSWORD, basic auth for the configured host) or the
// Docker credential configuration (authn.DefaultKeychain, with its
// credential helpers), then GITHUB_TOKEN for ghcr.io. Its reference,
// authentication and error helpers (ParseReference, Keychain, Classify) are
// exported for builders that push to the same registries, and so is Images,
// the source-hash reuse and push that every builder shares (images are kept
// under src-<hash16> tags). For garbage collection (preview.Pipeline.GC) a
// Registry also lists the apps that have a repository (Apps, through the
// catalog) and deletes manifests by digest (DeleteManifest).
package ociregistry

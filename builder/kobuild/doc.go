// Package kobuild is the ko:// preview.Builder: it builds a function written
// in Go with the local Go toolchain (CGO_ENABLED=0, static, stripped), puts
// the binary into a one-layer OCI image with no base image, and pushes it
// with go-containerregistry; no Docker daemon is involved. Images are keyed
// by a source hash (see Builder.Build for the rule) and kept under the tag
// src-<hash16>, so an unchanged function is never rebuilt: Build then only
// adds the preview's tag, in a few milliseconds against a local registry.
// ImageFromBinary, Push and PushBinary make the same images from binaries
// built elsewhere (tests use them).
//
// The image holds only the binary and an empty /tmp: no CA certificates
// and no time zone data. A function that makes outbound TLS calls should
// embed its roots (import golang.org/x/crypto/x509roots/fallback) and one
// that needs zones should import time/tzdata.
//
// A source directory that is not a main package but an OpenFaaS Go
// template handler (package function with golang-middleware's
// Handle(http.ResponseWriter, *http.Request), or golang-http's
// Handle(handler.Request) (handler.Response, error)) is built with a
// generated main (see templates.go: $PORT, /_/health, timeouts, SIGTERM),
// placed beside it through go build -overlay so that it builds in the
// handler's own module; nothing is written to the source tree. The
// template is detected from Handle, or named with template= (package
// config sets it from stack.yml's lang).
//
// go build runs in an environment Glimpse controls: the target platform
// and CGO_ENABLED=0 are set, and the user's GOFLAGS (from the environment
// or the go env file) are kept except those that only change what go
// build prints (-v, -x, -n, -work, -json), so that a compile error is
// reported as the compiler's message.
//
// URL: ko://[?platform=linux/arm64][&insecure=true][&template=golang-middleware]. Registry credentials
// come from GLIMPSE_REGISTRY_USERNAME/GLIMPSE_REGISTRY_PASSWORD or the Docker
// configuration, as in package ociregistry.
package kobuild

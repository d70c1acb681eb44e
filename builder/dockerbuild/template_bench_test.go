package dockerbuild_test

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkSourceHash compares the source hash of the same function (the
// webfn binary, about 5 MB) as a plain build context and as a faas-cli
// template build (the context assembled from the template, the handler and
// a copy path, template.yml read, .dockerignore applied): the cost of the
// assembly, which every Build pays before it can reuse an image. No engine
// is needed (the platform is set).
func BenchmarkSourceHash(b *testing.B) {
	ctx := context.Background()
	noEngine := "unix://" + filepath.Join(b.TempDir(), "absent.sock")
	b.Run("context", func(b *testing.B) {
		bld := newBuilder(b, noEngine, "platform=linux/amd64")
		dir := source(b)
		for b.Loop() {
			if _, err := bld.SourceHash(ctx, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("template", func(b *testing.B) {
		project, handler := templateProject(b)
		bld := newBuilder(b, noEngine, templateQuery(project, "platform", "linux/amd64", "copy", "common/lib", "option", "dev"))
		for b.Loop() {
			if _, err := bld.SourceHash(ctx, handler); err != nil {
				b.Fatal(err)
			}
		}
	})
}

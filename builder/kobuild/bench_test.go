package kobuild_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// BenchmarkBuildUnchanged measures Build when the source hash is already in
// the registry: go env, hashing, one manifest GET and one manifest PUT.
func BenchmarkBuildUnchanged(b *testing.B) {
	host, _ := registrytest.Embedded(b)
	reg := registryFor(b, host)
	bld := newBuilder(b)
	dir := source(b)
	ctx := context.Background()
	if _, err := bld.Build(ctx, request(reg, dir, 1, "aaaaaaa")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res, err := bld.Build(ctx, request(reg, dir, 2+i%50, "bbbbbbb"))
		if err != nil || !res.Reused {
			b.Fatalf("Build = %+v, %v; want reuse", res, err)
		}
	}
}

// BenchmarkBuildCold measures Build after a source constant changed: go
// build (compiling the main package and linking, with the build cache
// warm for everything else), image assembly and push.
func BenchmarkBuildCold(b *testing.B) {
	host, _ := registrytest.Embedded(b)
	reg := registryFor(b, host)
	bld := newBuilder(b)
	dir := source(b)
	ctx := context.Background()
	if _, err := bld.Build(ctx, request(reg, dir, 1, "aaaaaaa")); err != nil {
		b.Fatal(err)
	}
	prev := `"v1"`
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		next := fmt.Sprintf(`"bench-%d-%d"`, i, counter.Add(1))
		edit(b, dir, "fn/main.go", prev, next)
		prev = next
		b.StartTimer()
		res, err := bld.Build(ctx, request(reg, dir, 2, "bbbbbbb"))
		if err != nil || res.Reused {
			b.Fatalf("Build = %+v, %v; want a fresh build", res, err)
		}
	}
}

// BenchmarkSourceHash measures the hashing step alone (go env included).
func BenchmarkSourceHash(b *testing.B) {
	bld := newBuilder(b)
	dir := source(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := bld.SourceHash(ctx, dir); err != nil {
			b.Fatal(err)
		}
	}
}

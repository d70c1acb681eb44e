//go:build unix

package localfaas

import (
	"context"
	"testing"
)

// BenchmarkScaleUp measures a function start: Scale 0->1 (exec of the
// cached image's entrypoint until its port accepts connections).
func BenchmarkScaleUp(b *testing.B) {
	ctx := context.Background()
	rt := newRuntime(b, b.TempDir(), nil)
	fn := testFunction("bench-pr-1", echoImage(b, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		b.Fatal(err)
	}
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := rt.Scale(ctx, fn.Name, 1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkApplyUnchanged measures an Apply that finds nothing to change.
func BenchmarkApplyUnchanged(b *testing.B) {
	ctx := context.Background()
	rt := newRuntime(b, b.TempDir(), nil)
	fn := testFunction("bench-pr-1", echoImage(b, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := rt.Apply(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyUnchangedOverGateway is the same through the openfaas
// client and the gateway API (what `glimpse up` pays).
func BenchmarkApplyUnchangedOverGateway(b *testing.B) {
	ctx := context.Background()
	rt := newRuntime(b, b.TempDir(), nil)
	c := gatewayClient(b, rt)
	fn := testFunction("bench-pr-1", echoImage(b, "a"), 1)
	if err := c.Apply(ctx, fn); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := c.Apply(ctx, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdPull measures pulling and extracting the test image (about
// 5 MB, one gzip layer) from a loopback registry into an empty cache.
func BenchmarkColdPull(b *testing.B) {
	ctx := context.Background()
	img := echoImage(b, "a")
	for b.Loop() {
		b.StopTimer()
		rt := newRuntime(b, b.TempDir(), nil)
		b.StartTimer()
		_, release, err := rt.image(ctx, img, "")
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

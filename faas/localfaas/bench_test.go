//go:build unix

package localfaas

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkScaleUp measures a function start, what a wake from zero costs
// the runtime: Scale 0->1 (exec of the cached image's entrypoint until its
// port accepts connections), with the sandbox (where this machine can
// sandbox: Linux, root) and without it, in the same run so the two compare:
//
//	go test ./faas/localfaas/ -run '^$' -bench 'ScaleUp' -count 10 | benchstat -col /sandbox -
func BenchmarkScaleUp(b *testing.B) {
	for _, c := range []struct {
		name string
		mode Sandbox
	}{{"sandbox=on", SandboxRequired}, {"sandbox=off", SandboxOff}} {
		b.Run(c.name, func(b *testing.B) {
			if c.mode == SandboxRequired {
				if err := probeSandbox(b.TempDir(), &sandboxConfig{uid: DefaultSandboxID, gid: DefaultSandboxID}); err != nil {
					b.Skipf("this machine cannot sandbox: %v", err)
				}
			}
			benchmarkScaleUp(b, c.mode)
		})
	}
}

func benchmarkScaleUp(b *testing.B, mode Sandbox) {
	ctx := context.Background()
	rt := newRuntime(b, b.TempDir(), func(o *Options) { o.Sandbox = mode })
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

// BenchmarkScaleUpSandboxCost measures what the sandbox adds to a wake
// from zero, robustly on a busy machine: every iteration wakes one function
// on a sandboxed runtime and one on an unsandboxed runtime, in alternating
// order, and the benchmark reports the p50 and p90 of each and the
// difference of the p50s (added-p50-ms), and their ratio.
//
//	go test ./faas/localfaas/ -run '^$' -bench 'ScaleUpSandboxCost' -benchtime 400x
func BenchmarkScaleUpSandboxCost(b *testing.B) {
	if err := probeSandbox(b.TempDir(), &sandboxConfig{uid: DefaultSandboxID, gid: DefaultSandboxID}); err != nil {
		b.Skipf("this machine cannot sandbox: %v", err)
	}
	ctx := context.Background()
	img := echoImage(b, "a")
	type side struct {
		rt    *Runtime
		times []time.Duration
	}
	var sides [2]*side
	for i, mode := range []Sandbox{SandboxRequired, SandboxOff} {
		rt := newRuntime(b, b.TempDir(), func(o *Options) { o.Sandbox = mode })
		fn := testFunction("bench-pr-1", img, 1)
		if err := rt.Apply(ctx, fn); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
			b.Fatal(err)
		}
		sides[i] = &side{rt: rt}
	}
	i := 0
	for b.Loop() {
		for j := range 2 {
			s := sides[(i+j)%2]
			start := time.Now()
			if _, err := s.rt.Scale(ctx, "bench-pr-1", 1); err != nil {
				b.Fatal(err)
			}
			s.times = append(s.times, time.Since(start))
			if _, err := s.rt.Scale(ctx, "bench-pr-1", 0); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(float64(len(s)-1)*p)]) / 1e6
	}
	on, off := sides[0].times, sides[1].times
	b.ReportMetric(pct(on, .5), "sandbox-p50-ms")
	b.ReportMetric(pct(on, .9), "sandbox-p90-ms")
	b.ReportMetric(pct(off, .5), "nosandbox-p50-ms")
	b.ReportMetric(pct(off, .9), "nosandbox-p90-ms")
	b.ReportMetric(pct(on, .5)-pct(off, .5), "added-p50-ms")
	b.ReportMetric(pct(on, .5)/pct(off, .5), "ratio-p50")
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

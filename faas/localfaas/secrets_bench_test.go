//go:build unix

package localfaas

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkApplyChange measures an Apply that restarts the function: a
// changed environment variable (baseline: the shared image tree) against a
// changed secret (a new private tree: hard links of the image's files plus
// the secrets directory), and a wake from zero with and without secrets
// (the private tree exists and is reused).
func BenchmarkApplyChange(b *testing.B) {
	ctx := context.Background()
	img := echoImage(b, "a")
	for _, kind := range []string{"env", "secret"} {
		b.Run(kind, func(b *testing.B) {
			rt := newRuntime(b, b.TempDir(), nil)
			fn := testFunction("bench-pr-1", img, 1)
			fn.Secrets = map[string]string{"bench-pr-1-token": "v"}
			i := 0
			for b.Loop() {
				i++
				v := strconv.Itoa(i)
				if kind == "env" {
					fn.Env = map[string]string{"N": v}
				} else {
					fn.Secrets = map[string]string{"bench-pr-1-token": v}
				}
				if err := rt.Apply(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, kind := range []string{"wake-no-secrets", "wake-secrets"} {
		b.Run(kind, func(b *testing.B) {
			rt := newRuntime(b, b.TempDir(), nil)
			fn := testFunction("bench-pr-1", img, 1)
			if kind == "wake-secrets" {
				fn.Secrets = map[string]string{"bench-pr-1-token": "v"}
			}
			if err := rt.Apply(ctx, fn); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := rt.Scale(ctx, fn.Name, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

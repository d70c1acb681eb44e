package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// The benchmarks compare a call through a plugin subprocess with the same
// call on the in-memory provider in process (the baseline), for a small
// call and for a 10 MiB blob, and measure a plugin's start-up.

func benchDNS(b *testing.B, d preview.DNS) {
	ctx := context.Background()
	labels := preview.Labels{preview.LabelManagedBy: preview.ManagedByValue}
	for b.Loop() {
		if err := d.Ensure(ctx, "pr-1.bench.localhost", labels); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSmallCall(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchDNS(b, previewtest.NewMemDNS()) })
	b.Run("plugin", func(b *testing.B) { benchDNS(b, must[preview.DNS](b)(subprocess(b).DNS(context.Background()))) })
}

func benchBlob(b *testing.B, s preview.AssetStore) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	sum := sha256.Sum256(content)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	m := preview.Manifest{Files: map[string]preview.AssetFile{"/big.bin": {Digest: digest, Size: int64(len(content)), ContentType: "application/octet-stream"}}}
	if _, err := s.Publish(ctx, "bench/pr-1/abc", m, nil, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		rc, err := s.Open(ctx, digest)
		if err != nil {
			b.Fatal(err)
		}
		// Through a plain Reader, so the direct baseline copies too.
		if _, err := io.Copy(io.Discard, struct{ io.Reader }{rc}); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkBlob10MiB(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchBlob(b, previewtest.NewMemAssets()) })
	b.Run("plugin", func(b *testing.B) {
		benchBlob(b, must[preview.AssetStore](b)(subprocess(b).Assets(context.Background())))
	})
}

// BenchmarkStart measures starting a plugin process through the handshake
// and its first call (Describe), then stopping it.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		c := Open(testPluginBin, nil)
		if _, err := c.Describe(context.Background()); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

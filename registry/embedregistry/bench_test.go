package embedregistry_test

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

// BenchmarkPush pushes a fresh image with one 5 MiB layer per iteration
// (HEAD, POST, PATCH, PUT per blob, then the manifest), with and without
// fsync.
func BenchmarkPush(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoSync=%v", noSync), func(b *testing.B) {
			reg, err := embedregistry.New(b.TempDir(), &embedregistry.Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer reg.Close()
			srv := httptest.NewServer(reg.Handler())
			defer srv.Close()
			host := srv.Listener.Addr().String()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				img, err := random.Image(5<<20, 1)
				if err != nil {
					b.Fatal(err)
				}
				img.Digest() // materialise before timing
				ref, _ := name.ParseReference(fmt.Sprintf("%s/bench:t%d", host, i))
				b.StartTimer()
				if err := remote.Write(ref, img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkResolve is a manifest HEAD by tag.
func BenchmarkResolve(b *testing.B) {
	reg, err := embedregistry.New(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	img, _ := random.Image(100, 1)
	ref, _ := name.ParseReference(srv.Listener.Addr().String() + "/bench:t")
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	p, _ := remote.NewPuller()
	for b.Loop() {
		if _, err := remote.Head(ref, remote.Reuse(p)); err != nil {
			b.Fatal(err)
		}
	}
}

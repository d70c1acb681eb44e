package fsassets

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchFiles returns n small files and big 1 MiB files.
func benchFiles(n, big int) files {
	f := files{}
	for i := range n {
		f[fmt.Sprintf("/s/%04d.js", i)] = fmt.Sprintf("console.log(%d)// %s", i, strings.Repeat("x", 2000))
	}
	for i := range big {
		f[fmt.Sprintf("/b/%d.bin", i)] = fmt.Sprintf("%d", i) + strings.Repeat("y", 1<<20)
	}
	return f
}

// BenchmarkPublishCold publishes 200 small files and 4 1 MiB files into
// an empty store; BenchmarkPublishUnchanged republishes them.
func BenchmarkPublishCold(b *testing.B) {
	f := benchFiles(200, 4)
	m := f.manifest()
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s, err := New(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Publish(ctx, "hello/pr-1", m, nil, f.open); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishUnchanged(b *testing.B) {
	f := benchFiles(200, 4)
	m := f.manifest()
	ctx := context.Background()
	s, err := New(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Publish(ctx, "hello/pr-1", m, nil, f.open); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := s.Publish(ctx, "hello/pr-1", m, nil, func(string) (io.ReadCloser, error) {
			return nil, fmt.Errorf("opened on an unchanged publish")
		})
		if err != nil || !st.Unchanged {
			b.Fatal(st, err)
		}
	}
}

// Package testapp gives tests and benchmarks a private, writable copy of an
// example app, so they can change its files without touching the tree.
package testapp

import (
	"os"
	"path/filepath"
	"testing"
)

// Copy copies the directory src (an app such as examples/hello) into a
// fresh temporary directory removed when tb ends, and returns that
// directory. It fails tb on any error.
func Copy(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		tb.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

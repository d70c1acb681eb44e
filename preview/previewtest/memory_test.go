package previewtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func TestMemRouterConformance(t *testing.T) {
	previewtest.RunRouterTests(t, previewtest.RouterHarness{
		New: func(t *testing.T) preview.Router { return previewtest.NewMemRouter() },
	})
}

func TestMemRuntimeConformance(t *testing.T) {
	previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
		New:   func(t *testing.T) preview.FunctionRuntime { return previewtest.NewMemRuntime() },
		Image: func(t *testing.T) string { return "mem.invalid/app@sha256:" + strings.Repeat("0", 64) },
		Secret: func(t *testing.T, rt preview.FunctionRuntime, fn, name string) (string, bool) {
			return rt.(*previewtest.MemRuntime).Secret(fn, name)
		},
		CreateSecret: func(t *testing.T, rt preview.FunctionRuntime, name, value string) {
			if err := rt.(*previewtest.MemRuntime).CreateSecret(name, value); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestMemAssetsConformance(t *testing.T) {
	shared := previewtest.NewMemAssets()
	previewtest.RunAssetStoreTests(t, previewtest.AssetStoreHarness{
		New: func(t *testing.T) preview.AssetStore { return shared },
	})
}

func TestMemRegistryConformance(t *testing.T) {
	reg := previewtest.NewMemRegistry()
	previewtest.RunRegistryTests(t, previewtest.RegistryHarness{
		New: func(t *testing.T) preview.Registry { return reg },
		Push: func(t *testing.T, repo, tag string, seed int) string {
			d := fmt.Sprintf("sha256:%064x", seed+1)
			reg.Put(strings.TrimPrefix(repo, "mem.invalid/"), tag, d)
			return d
		},
	})
}

func TestMemBuilderConformance(t *testing.T) {
	reg := previewtest.NewMemRegistry()
	previewtest.RunBuilderTests(t, previewtest.BuilderHarness{
		New:      func(t *testing.T) preview.Builder { return &previewtest.MemBuilder{Registry: reg} },
		Registry: func(t *testing.T) preview.Registry { return reg },
		Source: func(t *testing.T) string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
			return dir
		},
		Change: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main // changed\n"), 0o644)
		},
		Break: func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "BROKEN"), nil, 0o644) },
	})
}

func TestMemDNSConformance(t *testing.T) {
	shared := previewtest.NewMemDNS()
	previewtest.RunDNSTests(t, previewtest.DNSHarness{
		New: func(t *testing.T) preview.DNS { return shared },
	})
}

package plugin

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

func TestFinder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(testPluginBin, filepath.Join(dir, BinaryPrefix+"mem")); err != nil {
		t.Fatal(err)
	}
	// Not a Glimpse plugin: its handshake fails.
	if err := os.WriteFile(filepath.Join(dir, BinaryPrefix+"bad"), []byte("#!/bin/sh\necho not a plugin\necho second line\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not executable: ignored.
	if err := os.WriteFile(filepath.Join(dir, BinaryPrefix+"noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	if err := os.Symlink(testPluginBin, filepath.Join(pathDir, BinaryPrefix+"onpath")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir)
	f := Finder{Dir: dir}

	if p, err := f.Lookup("mem"); err != nil || p != filepath.Join(dir, BinaryPrefix+"mem") {
		t.Errorf("Lookup(mem) = %q, %v", p, err)
	}
	if p, err := f.Lookup("onpath"); err != nil || p != filepath.Join(pathDir, BinaryPrefix+"onpath") {
		t.Errorf("Lookup(onpath) = %q, %v", p, err)
	}
	for scheme, want := range map[string]preview.Code{"nope": preview.NotFound, "noexec": preview.NotFound, "../x": preview.InvalidArgument} {
		if _, err := f.Lookup(scheme); preview.CodeOf(err) != want {
			t.Errorf("Lookup(%q): %v, want %v", scheme, err, want)
		}
	}

	found := f.List(context.Background())
	var schemes []string
	for _, p := range found {
		schemes = append(schemes, p.Scheme)
	}
	if strings.Join(schemes, ",") != "bad,mem,onpath" {
		t.Fatalf("List found %v, want bad, mem, onpath", schemes)
	}
	bad, mem := found[0], found[1]
	t.Logf("a binary that is not a plugin: %s", bad.Error)
	if bad.Error == "" || strings.Contains(bad.Error, "\n") || len(bad.Interfaces) != 0 {
		t.Errorf("the non-plugin: %+v, want a one-line error", bad)
	}
	if mem.Error != "" || mem.Version != "v0.0.1-test" || mem.ProtocolVersion != ProtocolVersion || !mem.Serves(IfaceDNS) || !mem.Serves(IfaceGenerationRemover) {
		t.Errorf("the test plugin: %+v", mem)
	}
}

func TestOpenByURL(t *testing.T) {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testPluginBin, filepath.Join(home, "plugins", BinaryPrefix+"mem")); err != nil {
		t.Fatal(err)
	}
	// A plugin that refuses its configuration before the handshake.
	if err := os.WriteFile(filepath.Join(home, "plugins", BinaryPrefix+"refuses"), []byte("#!/bin/sh\necho 'refuses: no API key in REFUSES_KEY' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	ctx := context.Background()
	o := &preview.OpenOptions{Home: home}
	d, err := OpenDNS(ctx, mustURL(t, "mem://zone.example?x=1"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		clients.Lock()
		for _, c := range clients.m {
			c.Close()
		}
		clients.Unlock()
	})
	got := must[[]string](t)(d.Hosts(ctx, preview.Labels{"test/url": ""}))
	if len(got) != 1 || got[0] != "mem://zone.example?x=1" {
		t.Fatalf("the plugin saw URL %v", got)
	}
	if _, err := OpenCDN(ctx, mustURL(t, "mem://zone.example?x=1"), o); preview.CodeOf(err) != preview.Unimplemented {
		t.Errorf("OpenCDN of a plugin without a CDN: %v, want Unimplemented", err)
	}
	if _, err := OpenDNS(ctx, mustURL(t, "nosuch://x"), o); preview.CodeOf(err) != preview.NotFound {
		t.Errorf("OpenDNS of a scheme without a plugin: %v, want NotFound", err)
	}
	_, err = OpenDNS(ctx, mustURL(t, "refuses://x"), o)
	t.Logf("a plugin that exits at start: %v", err)
	if preview.CodeOf(err) != preview.Unavailable || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "no API key in REFUSES_KEY") {
		t.Errorf("OpenDNS of a plugin that exits at start: %v, want one Unavailable line quoting its stderr", err)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

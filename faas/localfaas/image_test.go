//go:build unix

package localfaas

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

type entry_ struct {
	name, body, link string
	typ              byte
}

func layerOf(t *testing.T, entries ...entry_) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644}
		switch e.typ {
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func file(name, body string) entry_    { return entry_{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) entry_           { return entry_{name: name, typ: tar.TypeDir} }
func symlink(name, link string) entry_ { return entry_{name: name, link: link, typ: tar.TypeSymlink} }
func hardlink(name, link string) entry_ {
	return entry_{name: name, link: link, typ: tar.TypeLink}
}

// newRoot returns a rootfs inside a parent directory, so that tests can
// check nothing lands next to it.
func newRoot(t *testing.T) (parent, rootfs string, root *os.Root) {
	parent = t.TempDir()
	rootfs = filepath.Join(parent, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return parent, rootfs, root
}

func TestExtractLayerRefusesEscapes(t *testing.T) {
	t.Parallel()
	for name, layer := range map[string][]entry_{
		"dotdot":           {file("../evil", "x")},
		"nested dotdot":    {dir("a/"), file("a/../../evil", "x")},
		"through symlink":  {symlink("up", ".."), file("up/evil", "x")},
		"absolute symlink": {symlink("etc", "/"), file("etc/evil", "x")},
		"hardlink out":     {hardlink("h", "../../evil")},
	} {
		t.Run(name, func(t *testing.T) {
			parent, _, root := newRoot(t)
			if err := extractLayer(context.Background(), root, layerOf(t, layer...)); err == nil {
				t.Fatal("extraction succeeded")
			}
			if _, err := os.Lstat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("a file escaped the rootfs")
			}
			if _, err := os.Lstat("/evil"); err == nil {
				t.Fatal("a file escaped to /")
			}
		})
	}
}

func TestExtractLayerWhiteouts(t *testing.T) {
	t.Parallel()
	_, rootfs, root := newRoot(t)
	ctx := context.Background()
	lower := layerOf(t, dir("etc/"), file("etc/keep", "k"), file("etc/old", "o"),
		dir("opq/"), file("opq/lower", "l"), dir("opq/sub/"), file("opq/sub/deep", "d"),
		file("bin/tool", "v1"), symlink("link", "bin/tool"))
	upper := layerOf(t, file("etc/.wh.old", ""),
		dir("opq/"), file("opq/upper", "u"), file("opq/.wh..wh..opq", ""),
		file("bin/tool", "v2"), file("link", "now a file"))
	for _, l := range []*bytes.Reader{lower, upper} {
		if err := extractLayer(ctx, root, l); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"etc/keep": "k", "opq/upper": "u", "bin/tool": "v2", "link": "now a file"}
	for p, body := range want {
		b, err := os.ReadFile(filepath.Join(rootfs, p))
		if err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", p, b, err, body)
		}
	}
	for _, p := range []string{"etc/old", "opq/lower", "opq/sub", "etc/.wh.old", "opq/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("%s exists", p)
		}
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "link")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("link replaced by a file: %v, %v", fi, err)
	}
}

func TestResolveInRoot(t *testing.T) {
	t.Parallel()
	_, rootfs, root := newRoot(t)
	err := extractLayer(context.Background(), root, layerOf(t,
		dir("usr/bin/"), file("usr/bin/app", "x"),
		symlink("bin", "usr/bin"),         // relative
		symlink("abs", "/usr/bin/app"),    // absolute: inside the rootfs
		symlink("up", "../../../usr/bin"), // climbs: stops at the root
		symlink("loop", "loop"),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(rootfs, "usr", "bin", "app")
	for _, p := range []string{"/usr/bin/app", "/bin/app", "/abs", "/up/app", "/../usr/bin/app"} {
		got, err := resolveInRoot(rootfs, p)
		if err != nil || got != want {
			t.Errorf("resolveInRoot(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := resolveInRoot(rootfs, "/loop"); err == nil {
		t.Error("a symlink loop resolved")
	}
	if _, err := resolveInRoot(rootfs, "/missing"); err == nil {
		t.Error("a missing path resolved")
	}
}

// TestPreparedTree: an extracted image is readable by the sandbox user
// whatever the layer's modes, keeps /tmp's sticky bit, has the host's
// /etc/hosts, and (as root) /dev/null; a cache entry from before this
// preparation is prepared on its next use.
func TestPreparedTree(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	img := echoImage(t, "a")
	info, release, err := rt.image(ctx, img, "")
	if err != nil {
		t.Fatal(err)
	}
	release()
	check := func() {
		t.Helper()
		for p, want := range map[string]os.FileMode{"ko-app": 0o755, "ko-app/echofn": 0o755, "etc/hosts": 0o644} {
			fi, err := os.Stat(filepath.Join(info.Rootfs, p))
			if err != nil || fi.Mode().Perm()&want != want {
				t.Errorf("%s: %v, %v; want at least %v", p, fi, err, want)
			}
		}
		if fi, err := os.Stat(filepath.Join(info.Rootfs, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Errorf("tmp: %v, %v; want drwxrwxrwt", fi, err)
		}
		if os.Geteuid() == 0 {
			if fi, err := os.Stat(filepath.Join(info.Rootfs, "dev", "null")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
				t.Errorf("dev/null: %v, %v; want a character device", fi, err)
			}
		}
	}
	check()
	dir := filepath.Dir(info.Rootfs)
	for _, p := range []string{cachePreparedName, "rootfs/dev", "rootfs/etc"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(info.Rootfs, "ko-app"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, release, err = rt.image(ctx, img, ""); err != nil {
		t.Fatal(err)
	}
	release()
	check()
}

package preview

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// FuzzAssetPaths checks the path handling of static assets: Manifest.Lookup
// only returns clean, absolute manifest keys and finds every key its
// cleaned path names; a prefix ValidateAssetPrefix accepts is a clean,
// local, relative path that stays inside a store's directory; ValidDigest
// is its grammar; and ResolveInside (in a directory with symbolic links
// pointing inside, outside, up and in a loop) only returns existing,
// symlink-free paths inside the base, with one-line InvalidArgument errors
// otherwise.
func FuzzAssetPaths(f *testing.F) {
	root := f.TempDir()
	outside := filepath.Join(root, "outside")
	base := filepath.Join(root, "app")
	for _, d := range []string{outside, filepath.Join(base, "public", "sub"), filepath.Join(base, "function")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(base, "public", "index.html"), filepath.Join(base, "file"), filepath.Join(outside, "secret")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out":             outside,
		"out-rel":         "../outside",
		"up":              "..",
		"in":              "public",
		"in-abs":          filepath.Join(base, "public"),
		"self":            ".",
		"loop":            "loop",
		"dangle":          "nowhere",
		"public/sub/back": "../..",
		"public/sub/esc":  "../../../outside/secret",
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			f.Fatal(err)
		}
	}
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		f.Fatal(err)
	}
	m := Manifest{Files: map[string]AssetFile{
		"/index.html":   {Digest: "sha256:1"},
		"/a/index.html": {Digest: "sha256:2"},
		"/a/b.txt":      {Digest: "sha256:3"},
		"/a b/%2e.txt":  {Digest: "sha256:4"},
	}}
	f.Fuzz(func(t *testing.T, urlPath, prefix, rel string) {
		// Lookup.
		if p, file, ok := m.Lookup(urlPath); ok {
			if got, in := m.Files[p]; !in || got != file {
				t.Fatalf("Lookup(%q) = %q, not a manifest key", urlPath, p)
			}
			if path.Clean(p) != p || !strings.HasPrefix(p, "/") {
				t.Fatalf("Lookup(%q) = %q: not clean and absolute", urlPath, p)
			}
		} else if _, in := m.Files[path.Clean("/"+urlPath)]; in {
			t.Fatalf("Lookup(%q) missed %q", urlPath, path.Clean("/"+urlPath))
		}

		// ValidateAssetPrefix.
		if err := ValidateAssetPrefix(prefix); err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") || CodeOf(err) != InvalidArgument {
				t.Fatalf("ValidateAssetPrefix(%q) = %q (code %v)", prefix, err, CodeOf(err))
			}
		} else {
			if path.Clean(prefix) != prefix || !filepath.IsLocal(prefix) || strings.HasPrefix(prefix, "/") {
				t.Fatalf("ValidateAssetPrefix accepted %q: not a clean local path", prefix)
			}
			j := filepath.Join(realBase, filepath.FromSlash(prefix))
			if r, err := filepath.Rel(realBase, j); err != nil || !filepath.IsLocal(r) || r == "." {
				t.Fatalf("ValidateAssetPrefix accepted %q, which leaves the directory (%q)", prefix, r)
			}
			for _, seg := range strings.Split(prefix, "/") {
				if strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".json") {
					t.Fatalf("ValidateAssetPrefix accepted %q (segment %q)", prefix, seg)
				}
			}
		}

		// ValidDigest.
		if ValidDigest(prefix) != digestRE.MatchString(prefix) {
			t.Fatalf("ValidDigest(%q) = %v", prefix, ValidDigest(prefix))
		}

		// ResolveInside.
		if strings.IndexByte(rel, 0) >= 0 || len(rel) > 512 {
			return
		}
		got, err := ResolveInside(base, rel, "assets.dir")
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || CodeOf(err) != InvalidArgument {
				t.Fatalf("ResolveInside(%q) = %q (code %v): want one line, InvalidArgument", rel, msg, CodeOf(err))
			}
			return
		}
		if !filepath.IsAbs(got) {
			t.Fatalf("ResolveInside(%q) = %q: not absolute", rel, got)
		}
		if r, err := filepath.Rel(realBase, got); err != nil || !(r == "." || filepath.IsLocal(r)) {
			t.Fatalf("ResolveInside(%q) = %q escapes %s", rel, got, realBase)
		}
		if real, err := filepath.EvalSymlinks(got); err != nil || real != got {
			t.Fatalf("ResolveInside(%q) = %q, which is not symlink-free (%q, %v)", rel, got, real, err)
		}
		if _, err := os.Stat(got); err != nil {
			t.Fatalf("ResolveInside(%q) = %q: %v", rel, got, err)
		}
	})
}

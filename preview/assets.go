package preview

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Manifest maps the URL paths of a preview's static files ("/index.html")
// to their content-addressed blobs.
type Manifest struct {
	Files map[string]AssetFile `json:"files"`
}

// AssetFile is one file of a Manifest.
type AssetFile struct {
	// Digest is "sha256:<hex>" of the content.
	Digest      string `json:"digest"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
}

// Lookup returns the file for an URL path, trying path, then path +
// "/index.html" for directories ("/" finds "/index.html").
func (m Manifest) Lookup(urlPath string) (string, AssetFile, bool) {
	p := path.Clean("/" + urlPath)
	if f, ok := m.Files[p]; ok {
		return p, f, true
	}
	idx := path.Join(p, "index.html")
	if f, ok := m.Files[idx]; ok {
		return idx, f, true
	}
	return "", AssetFile{}, false
}

// Digest returns a stable digest of the manifest's content, so two
// manifests with the same files compare equal.
func (m Manifest) Digest() string {
	keys := make([]string, 0, len(m.Files))
	for k := range m.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		f := m.Files[k]
		io.WriteString(h, k+"\x00"+f.Digest+"\x00"+f.ContentType+"\n")
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Equal reports whether m and o list the same files with the same content.
func (m Manifest) Equal(o Manifest) bool {
	if len(m.Files) != len(o.Files) {
		return false
	}
	for k, f := range m.Files {
		if o.Files[k] != f {
			return false
		}
	}
	return true
}

// ValidDigest reports whether d is "sha256:" followed by 64 lower-case hex
// digits; stores use it before turning a digest into a path or key.
func ValidDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ScanAssets walks dir and returns the manifest of its regular files,
// hashing each. Hidden files and directories (names starting with '.') are
// skipped; symbolic links are followed only when they stay inside dir.
func ScanAssets(dir string) (Manifest, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Manifest{}, Errorf(InvalidArgument, "assets: %v", err)
	}
	m := Manifest{Files: map[string]AssetFile{}}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			if real, err = ResolveInside(root, mustRel(root, p), "assets"); err != nil {
				return err
			}
			if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		digest, size, err := HashFile(real)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(mustRel(root, p))
		m.Files["/"+rel] = AssetFile{Digest: digest, Size: size, ContentType: ContentType(rel)}
		return nil
	})
	if err != nil {
		return Manifest{}, WithCode(InvalidArgument, err)
	}
	return m, nil
}

func mustRel(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return r
}

// HashFile returns the "sha256:<hex>" digest and size of a file.
func HashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".txt":         "text/plain; charset=utf-8",
	".xml":         "application/xml",
	".wasm":        "application/wasm",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".webmanifest": "application/manifest+json",
	".pdf":         "application/pdf",
}

// ContentType returns the content type for a file name by its extension,
// the same on every machine (the built-in table first, then the mime
// package, then application/octet-stream).
func ContentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// ValidateAssetPrefix checks a manifest prefix such as "hello/pr-42/3f2c1ab":
// one or more '/'-separated segments of letters, digits, '.', '_' and '-',
// none empty, none starting with '.' (so no ".." and no hidden files) and
// none ending in ".json" (which would collide with a manifest file), at most
// 512 characters, no leading '/'. Errors have code InvalidArgument. Asset stores call it first in every method
// taking a prefix.
func ValidateAssetPrefix(prefix string) error {
	if prefix == "" || len(prefix) > 512 {
		return Errorf(InvalidArgument, "asset prefix %q must be 1 to 512 characters", prefix)
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg[0] == '.' || strings.HasSuffix(seg, ".json") {
			return Errorf(InvalidArgument, "asset prefix %q: segments must be non-empty relative names such as hello/pr-42 (no leading '/', no '.' or '..', no .json suffix)", prefix)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return Errorf(InvalidArgument, "asset prefix %q: only letters, digits, '.', '_', '-' and '/' are allowed", prefix)
			}
		}
	}
	return nil
}

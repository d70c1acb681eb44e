package kobuild

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// hashVersion changes whenever the hash rule or the image kobuild makes
// changes, so that images built by an older kobuild are not reused.
const hashVersion = "kobuild-source-v1"

// goEnvVars are read with `go env` before hashing: the toolchain and the
// settings that change what `go build` produces, and where the module and
// workspace files are.
var goEnvVars = []string{"GOVERSION", "GOFLAGS", "GOEXPERIMENT", "GOAMD64", "GOARM", "GOARM64", "GO386", "GORISCV64", "GOPPC64", "GOMOD", "GOWORK"}

// localModule is a module whose source is a directory on this machine: the
// main module, a module replaced by a directory, or a workspace module.
type localModule struct {
	path string // module path
	dir  string // absolute directory
}

// hasher computes the source hash of a function; see Builder.Build for the
// rule. It finds module-local imports by parsing import clauses itself
// rather than running `go list -deps`: on the 2-core CI machine go list took
// 70 ms warm (190 ms cold) for a small net/http program, against about 1 ms
// for the parse, and the reuse path must stay well under 100 ms. The price
// is a superset (build constraints are ignored), which can only cause an
// unneeded rebuild, never a stale image.
type hasher struct {
	files   map[string]string // key -> absolute path
	modules []localModule     // longest path first
	seen    map[string]bool   // package directories walked
}

// sourceHash returns the hash (32 hex digits) of the function in srcDir,
// given `go env` output and the build settings in settings.
func sourceHash(srcDir string, env map[string]string, settings []string) (string, error) {
	gomod := env["GOMOD"]
	if gomod == "" || gomod == os.DevNull {
		return "", preview.Errorf(preview.FailedPrecondition, "%s is not inside a Go module (no go.mod found)", srcDir)
	}
	root := filepath.Dir(gomod)
	h := &hasher{files: map[string]string{}, seen: map[string]bool{}}
	mainPath, replaces, err := readModFile(gomod)
	if err != nil {
		return "", err
	}
	main := localModule{path: mainPath, dir: root}
	h.modules = append(h.modules, main)
	h.addFile(main, gomod)
	h.addFile(main, filepath.Join(root, "go.sum"))
	h.addFile(main, filepath.Join(root, "vendor", "modules.txt"))
	for _, r := range replaces {
		h.modules = append(h.modules, r)
		h.addFile(r, filepath.Join(r.dir, "go.mod"))
		h.addFile(r, filepath.Join(r.dir, "go.sum"))
	}
	if work := env["GOWORK"]; work != "" && work != "off" {
		wm := localModule{path: "go.work", dir: filepath.Dir(work)}
		h.addFile(wm, work)
		h.addFile(wm, work+".sum")
		uses, wreplaces, err := readWorkFile(work)
		if err != nil {
			return "", err
		}
		for _, dir := range uses {
			mp, _, err := readModFile(filepath.Join(dir, "go.mod"))
			if err != nil {
				return "", err
			}
			m := localModule{path: mp, dir: dir}
			h.modules = append(h.modules, m)
			h.addFile(m, filepath.Join(dir, "go.mod"))
		}
		h.modules = append(h.modules, wreplaces...)
	}
	sort.SliceStable(h.modules, func(i, j int) bool { return len(h.modules[i].path) > len(h.modules[j].path) })

	rel, err := filepath.Rel(root, srcDir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", preview.Errorf(preview.FailedPrecondition, "%s is outside its module %s", srcDir, root)
	}
	// Every file of the function directory, recursively.
	if err := h.addTree(main, srcDir); err != nil {
		return "", err
	}
	// Then the packages it imports from local modules, transitively.
	if err := h.walkPackage(main, srcDir, true); err != nil {
		return "", err
	}

	sum := sha256.New()
	fmt.Fprintf(sum, "%s\npackage %s\n", hashVersion, path.Join(mainPath, filepath.ToSlash(rel)))
	for _, s := range settings {
		fmt.Fprintf(sum, "setting %s\n", s)
	}
	for _, k := range goEnvVars {
		if k != "GOMOD" && k != "GOWORK" {
			fmt.Fprintf(sum, "env %s=%s\n", k, env[k])
		}
	}
	keys := make([]string, 0, len(h.files))
	for k := range h.files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, err := fileDigest(h.files[k])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(sum, "file %s %s\n", strconv.Quote(k), d)
	}
	return hex.EncodeToString(sum.Sum(nil))[:32], nil
}

// fileDigest hashes a file's content, or a symbolic link's target when it
// points to a directory or nowhere.
func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if t, lerr := os.Readlink(p); lerr == nil {
				return "link:" + t, nil
			}
		}
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		t, _ := os.Readlink(p)
		return "link:" + t, nil
	}
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(s.Sum(nil)), nil
}

// key names a file by its module path and the path inside the module, so
// that the hash does not depend on where the checkout lives.
func (h *hasher) addFile(m localModule, p string) {
	if fi, err := os.Lstat(p); err != nil || fi.IsDir() {
		return
	}
	rel, err := filepath.Rel(m.dir, p)
	if err != nil {
		rel = p
	}
	h.files[m.path+"//"+filepath.ToSlash(rel)] = p
}

// addTree adds every file under dir except version-control directories.
func (h *hasher) addTree(m localModule, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".hg", ".svn", ".jj":
				return fs.SkipDir
			}
			return nil
		}
		h.addFile(m, p)
		return nil
	})
}

// walkPackage adds a local package's files (the files of its directory
// except _test.go files, not of subdirectories, plus what its //go:embed
// patterns match) and walks
// the local packages it imports. Files that do not parse contribute their
// content but no imports; the build reports them.
func (h *hasher) walkPackage(m localModule, dir string, isMain bool) error {
	if h.seen[dir] {
		return nil
	}
	h.seen[dir] = true
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the build will say the package is missing
	} else if err != nil {
		return err
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "_test.go") {
			continue // not part of the binary (an embed pattern may still add it)
		}
		h.addFile(m, p)
		if !strings.HasSuffix(name, ".go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !isMain && bytes.Contains(src, []byte("//go:embed")) {
			if err := h.addEmbeds(m, dir, src); err != nil {
				return err
			}
		}
		f, err := parser.ParseFile(fset, p, src, parser.ImportsOnly)
		if err != nil || f == nil {
			continue
		}
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				continue
			}
			if lm, pdir, ok := h.resolve(ip); ok {
				if err := h.walkPackage(lm, pdir, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resolve maps an import path to a directory of a local module.
func (h *hasher) resolve(importPath string) (localModule, string, bool) {
	for _, m := range h.modules {
		if importPath == m.path {
			return m, m.dir, true
		}
		if rest, ok := strings.CutPrefix(importPath, m.path+"/"); ok {
			return m, filepath.Join(m.dir, filepath.FromSlash(rest)), true
		}
	}
	return localModule{}, "", false
}

// addEmbeds adds the files that the //go:embed lines in src may match. A
// pattern it cannot read makes it add the whole package tree instead.
func (h *hasher) addEmbeds(m localModule, dir string, src []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "//go:embed")
		if !ok {
			continue
		}
		pats, ok := embedPatterns(rest)
		if !ok {
			return h.addTree(m, dir)
		}
		for _, pat := range pats {
			pat = strings.TrimPrefix(pat, "all:")
			matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pat)))
			if err != nil {
				return h.addTree(m, dir)
			}
			for _, mt := range matches {
				if err := h.addTree(m, mt); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// embedPatterns splits the arguments of a //go:embed line: space-separated
// patterns, each possibly a Go string literal.
func embedPatterns(s string) ([]string, bool) {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		switch s[0] {
		case '"', '`':
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, false
			}
			lit := s[:end+2]
			v, err := strconv.Unquote(lit)
			if err != nil {
				return nil, false
			}
			out = append(out, v)
			s = strings.TrimSpace(s[len(lit):])
		default:
			i := strings.IndexAny(s, " \t")
			if i < 0 {
				i = len(s)
			}
			out = append(out, s[:i])
			s = strings.TrimSpace(s[i:])
		}
	}
	return out, true
}

// readModFile returns a go.mod's module path and its replacements by local
// directories.
func readModFile(p string) (string, []localModule, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", nil, preview.Errorf(preview.FailedPrecondition, "reading %s: %v", p, err)
	}
	var modPath string
	var reps []localModule
	forEachDirective(b, func(verb string, args []string) {
		switch verb {
		case "module":
			if len(args) > 0 {
				modPath = unquote(args[0])
			}
		case "replace":
			if r, ok := localReplace(filepath.Dir(p), args); ok {
				reps = append(reps, r)
			}
		}
	})
	if modPath == "" {
		return "", nil, preview.Errorf(preview.FailedPrecondition, "%s has no module line", p)
	}
	return modPath, reps, nil
}

// readWorkFile returns a go.work's use directories and local replacements.
func readWorkFile(p string) ([]string, []localModule, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, preview.Errorf(preview.FailedPrecondition, "reading %s: %v", p, err)
	}
	base := filepath.Dir(p)
	var uses []string
	var reps []localModule
	forEachDirective(b, func(verb string, args []string) {
		switch verb {
		case "use":
			if len(args) > 0 {
				d := filepath.FromSlash(unquote(args[0]))
				if !filepath.IsAbs(d) {
					d = filepath.Join(base, d)
				}
				uses = append(uses, d)
			}
		case "replace":
			if r, ok := localReplace(base, args); ok {
				reps = append(reps, r)
			}
		}
	})
	return uses, reps, nil
}

// localReplace reads "old [v] => new [v]" and returns the replacement when
// new is a directory.
func localReplace(base string, args []string) (localModule, bool) {
	i := 0
	for i < len(args) && args[i] != "=>" {
		i++
	}
	if i == 0 || i+1 >= len(args) {
		return localModule{}, false
	}
	target := unquote(args[i+1])
	if !(strings.HasPrefix(target, "./") || strings.HasPrefix(target, "../") || filepath.IsAbs(target) || target == "." || target == "..") {
		return localModule{}, false
	}
	d := filepath.FromSlash(target)
	if !filepath.IsAbs(d) {
		d = filepath.Join(base, d)
	}
	return localModule{path: unquote(args[0]), dir: d}, true
}

// forEachDirective calls fn for each directive of a go.mod or go.work file,
// expanding blocks ("replace ( ... )").
func forEachDirective(b []byte, fn func(verb string, args []string)) {
	block := ""
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if block != "" {
			if f[0] == ")" {
				block = ""
				continue
			}
			fn(block, f)
			continue
		}
		if len(f) == 2 && f[1] == "(" {
			block = f[0]
			continue
		}
		fn(f[0], f[1:])
	}
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

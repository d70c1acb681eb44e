package dockerbuild

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/glimpse-dev/glimpse/preview"
)

// hashVersion changes whenever the hash rule or the images dockerbuild
// makes change, so that images built by an older dockerbuild are not reused.
const hashVersion = "dockerbuild-source-v1"

// ignoreFile is the name of the file whose patterns exclude context files.
const ignoreFile = ".dockerignore"

// contextFile is one entry of a build context.
type contextFile struct {
	rel  string // slash-separated path inside the context
	abs  string
	mode fs.FileMode
	size int64
	link string // symbolic link target
}

// buildContext is the set of files sent to the engine: every file of the
// context directory that .dockerignore does not exclude, plus the
// Dockerfile and .dockerignore themselves (sent always, as the docker CLI
// does; the engine keeps them out of COPY when they are excluded).
type buildContext struct {
	dir               string
	files             []contextFile // in walk order: a directory before its contents
	dockerfileContent []byte
	args              map[string]string // the build arguments
}

// readContext walks dir. dockerfile is the Dockerfile's slash path inside
// the context.
func readContext(dir, dockerfile string) (*buildContext, error) {
	pm, err := ignoreMatcher(filepath.Join(dir, ignoreFile), dockerfile)
	if err != nil {
		return nil, err
	}
	always := map[string]bool{dockerfile: true, ignoreFile: true}
	bc := &buildContext{dir: dir}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		slash := filepath.ToSlash(rel)
		if !always[slash] && pm != nil {
			excluded, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return preview.Errorf(preview.InvalidArgument, "%s: %v", ignoreFile, err)
			}
			if excluded {
				if d.IsDir() && !mayReinclude(pm, rel) {
					return filepath.SkipDir
				}
				return nil
			}
		}
		f, ok, err := entry(p, slash, d)
		if err != nil || !ok {
			return err
		}
		bc.files = append(bc.files, f)
		return nil
	})
	if err != nil {
		var pe *preview.Error
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, preview.Errorf(preview.InvalidArgument, "reading build context %s: %v", dir, err)
	}
	return bc, nil
}

// ignoreMatcher reads the .dockerignore file at p and returns its
// patterns, with exceptions added so that the Dockerfile and .dockerignore
// are always sent, as the docker CLI sends them (the engine keeps them out
// of COPY when they are excluded). It returns nil when p is "", does not
// exist or has no patterns.
func ignoreMatcher(p, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	if p == "" {
		return nil, nil
	}
	var patterns []string
	if f, err := os.Open(p); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
	}
	if len(patterns) == 0 {
		return nil, nil
	}
	for _, keep := range []string{ignoreFile, dockerfile} {
		if m, _ := patternmatcher.Matches(keep, patterns); m {
			patterns = append(patterns, "!"+keep)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %v", p, err)
	}
	return pm, nil
}

// entry describes the file p, at slash path rel in the context; ok is
// false for sockets, pipes and devices, which are not part of a context.
func entry(p, rel string, d fs.DirEntry) (contextFile, bool, error) {
	fi, err := d.Info()
	if err != nil {
		return contextFile{}, false, err
	}
	f := contextFile{rel: rel, abs: p, mode: fi.Mode()}
	switch {
	case fi.Mode().IsRegular():
		f.size = fi.Size()
	case fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		if f.link, err = os.Readlink(p); err != nil {
			return contextFile{}, false, err
		}
	default:
		return contextFile{}, false, nil
	}
	return f, true, nil
}

// mayReinclude reports whether an exception pattern ("!dir/keep") could
// match something inside the excluded directory rel, in which case the
// walk must go on inside it. This is the docker CLI's rule: only an
// exception that starts with the directory's path reopens it.
func mayReinclude(pm *patternmatcher.PatternMatcher, rel string) bool {
	if !pm.Exclusions() {
		return false
	}
	dirSlash := rel + string(filepath.Separator)
	for _, pat := range pm.Patterns() {
		if !pat.Exclusion() {
			continue
		}
		if strings.HasPrefix(pat.String()+string(filepath.Separator), dirSlash) {
			return true
		}
	}
	return false
}

// abs returns the path of the regular file at slash path rel in the
// context, or "" when the context has none.
func (bc *buildContext) abs(rel string) string {
	for _, f := range bc.files {
		if f.rel == rel {
			if f.mode.IsRegular() {
				return f.abs
			}
			return ""
		}
	}
	return ""
}

// hash returns the source hash (32 hex digits): the hash version, the
// build settings, and for every context entry its path, type, permission
// bits and content digest (or link target). Modification times and owners
// are left out, so the hash depends only on what a build can see.
func (bc *buildContext) hash(settings []string) (string, error) {
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\n", hashVersion)
	for _, s := range settings {
		fmt.Fprintf(sum, "setting %s\n", strconv.Quote(s))
	}
	files := append([]contextFile(nil), bc.files...)
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	for _, f := range files {
		q := strconv.Quote(f.rel)
		perm := strconv.FormatUint(uint64(f.mode.Perm()|f.mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), 8)
		switch {
		case f.mode.IsDir():
			fmt.Fprintf(sum, "dir %s %s\n", q, perm)
		case f.mode&fs.ModeSymlink != 0:
			fmt.Fprintf(sum, "link %s %s\n", q, strconv.Quote(f.link))
		default:
			d, err := fileDigest(f.abs)
			if err != nil {
				return "", preview.Errorf(preview.InvalidArgument, "reading build context: %v", err)
			}
			fmt.Fprintf(sum, "file %s %s %s\n", q, perm, d)
		}
	}
	return hex.EncodeToString(sum.Sum(nil))[:32], nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(s.Sum(nil)), nil
}

// writeTar writes the context as the tar stream the engine reads: entries
// owned by root (as the docker CLI sends them), with their modes and
// modification times.
func (bc *buildContext) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 32<<10)
	for _, f := range bc.files {
		fi, err := os.Lstat(f.abs)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, f.link)
		if err != nil {
			return err
		}
		h.Name = f.rel
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := copyFile(tw, f.abs, h.Size, buf); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string, size int64, buf []byte) error {
	r, err := os.Open(p)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(r, size), buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed while it was sent to the engine", p)
	}
	return nil
}

// dockerfilePath cleans the Dockerfile option into a slash path inside the
// context, or an InvalidArgument error.
func dockerfilePath(p string) (string, error) {
	if p == "" {
		return "Dockerfile", nil
	}
	c := path.Clean(filepath.ToSlash(p))
	if path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", preview.Errorf(preview.InvalidArgument, "dockerfile %q must be a path inside the build context", p)
	}
	return c, nil
}

// oneLine folds text into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte(" ")))), " ")
}

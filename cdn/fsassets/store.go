package fsassets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// Options tune a Store. The zero value (or nil) gives the defaults.
type Options struct {
	// Logger receives warnings about unreadable manifests and failed
	// clean-ups; nil means slog.Default().
	Logger *slog.Logger
	// Uploads is how many missing blobs Publish writes at once; 0 means 4.
	Uploads int
}

// Store is a preview.AssetStore on a directory. It is safe for concurrent
// use by many goroutines and by many processes sharing the directory.
type Store struct {
	dir       string
	blobs     string
	manifests string
	tmp       string
	lockPath  string
	log       *slog.Logger
	uploads   int
}

var _ preview.AssetStore = (*Store)(nil)

// New returns a Store on dir, creating dir and its layout (blobs/,
// manifests/, tmp/) when missing. dir is made absolute. It is safe to call
// New for the same directory many times, in one process or several.
func New(dir string, opts *Options) (*Store, error) {
	if dir == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "fsassets: directory must not be empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "fsassets: %v", err)
	}
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{
		dir:       abs,
		blobs:     filepath.Join(abs, "blobs", "sha256"),
		manifests: filepath.Join(abs, "manifests"),
		tmp:       filepath.Join(abs, "tmp"),
		lockPath:  filepath.Join(abs, "lock"),
		log:       opts.Logger,
		uploads:   opts.Uploads,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.uploads <= 0 {
		s.uploads = 4
	}
	for _, d := range []string{s.blobs, s.manifests, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, preview.Errorf(preview.FailedPrecondition, "fsassets: %v", err)
		}
	}
	return s, nil
}

// Dir returns the store's absolute directory.
func (s *Store) Dir() string { return s.dir }

// manifestFile is the JSON stored at manifests/<prefix>.json.
type manifestFile struct {
	Manifest preview.Manifest `json:"manifest"`
	Labels   preview.Labels   `json:"labels,omitempty"`
}

// ValidatePrefix checks a manifest prefix such as "hello/pr-42/3f2c1ab":
// one or more '/'-separated segments of letters, digits, '.', '_' and '-',
// none empty, none starting with '.' (so no ".." and no hidden files) and
// none ending in ".json" (which would collide with a manifest file), at most
// 512 characters, no leading '/'. Errors have code InvalidArgument.
func ValidatePrefix(prefix string) error {
	if prefix == "" || len(prefix) > 512 {
		return preview.Errorf(preview.InvalidArgument, "fsassets: prefix %q must be 1 to 512 characters", prefix)
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg[0] == '.' || strings.HasSuffix(seg, ".json") {
			return preview.Errorf(preview.InvalidArgument, "fsassets: prefix %q: segments must be non-empty relative names such as hello/pr-42 (no leading '/', no '.' or '..', no .json suffix)", prefix)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return preview.Errorf(preview.InvalidArgument, "fsassets: prefix %q: only letters, digits, '.', '_', '-' and '/' are allowed", prefix)
			}
		}
	}
	return nil
}

func validateManifest(m preview.Manifest) error {
	for p, f := range m.Files {
		if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			return preview.Errorf(preview.InvalidArgument, "fsassets: manifest path %q must start with '/'", p)
		}
		if !preview.ValidDigest(f.Digest) {
			return preview.Errorf(preview.InvalidArgument, "fsassets: manifest path %q: digest %q is not sha256:<64 hex digits>", p, f.Digest)
		}
		if f.Size < 0 {
			return preview.Errorf(preview.InvalidArgument, "fsassets: manifest path %q: negative size", p)
		}
	}
	return nil
}

func (s *Store) manifestPath(prefix string) string {
	return filepath.Join(s.manifests, filepath.FromSlash(prefix)+".json")
}

func (s *Store) blobPath(digest string) string {
	h := digest[len("sha256:"):]
	return filepath.Join(s.blobs, h[:2], h)
}

// BlobPath returns the file that holds the blob with the given digest, for
// callers that serve it straight from disk (sendfile). The file is
// read-only by contract and may be removed by Delete or Collect once no
// manifest references it. Errors: InvalidArgument for a malformed digest,
// NotFound when the blob is not stored.
func (s *Store) BlobPath(digest string) (string, error) {
	if !preview.ValidDigest(digest) {
		return "", preview.Errorf(preview.InvalidArgument, "fsassets: digest %q is not sha256:<64 hex digits>", digest)
	}
	p := s.blobPath(digest)
	if _, err := os.Stat(p); err != nil {
		return "", classify(err, "blob "+digest)
	}
	return p, nil
}

// Open returns the blob with the given digest as an *os.File (so callers
// may Seek, Stat, or hand it to http.ServeContent for sendfile and Range
// requests). Errors: InvalidArgument for a malformed digest, NotFound when
// the blob is not stored.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !preview.ValidDigest(digest) {
		return nil, preview.Errorf(preview.InvalidArgument, "fsassets: digest %q is not sha256:<64 hex digits>", digest)
	}
	f, err := os.Open(s.blobPath(digest))
	if err != nil {
		return nil, classify(err, "blob "+digest)
	}
	return f, nil
}

// Manifest returns the manifest stored at prefix, or NotFound.
// InvalidArgument for a malformed prefix.
func (s *Store) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	if err := ctx.Err(); err != nil {
		return preview.Manifest{}, err
	}
	if err := ValidatePrefix(prefix); err != nil {
		return preview.Manifest{}, err
	}
	mf, err := s.readManifest(s.manifestPath(prefix))
	if err != nil {
		return preview.Manifest{}, classify(err, "manifest "+prefix)
	}
	return mf.Manifest, nil
}

func (s *Store) readManifest(p string) (manifestFile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return manifestFile{}, err
	}
	var mf manifestFile
	if err := json.Unmarshal(b, &mf); err != nil {
		return manifestFile{}, preview.Errorf(preview.Internal, "fsassets: corrupt manifest %s: %v", p, err)
	}
	if mf.Manifest.Files == nil {
		mf.Manifest.Files = map[string]preview.AssetFile{}
	}
	return mf, nil
}

// Publish stores the blobs of m that the directory lacks, reading each
// through open once (for the first path, in sorted order, that names it),
// and then replaces the manifest at prefix with m and labels by renaming a
// complete temporary file over it. A blob whose content does not match its
// digest or size is an InvalidArgument error and is not stored. When any
// blob fails, the manifest is not touched; blobs already written stay and
// are reused by the next attempt (Collect removes them if none comes).
// When the stored manifest and labels already equal m and labels, nothing
// is written and the stats say Unchanged. Stats: Files is len(m.Files),
// Uploaded and UploadedBytes count the distinct blobs written, and Reused is
// Files - Uploaded. Publishing to one prefix concurrently is safe; the last
// rename wins.
func (s *Store) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	var st preview.PublishStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := ValidatePrefix(prefix); err != nil {
		return st, err
	}
	if err := validateManifest(m); err != nil {
		return st, err
	}
	unlock, err := fileLock(ctx, s.lockPath, false)
	if err != nil {
		return st, s.lockErr(err)
	}
	defer unlock()

	mpath := s.manifestPath(prefix)
	unchanged := false
	if old, err := s.readManifest(mpath); err == nil {
		unchanged = old.Manifest.Equal(m) && maps.Equal(old.Labels, labels)
	}

	// The first path (sorted) of every distinct digest the store lacks.
	paths := make([]string, 0, len(m.Files))
	for p := range m.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type job struct {
		path string
		file preview.AssetFile
	}
	var missing []job
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		f := m.Files[p]
		if seen[f.Digest] {
			continue
		}
		seen[f.Digest] = true
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if _, err := os.Stat(s.blobPath(f.Digest)); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return st, classify(err, "blob "+f.Digest)
		}
		missing = append(missing, job{p, f})
	}
	if len(missing) > 0 && open == nil {
		return st, preview.Errorf(preview.InvalidArgument, "fsassets: publish %s: %d blobs missing and no open function given", prefix, len(missing))
	}

	// Write the missing blobs, a few at a time; stop at the first error.
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan job)
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := min(s.uploads, len(missing))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				n, err := s.putBlob(wctx, j.path, j.file, open)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					st.Uploaded++
					st.UploadedBytes += n
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range missing {
		select {
		case next <- j:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	st.Files = len(m.Files)
	st.Reused = st.Files - st.Uploaded
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return st, fmt.Errorf("fsassets: publish %s: %w", prefix, firstErr)
	}
	if unchanged {
		st.Unchanged = true
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	files := m.Files
	if files == nil {
		files = map[string]preview.AssetFile{}
	}
	b, err := json.Marshal(manifestFile{Manifest: preview.Manifest{Files: files}, Labels: labels})
	if err != nil {
		return st, preview.Errorf(preview.Internal, "fsassets: %v", err)
	}
	if err := s.writeFileAtomic(mpath, b); err != nil {
		return st, fmt.Errorf("fsassets: publish %s: %w", prefix, err)
	}
	return st, nil
}

// putBlob writes one blob through a temporary file, verifying its digest
// and size, and renames it into place. It returns the bytes written.
func (s *Store) putBlob(ctx context.Context, path string, f preview.AssetFile, open func(string) (io.ReadCloser, error)) (int64, error) {
	rc, err := open(path)
	if err != nil {
		if preview.CodeOf(err) == preview.Unknown {
			err = preview.WithCode(preview.InvalidArgument, err)
		}
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(s.tmp, "blob-*")
	if err != nil {
		return 0, classify(err, "temporary file")
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	// Read at most one byte more than the declared size: enough to tell
	// that the content is too long without reading a runaway source.
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(rc, f.Size+1)})
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, preview.WithCode(codeOr(err, preview.Internal), fmt.Errorf("write %s: %w", path, err))
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if n != f.Size || got != f.Digest {
		return 0, preview.Errorf(preview.InvalidArgument, "content of %s does not match the manifest (%d bytes, %s; manifest says %d bytes, %s)", path, n, got, f.Size, f.Digest)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, classify(err, "blob")
	}
	if err := tmp.Close(); err != nil {
		return 0, classify(err, "blob")
	}
	dst := s.blobPath(f.Digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, classify(err, "blob directory")
	}
	if err := os.Rename(tmpName, dst); err != nil {
		return 0, classify(err, "blob")
	}
	done = true
	return n, nil
}

// writeFileAtomic writes b to a temporary file and renames it to dst.
func (s *Store) writeFileAtomic(dst string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return classify(err, "manifest directory")
	}
	tmp, err := os.CreateTemp(s.tmp, "manifest-*")
	if err != nil {
		return classify(err, "temporary file")
	}
	name := tmp.Name()
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, dst)
	}
	if err != nil {
		os.Remove(name)
		return classify(err, "manifest")
	}
	return nil
}

// List returns the prefixes whose manifest labels match selector, sorted by
// prefix. Manifest files that cannot be parsed are skipped with a warning.
func (s *Store) List(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	out := []preview.ManifestInfo{}
	err := s.walkManifests(ctx, func(prefix string, mf manifestFile) {
		if mf.Labels.Matches(selector) {
			out = append(out, preview.ManifestInfo{Prefix: prefix, Labels: mf.Labels})
		}
	}, false)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out, nil
}

// walkManifests calls fn for every stored manifest. With strict, an
// unreadable manifest is an error (collection must not remove blobs it
// might reference); otherwise it is logged and skipped.
func (s *Store) walkManifests(ctx context.Context, fn func(prefix string, mf manifestFile), strict bool) error {
	err := filepath.WalkDir(s.manifests, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != s.manifests {
				return nil // removed while walking
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		rel, err := filepath.Rel(s.manifests, p)
		if err != nil {
			return err
		}
		prefix := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		mf, err := s.readManifest(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if strict {
				return err
			}
			s.log.Warn("fsassets: skipping unreadable manifest", "path", p, "err", err)
			return nil
		}
		fn(prefix, mf)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return classify(err, "manifests")
	}
	return nil
}

// Delete removes the manifest at prefix and then the blobs it referenced
// that no other manifest references. A missing prefix is success. Removing
// blobs is best effort: when it fails (an unreadable manifest, say) the
// manifest is still gone, Delete returns nil, logs a warning, and a later
// Collect removes the leftovers. Delete waits for Publish calls in progress
// (in any process) so that it never removes a blob a new manifest is about
// to reference.
func (s *Store) Delete(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	unlock, err := fileLock(ctx, s.lockPath, true)
	if err != nil {
		return s.lockErr(err)
	}
	defer unlock()
	mpath := s.manifestPath(prefix)
	mf, err := s.readManifest(mpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Remove(mpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify(err, "manifest "+prefix)
	}
	s.removeEmptyParents(filepath.Dir(mpath), s.manifests)
	if err != nil {
		// The manifest was unreadable: its blobs are unknown; Collect
		// finds them.
		return nil
	}
	candidates := map[string]bool{}
	for _, f := range mf.Manifest.Files {
		candidates[f.Digest] = true
	}
	if err := s.walkManifests(ctx, func(_ string, other manifestFile) {
		for _, f := range other.Manifest.Files {
			delete(candidates, f.Digest)
		}
	}, true); err != nil {
		s.log.Warn("fsassets: manifest deleted, blobs left for Collect", "prefix", prefix, "err", err)
		return nil
	}
	for d := range candidates {
		p := s.blobPath(d)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("fsassets: removing blob", "path", p, "err", err)
			continue
		}
		s.removeEmptyParents(filepath.Dir(p), s.blobs)
	}
	return nil
}

// CollectStats says what Collect removed.
type CollectStats struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	Temp  int   `json:"temp"`
}

// Collect removes every blob that no manifest references (left by a failed
// or interrupted Publish, or by a Delete whose clean-up failed) and every
// temporary file. It waits for Publish and Delete calls in progress in any
// process and blocks new ones while it runs. When a manifest cannot be
// read, Collect removes nothing and returns the error. Repeating it is
// harmless.
func (s *Store) Collect(ctx context.Context) (CollectStats, error) {
	var st CollectStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	unlock, err := fileLock(ctx, s.lockPath, true)
	if err != nil {
		return st, s.lockErr(err)
	}
	defer unlock()
	// Every writer holds the shared lock while its temporary files exist,
	// so under the exclusive lock all of them are leftovers.
	if ents, err := os.ReadDir(s.tmp); err == nil {
		for _, e := range ents {
			if os.RemoveAll(filepath.Join(s.tmp, e.Name())) == nil {
				st.Temp++
			}
		}
	}
	referenced := map[string]bool{}
	if err := s.walkManifests(ctx, func(_ string, mf manifestFile) {
		for _, f := range mf.Manifest.Files {
			referenced[f.Digest[len("sha256:"):]] = true
		}
	}, true); err != nil {
		return st, err
	}
	err = filepath.WalkDir(s.blobs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() || referenced[d.Name()] {
			return nil
		}
		info, ierr := d.Info()
		if err := os.Remove(p); err == nil {
			st.Blobs++
			if ierr == nil {
				st.Bytes += info.Size()
			}
			s.removeEmptyParents(filepath.Dir(p), s.blobs)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, classify(err, "blobs")
	}
	return st, nil
}

// removeEmptyParents removes dir and its parents up to (not including) root
// while they are empty.
func (s *Store) removeEmptyParents(dir, root string) {
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (s *Store) lockErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return classify(err, "lock "+s.lockPath)
}

// classify gives a file system error its preview code.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return preview.Errorf(preview.NotFound, "fsassets: %s not found", what)
	case errors.Is(err, fs.ErrPermission):
		return preview.WithCode(preview.PermissionDenied, fmt.Errorf("fsassets: %s: %w", what, err))
	case preview.CodeOf(err) != preview.Unknown:
		return err
	}
	return preview.WithCode(preview.Internal, fmt.Errorf("fsassets: %s: %w", what, err))
}

func codeOr(err error, c preview.Code) preview.Code {
	if got := preview.CodeOf(err); got != preview.Unknown {
		return got
	}
	return c
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

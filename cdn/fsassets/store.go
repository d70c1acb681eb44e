package fsassets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
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

// Store is a preview.AssetStore on a directory: the portable
// preview.AssetBucket over this package's directory driver. It is safe for
// concurrent use by many goroutines and by many processes sharing the
// directory.
type Store struct {
	b *preview.AssetBucket
	d *driver
}

var (
	_ preview.AssetStore         = (*Store)(nil)
	_ preview.AssetBasePublisher = (*Store)(nil)
)

// driver is the preview.AssetDriver on a directory.
type driver struct {
	dir       string
	blobs     string
	manifests string
	tmp       string
	lockPath  string
	log       *slog.Logger
}

var (
	_ preview.AssetDriver        = (*driver)(nil)
	_ preview.AssetPublishLocker = (*driver)(nil)
)

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
	d := &driver{
		dir:       abs,
		blobs:     filepath.Join(abs, "blobs", "sha256"),
		manifests: filepath.Join(abs, "manifests"),
		tmp:       filepath.Join(abs, "tmp"),
		lockPath:  filepath.Join(abs, "lock"),
		log:       opts.Logger,
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	for _, sub := range []string{d.blobs, d.manifests, d.tmp} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, preview.Errorf(preview.FailedPrecondition, "fsassets: %v", err)
		}
	}
	return &Store{
		b: preview.NewAssetBucket(d, &preview.AssetBucketOptions{Name: "fsassets", Uploads: opts.Uploads}),
		d: d,
	}, nil
}

// Dir returns the store's absolute directory.
func (s *Store) Dir() string { return s.d.dir }

// manifestFile is the JSON stored at manifests/<prefix>.json: the
// manifest and its labels.
type manifestFile = preview.StoredManifest

func (d *driver) manifestPath(prefix string) string {
	return filepath.Join(d.manifests, filepath.FromSlash(prefix)+".json")
}

// rel returns p relative to the store's directory, for messages.
func (d *driver) rel(p string) string {
	if r, err := filepath.Rel(d.dir, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

func (d *driver) blobPath(digest string) string {
	h := digest[len("sha256:"):]
	return filepath.Join(d.blobs, h[:2], h)
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
	p := s.d.blobPath(digest)
	if _, err := os.Stat(p); err != nil {
		return "", prefixed(classify(err, "blob "+digest))
	}
	return p, nil
}

// Open returns the blob with the given digest as an *os.File (so callers
// may Seek, Stat, or hand it to http.ServeContent for sendfile and Range
// requests). Errors: InvalidArgument for a malformed digest, NotFound when
// the blob is not stored.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	return s.b.Open(ctx, digest)
}

// Manifest returns the manifest stored at prefix, or NotFound.
// InvalidArgument for a malformed prefix.
func (s *Store) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	return s.b.Manifest(ctx, prefix)
}

// Publish stores the blobs of m that the directory lacks and then replaces
// the manifest at prefix with m and labels (preview.AssetBucket.Publish
// says how: each missing blob read once, verified, at most Options.Uploads
// at a time, the manifest last). Each blob is written to a temporary file
// under tmp/ and renamed into place once its content matched its digest,
// so a blob file is absent or complete and correct; the manifest is
// replaced by renaming a complete temporary file over it, so readers see
// the old or the new one. A blob whose content does not match its digest
// or size is an InvalidArgument error and is not stored. When any blob
// fails, the manifest is not touched; blobs already written stay and are
// reused by the next attempt (Collect removes them if none comes). When
// the stored manifest and labels already equal m and labels, nothing is
// written and the stats say Unchanged. Publishing to one prefix
// concurrently is safe; the last rename wins. Publish holds the shared
// lock of the directory throughout, so Delete and Collect (in any process)
// wait for it.
func (s *Store) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	return s.b.Publish(ctx, prefix, m, labels, open)
}

// PublishOnto is Publish that takes the blobs of the manifest at base as
// stored (preview.AssetBasePublisher).
func (s *Store) PublishOnto(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error), base string) (preview.PublishStats, error) {
	return s.b.PublishOnto(ctx, prefix, m, labels, open, base)
}

// List returns the prefixes whose manifest labels match selector, sorted by
// prefix. Manifest files that cannot be parsed are skipped with a warning.
func (s *Store) List(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	return s.b.List(ctx, selector)
}

// Delete removes the manifest at prefix and then the blobs it referenced
// that no other manifest references. A missing prefix is success. Removing
// blobs is best effort: when it fails (an unreadable manifest, say) the
// manifest is still gone, Delete returns nil, logs a warning, and a later
// Collect removes the leftovers. Delete waits for Publish calls in progress
// (in any process) so that it never removes a blob a new manifest is about
// to reference.
func (s *Store) Delete(ctx context.Context, prefix string) error {
	return s.b.Delete(ctx, prefix)
}

// LockPublish takes the directory's lock shared (preview.AssetPublishLocker).
func (d *driver) LockPublish(ctx context.Context) (func(), error) {
	unlock, err := fileLock(ctx, d.lockPath, false)
	if err != nil {
		return nil, d.lockErr(err)
	}
	return unlock, nil
}

// HasBlobs stats each blob file.
func (d *driver) HasBlobs(ctx context.Context, digests []string) (map[string]bool, error) {
	have := make(map[string]bool, len(digests))
	for _, dg := range digests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := os.Stat(d.blobPath(dg)); err == nil {
			have[dg] = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, classify(err, d.rel(d.blobPath(dg)))
		}
	}
	return have, nil
}

// PutBlob copies r to a temporary file and renames it into place once r
// reached io.EOF (the bucket's reader has verified the content by then).
func (d *driver) PutBlob(ctx context.Context, info preview.BlobInfo, r io.Reader) error {
	tmp, err := os.CreateTemp(d.tmp, "blob-*")
	if err != nil {
		return classify(err, "temporary file")
	}
	tmpName := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return preview.WithCode(codeOr(err, preview.Internal), fmt.Errorf("write: %w", err))
	}
	if err := tmp.Chmod(0o644); err != nil {
		return classify(err, "blob")
	}
	if err := tmp.Close(); err != nil {
		return classify(err, "blob")
	}
	dst := d.blobPath(info.Digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return classify(err, "blob directory")
	}
	if err := os.Rename(tmpName, dst); err != nil {
		return classify(err, "blob")
	}
	done = true
	return nil
}

// OpenBlob opens the blob file.
func (d *driver) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error) {
	f, err := os.Open(d.blobPath(digest))
	if err != nil {
		return nil, classify(err, "blob file")
	}
	return f, nil
}

// GetManifest reads manifests/<prefix>.json.
func (d *driver) GetManifest(ctx context.Context, prefix string) (preview.StoredManifest, error) {
	mf, err := d.readManifest(d.manifestPath(prefix))
	if err != nil {
		return preview.StoredManifest{}, classify(err, d.rel(d.manifestPath(prefix)))
	}
	return mf, nil
}

func (d *driver) readManifest(p string) (manifestFile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return manifestFile{}, err
	}
	var mf manifestFile
	if err := json.Unmarshal(b, &mf); err != nil {
		return manifestFile{}, preview.Errorf(preview.Internal, "corrupt manifest %s: %v", p, err)
	}
	if mf.Manifest.Files == nil {
		mf.Manifest.Files = map[string]preview.AssetFile{}
	}
	return mf, nil
}

// PutManifest renames a complete temporary file over the manifest file.
func (d *driver) PutManifest(ctx context.Context, prefix string, m preview.StoredManifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return preview.Errorf(preview.Internal, "%v", err)
	}
	return d.writeFileAtomic(d.manifestPath(prefix), b)
}

// writeFileAtomic replaces dst with b (see package atomicfile), creating
// its directory; the temporary file lives in the store's tmp directory.
func (d *driver) writeFileAtomic(dst string, b []byte) error {
	if err := atomicfile.Write(dst, b, &atomicfile.Options{TempDir: d.tmp, Perm: 0o644, MkdirAll: true, NoSync: true}); err != nil {
		return classify(err, "manifest")
	}
	return nil
}

// ListManifests walks manifests/, skipping unreadable files with a
// warning.
func (d *driver) ListManifests(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	out := []preview.ManifestInfo{}
	err := d.walkManifests(ctx, func(prefix string, mf manifestFile) {
		if mf.Labels.Matches(selector) {
			out = append(out, preview.ManifestInfo{Prefix: prefix, Labels: mf.Labels})
		}
	}, false)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkManifests calls fn for every stored manifest. With strict, an
// unreadable manifest is an error (collection must not remove blobs it
// might reference); otherwise it is logged and skipped.
func (d *driver) walkManifests(ctx context.Context, fn func(prefix string, mf manifestFile), strict bool) error {
	err := filepath.WalkDir(d.manifests, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != d.manifests {
				return nil // removed while walking
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if de.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		rel, err := filepath.Rel(d.manifests, p)
		if err != nil {
			return err
		}
		prefix := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		mf, err := d.readManifest(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if strict {
				return err
			}
			d.log.Warn("fsassets: skipping unreadable manifest", "path", p, "err", err)
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

// DeleteManifest removes the manifest file under the exclusive lock, and
// then the blobs only it referenced (see Store.Delete).
func (d *driver) DeleteManifest(ctx context.Context, prefix string) error {
	unlock, err := fileLock(ctx, d.lockPath, true)
	if err != nil {
		return d.lockErr(err)
	}
	defer unlock()
	mpath := d.manifestPath(prefix)
	mf, err := d.readManifest(mpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Remove(mpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify(err, d.rel(mpath))
	}
	d.removeEmptyParents(filepath.Dir(mpath), d.manifests)
	if err != nil {
		// The manifest was unreadable: its blobs are unknown; Collect
		// finds them.
		return nil
	}
	candidates := map[string]bool{}
	for _, f := range mf.Manifest.Files {
		candidates[f.Digest] = true
	}
	if err := d.walkManifests(ctx, func(_ string, other manifestFile) {
		for _, f := range other.Manifest.Files {
			delete(candidates, f.Digest)
		}
	}, true); err != nil {
		d.log.Warn("fsassets: manifest deleted, blobs left for Collect", "prefix", prefix, "err", err)
		return nil
	}
	for dg := range candidates {
		p := d.blobPath(dg)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("fsassets: removing blob", "path", p, "err", err)
			continue
		}
		d.removeEmptyParents(filepath.Dir(p), d.blobs)
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
	st, err := s.d.collect(ctx, 0, false)
	if err != nil && ctx.Err() == nil {
		err = prefixed(err)
	}
	return st, err
}

// CollectBlobs is Collect with a grace period and a dry run
// (preview.BlobCollector): under the directory's exclusive lock, which
// waits for every Publish in progress and blocks new ones, it removes the
// blobs no manifest references whose file is at least opts.OlderThan old
// (0 means preview.DefaultBlobGrace), and the leftover temporary files.
// With opts.DryRun it only counts them.
func (s *Store) CollectBlobs(ctx context.Context, opts preview.BlobCollectOptions) (preview.BlobCollectStats, error) {
	return s.b.CollectBlobs(ctx, opts)
}

var _ preview.AssetBlobCollector = (*driver)(nil)

// CollectBlobs implements preview.AssetBlobCollector with collect.
func (d *driver) CollectBlobs(ctx context.Context, opts preview.BlobCollectOptions) (preview.BlobCollectStats, error) {
	var st preview.BlobCollectStats
	cs, err := d.collectStats(ctx, opts.OlderThan, opts.DryRun, &st)
	st.Deleted, st.DeletedBytes, st.Temp = cs.Blobs, cs.Bytes, cs.Temp
	return st, err
}

func (d *driver) collect(ctx context.Context, grace time.Duration, dryRun bool) (CollectStats, error) {
	return d.collectStats(ctx, grace, dryRun, &preview.BlobCollectStats{})
}

// collectStats removes (with dryRun, counts) the unreferenced blobs at
// least grace old and the temporary files, filling the counts of all
// blobs, referenced ones and young ones into bs.
func (d *driver) collectStats(ctx context.Context, grace time.Duration, dryRun bool, bs *preview.BlobCollectStats) (CollectStats, error) {
	var st CollectStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	unlock, err := fileLock(ctx, d.lockPath, true)
	if err != nil {
		return st, d.lockErr(err)
	}
	defer unlock()
	// Every writer holds the shared lock while its temporary files exist,
	// so under the exclusive lock all of them are leftovers.
	if ents, err := os.ReadDir(d.tmp); err == nil {
		for _, e := range ents {
			if dryRun {
				st.Temp++
				continue
			}
			if os.RemoveAll(filepath.Join(d.tmp, e.Name())) == nil {
				st.Temp++
			}
		}
	}
	referenced := map[string]bool{}
	if err := d.walkManifests(ctx, func(_ string, mf manifestFile) {
		for _, f := range mf.Manifest.Files {
			referenced[f.Digest[len("sha256:"):]] = true
		}
	}, true); err != nil {
		return st, err
	}
	now := time.Now()
	err = filepath.WalkDir(d.blobs, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if de.IsDir() {
			return nil
		}
		bs.Blobs++
		if referenced[de.Name()] {
			bs.Referenced++
			return nil
		}
		info, ierr := de.Info()
		if grace > 0 && (ierr != nil || now.Sub(info.ModTime()) < grace) {
			bs.Young++
			return nil
		}
		if dryRun {
			st.Blobs++
			if ierr == nil {
				st.Bytes += info.Size()
			}
			return nil
		}
		if err := os.Remove(p); err == nil {
			st.Blobs++
			if ierr == nil {
				st.Bytes += info.Size()
			}
			d.removeEmptyParents(filepath.Dir(p), d.blobs)
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
func (d *driver) removeEmptyParents(dir, root string) {
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (d *driver) lockErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return classify(err, "lock "+d.lockPath)
}

// classify gives a file system error its preview code. Its messages do
// not name the package: the bucket (or prefixed, for the Store's own
// methods) does.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return preview.Errorf(preview.NotFound, "%s not found", what)
	case errors.Is(err, fs.ErrPermission):
		return preview.WithCode(preview.PermissionDenied, fmt.Errorf("%s: %w", what, err))
	case preview.CodeOf(err) != preview.Unknown:
		return err
	}
	return preview.WithCode(preview.Internal, fmt.Errorf("%s: %w", what, err))
}

// prefixed names the package in an error of the Store's own methods,
// keeping its code.
func prefixed(err error) error {
	if err == nil {
		return nil
	}
	return preview.WithCode(codeOr(err, preview.Internal), fmt.Errorf("fsassets: %w", err))
}

func codeOr(err error, c preview.Code) preview.Code {
	if got := preview.CodeOf(err); got != preview.Unknown {
		return got
	}
	return c
}

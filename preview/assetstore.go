package preview

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"path"
	"sort"
	"strings"
	"sync"
)

// AssetDriver is the small interface an asset backend implements; an
// AssetBucket turns it into a full AssetStore. The bucket owns everything
// every backend would otherwise repeat: prefix and manifest validation,
// dedupe by digest, deciding which blobs to send, bounded parallel upload,
// digest verification, statistics, "manifest last", and wrapping errors
// once with the driver's name. A driver only stores and fetches.
//
// The bucket guarantees a driver clean input: prefixes passed
// ValidateAssetPrefix, digests passed ValidDigest, manifests passed
// ValidateManifest and have a non-nil Files map, ctx is never nil.
//
// The driver's side of the contract:
//   - Every method honours ctx and is safe for concurrent use, by several
//     goroutines and by several processes sharing the backend.
//   - Errors carry a Code (Errorf, WithCode): NotFound for a missing blob
//     or manifest, Unavailable when the backend could not be reached,
//     PermissionDenied for refused credentials. Messages need not name the
//     driver; the bucket adds its name, the operation and the prefix.
//   - Blobs are immutable: a blob, once visible under its digest, holds
//     exactly the content with that digest, forever. PutBlob must never
//     make a partial or unverified blob visible.
//   - PutManifest replaces the manifest at a prefix atomically: a reader
//     sees the old or the new manifest, never a mix, never a torn file.
//   - Mutations are idempotent; deleting what is gone succeeds.
type AssetDriver interface {
	// HasBlobs reports which of digests (distinct, sorted) are stored:
	// the result holds true for each present digest. A driver should
	// answer with as few round trips as its backend allows (one listing,
	// batched lookups); a digest it cannot decide about is an error, never
	// "absent" (which would only cost an upload) or "present" (which would
	// publish a manifest naming a missing blob).
	HasBlobs(ctx context.Context, digests []string) (map[string]bool, error)
	// PutBlob stores the blob info.Digest with the content read from r.
	// r yields the content, at most info.Size bytes, and verifies it: the
	// Read that reaches info.Size fails when the digest does not match
	// (without handing out its bytes), a Read at io.EOF fails when the
	// content is short, and one more Read after the last byte fails when
	// the source is longer than info.Size. The driver must read all
	// info.Size bytes before making the blob visible and must leave
	// nothing visible when r returns an error; reading on to io.EOF is
	// how a driver that stores whatever it reads refuses a long source.
	// Drivers whose commit may happen before the last Read returns (an
	// HTTP upload with a Content-Length, whose transport may even read
	// after the round trip) must have the backend verify the digest as
	// well (S3's x-amz-checksum-sha256). When the blob is already stored
	// (a conditional write lost a race), PutBlob may stop early and return
	// an error with code AlreadyExists, which the bucket counts as
	// success. r also implements io.Seeker when the caller's source does;
	// a rewind to the start restarts verification, so a driver may retry.
	// r fails every Read once PutBlob has returned. On any other error the
	// blob is absent or complete; the bucket retries nothing.
	PutBlob(ctx context.Context, info BlobInfo, r io.Reader) error
	// OpenBlob returns the blob's content, or NotFound. The bucket returns
	// the reader unchanged, so a driver may hand out an *os.File (for
	// sendfile and Range requests).
	OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error)
	// GetManifest returns the manifest stored at prefix with its labels,
	// or NotFound. A manifest that exists but cannot be parsed is an
	// Internal error.
	GetManifest(ctx context.Context, prefix string) (StoredManifest, error)
	// PutManifest stores m and labels at prefix, replacing any manifest
	// there atomically (see the type's doc). The bucket calls it only
	// after every blob m names is stored.
	PutManifest(ctx context.Context, prefix string, m StoredManifest) error
	// ListManifests returns the stored manifests whose labels match
	// selector, in any order; drivers may return more (the bucket filters
	// again). A manifest that cannot be read is skipped, not an error.
	ListManifests(ctx context.Context, selector Labels) ([]ManifestInfo, error)
	// DeleteManifest removes the manifest at prefix; a missing one is
	// success. It may remove blobs that no other manifest references, but
	// only when it can exclude a concurrent Publish that is about to
	// reference them (see AssetPublishLocker); otherwise blobs stay for a
	// later collection.
	DeleteManifest(ctx context.Context, prefix string) error
}

// AssetPublishLocker is an optional interface of an AssetDriver whose
// deletes or collections remove blobs. The bucket calls LockPublish before
// it checks which blobs are present and releases the lock after the
// manifest is written, so a collection holding the matching exclusive lock
// never removes a blob that a Publish found present and is about to
// reference. Publishes may hold the lock together.
type AssetPublishLocker interface {
	LockPublish(ctx context.Context) (unlock func(), err error)
}

// AssetPathWriter is an optional interface of an AssetDriver that also
// makes each file of a manifest readable under its own path (an object
// <prefix>/<path> that a CDN or a static website can serve without
// Glimpse). The bucket calls WritePaths after every blob of m is stored
// and before PutManifest, and not at all when the publish is Unchanged;
// previous is the manifest stored at prefix before, nil when there was
// none (or it was unreadable), so the driver can skip paths whose blob did
// not change and remove paths m no longer has. WritePaths must be
// idempotent: a failed publish is repeated whole. The path objects of one
// prefix change one by one, not atomically; readers that need atomicity
// read the manifest, or use a new prefix per version (as the Pipeline
// does). A driver with path objects removes them in DeleteManifest, before
// the manifest itself, so that a failed delete can be repeated.
type AssetPathWriter interface {
	WritePaths(ctx context.Context, prefix string, m Manifest, previous *Manifest) error
}

// BlobInfo describes a blob for AssetDriver.PutBlob.
type BlobInfo struct {
	Digest string // "sha256:<hex>"
	Size   int64
	// ContentType is the content type of the first path (sorted) that
	// names the blob; drivers of stores that serve blobs over HTTP store
	// it with the blob.
	ContentType string
}

// StoredManifest is a manifest together with the labels stored with it.
type StoredManifest struct {
	Manifest Manifest `json:"manifest"`
	Labels   Labels   `json:"labels,omitempty"`
}

// AssetBucketOptions tune an AssetBucket. nil gives the defaults.
type AssetBucketOptions struct {
	// Name prefixes every error message ("fsassets"); empty means
	// "assets".
	Name string
	// Uploads is how many missing blobs Publish sends at once; 0 means 4.
	Uploads int
}

// AssetBucket is the portable AssetStore over an AssetDriver. It is safe
// for concurrent use when its driver is.
type AssetBucket struct {
	d       AssetDriver
	name    string
	uploads int
}

var _ AssetStore = (*AssetBucket)(nil)

// NewAssetBucket returns the AssetStore over d.
func NewAssetBucket(d AssetDriver, opts *AssetBucketOptions) *AssetBucket {
	if opts == nil {
		opts = &AssetBucketOptions{}
	}
	b := &AssetBucket{d: d, name: opts.Name, uploads: opts.Uploads}
	if b.name == "" {
		b.name = "assets"
	}
	if b.uploads <= 0 {
		b.uploads = 4
	}
	return b
}

// Driver returns the bucket's driver, for callers that need a backend's
// own methods.
func (b *AssetBucket) Driver() AssetDriver { return b.d }

// ValidateManifest checks what an asset store must be able to rely on:
// every path is a clean absolute URL path ("/a/b.js": starts with '/', no
// "." or ".." segments, no empty segments, no trailing '/', no NUL or
// backslash), every digest is valid (ValidDigest) and no size is negative.
// Errors have code InvalidArgument.
func ValidateManifest(m Manifest) error {
	for p, f := range m.Files {
		if len(p) < 2 || p[0] != '/' || path.Clean(p) != p || strings.ContainsAny(p, "\x00\\") {
			return Errorf(InvalidArgument, "manifest path %q must be a clean absolute path such as /index.html (no '.', '..', '//', trailing '/', NUL or '\\')", p)
		}
		if !ValidDigest(f.Digest) {
			return Errorf(InvalidArgument, "manifest path %q: digest %q is not sha256:<64 hex digits>", p, f.Digest)
		}
		if f.Size < 0 {
			return Errorf(InvalidArgument, "manifest path %q: negative size", p)
		}
	}
	return nil
}

// wrap adds the bucket's name, the operation and its subject to a driver
// error, once, keeping its code (Internal when the driver gave none and
// the error is not a context error).
func (b *AssetBucket) wrap(op, subject string, err error) error {
	if err == nil {
		return nil
	}
	msg := b.name + ": " + op
	if subject != "" {
		msg += " " + subject
	}
	code := CodeOf(err)
	if code == Unknown {
		code = Internal
	}
	return WithCode(code, fmt.Errorf("%s: %w", msg, err))
}

// Publish stores the blobs of m that the driver lacks and then the
// manifest (see AssetStore.Publish). In order:
//
//  1. prefix and m are validated (InvalidArgument);
//  2. the publish lock is taken when the driver has one
//     (AssetPublishLocker) and held to the end;
//  3. the stored manifest is read: when it and its labels equal m and
//     labels, the manifest is not rewritten and the stats say Unchanged;
//  4. one HasBlobs call for the distinct digests of m (with PublishOnto,
//     only for those the base manifest does not name), also when m is
//     unchanged, so a republish re-sends a blob removed behind the store's
//     back;
//  5. each missing blob is read through open once, for the first path (in
//     sorted order) that names it, and sent with PutBlob, at most Uploads
//     at a time, verified against its digest and size while it is read (a
//     mismatch is InvalidArgument and the blob is not stored); the first
//     failure cancels the other uploads;
//  6. only when every blob is stored: WritePaths when the driver has path
//     objects (AssetPathWriter), then PutManifest.
//
// On failure the old manifest stays; blobs already sent stay and are
// reused by the next attempt (a collection removes them if none comes), so
// repeating a failed Publish is safe and sends only what is still missing.
// Stats: Files is len(m.Files), Uploaded and UploadedBytes count the
// distinct blobs this call stored, Reused is Files - Uploaded. Publishes
// to one prefix may run concurrently; the last PutManifest wins.
func (b *AssetBucket) Publish(ctx context.Context, prefix string, m Manifest, labels Labels, open func(path string) (io.ReadCloser, error)) (PublishStats, error) {
	return b.PublishOnto(ctx, prefix, m, labels, open, "")
}

// AssetBasePublisher is an optional interface of an AssetStore whose
// Publish can start from another stored manifest: PublishOnto is Publish,
// except that the blobs the manifest at base names count as stored without
// asking the backend, so only the rest are looked up. The Pipeline passes
// the manifest its preview serves now, so a redeploy that changed one file
// of 10,000 looks up one blob instead of listing 10,000. base "" (or
// prefix itself, or a base with no readable manifest) is Publish.
//
// A blob a stored manifest names is as present as one a lookup found: it
// is never collected while referenced (CollectBlobs keeps referenced
// blobs, and DeleteManifest removes blobs only under the exclusive side of
// AssetPublishLocker, which this publish holds from reading base to
// writing its own manifest); where the backend has no lock, the same
// grace period that protects a lookup's answer protects it. What it does
// not do is repair: a blob deleted behind the store's back (by hand, by a
// bucket lifecycle rule) is not re-sent, as a full Publish would (the
// Pipeline does a full Publish when asked: UpRequest.VerifyAssets,
// `glimpse up --verify-assets`).
type AssetBasePublisher interface {
	PublishOnto(ctx context.Context, prefix string, m Manifest, labels Labels, open func(path string) (io.ReadCloser, error), base string) (PublishStats, error)
}

var _ AssetBasePublisher = (*AssetBucket)(nil)

// PublishOnto is Publish taking the blobs of the manifest at base as
// stored (see AssetBasePublisher).
func (b *AssetBucket) PublishOnto(ctx context.Context, prefix string, m Manifest, labels Labels, open func(path string) (io.ReadCloser, error), base string) (PublishStats, error) {
	var st PublishStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := ValidateAssetPrefix(prefix); err != nil {
		return st, err
	}
	if err := ValidateManifest(m); err != nil {
		return st, err
	}
	files := m.Files
	if files == nil {
		files = map[string]AssetFile{}
	}
	st.Files = len(files)
	fail := func(err error) (PublishStats, error) {
		st.Reused = st.Files - st.Uploaded
		if cerr := ctx.Err(); cerr != nil && CodeOf(err) != InvalidArgument {
			err = cerr
		}
		return st, b.wrap("publish", prefix, err)
	}

	if l, ok := b.d.(AssetPublishLocker); ok {
		unlock, err := l.LockPublish(ctx)
		if err != nil {
			return fail(err)
		}
		defer unlock()
	}

	unchanged := false
	var previous *Manifest
	switch old, err := b.d.GetManifest(ctx, prefix); {
	case err == nil:
		previous = &old.Manifest
		unchanged = old.Manifest.Equal(Manifest{Files: files}) && maps.Equal(old.Labels, labels)
	case IsNotFound(err), CodeOf(err) == Internal:
		// No manifest, or a corrupt one this publish replaces.
	default:
		return fail(err)
	}

	// The first path (sorted) of every distinct digest.
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	firstPath := make(map[string]string, len(paths))
	digests := make([]string, 0, len(paths))
	for _, p := range paths {
		d := files[p].Digest
		if _, dup := firstPath[d]; !dup {
			firstPath[d] = p
			digests = append(digests, d)
		}
	}
	sort.Strings(digests)
	present := map[string]bool{}
	if base != "" && base != prefix && ValidateAssetPrefix(base) == nil {
		switch bm, err := b.d.GetManifest(ctx, base); {
		case err == nil:
			for _, f := range bm.Manifest.Files {
				present[f.Digest] = true
			}
		case IsNotFound(err), CodeOf(err) == Internal:
			// Gone or unreadable: look every blob up.
		default:
			return fail(err)
		}
	}
	unknown := digests
	if len(present) > 0 {
		unknown = make([]string, 0, len(digests))
		for _, d := range digests {
			if !present[d] {
				unknown = append(unknown, d)
			}
		}
	}
	if len(unknown) > 0 {
		found, err := b.d.HasBlobs(ctx, unknown)
		if err != nil {
			return fail(err)
		}
		for d, ok := range found {
			if ok {
				present[d] = true
			}
		}
	}
	var missing []string // paths, sorted
	for _, p := range paths {
		d := files[p].Digest
		if firstPath[d] == p && !present[d] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 && open == nil {
		return fail(Errorf(InvalidArgument, "%d blobs missing and no open function given", len(missing)))
	}

	if err := b.upload(ctx, missing, files, open, &st); err != nil {
		return fail(err)
	}
	st.Reused = st.Files - st.Uploaded
	if unchanged {
		st.Unchanged = true
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if pw, ok := b.d.(AssetPathWriter); ok {
		if err := pw.WritePaths(ctx, prefix, Manifest{Files: files}, previous); err != nil {
			return st, b.wrap("publish", prefix, err)
		}
	}
	if err := b.d.PutManifest(ctx, prefix, StoredManifest{Manifest: Manifest{Files: files}, Labels: labels}); err != nil {
		return st, b.wrap("publish", prefix, err)
	}
	return st, nil
}

// upload sends the blobs of paths with at most b.uploads PutBlob calls at
// once and stops at the first error, which it returns.
func (b *AssetBucket) upload(ctx context.Context, paths []string, files map[string]AssetFile, open func(string) (io.ReadCloser, error), st *PublishStats) error {
	if len(paths) == 0 {
		return nil
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan string)
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(b.uploads, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				n, err := b.putBlob(wctx, p, files[p], open)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil && n >= 0 {
					st.Uploaded++
					st.UploadedBytes += n
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, p := range paths {
		select {
		case next <- p:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// putBlob opens one file and sends it through a verifying reader. It
// returns the bytes stored, or -1 when the driver found the blob already
// there.
func (b *AssetBucket) putBlob(ctx context.Context, p string, f AssetFile, open func(string) (io.ReadCloser, error)) (int64, error) {
	rc, err := open(p)
	if err != nil {
		if CodeOf(err) == Unknown {
			err = WithCode(InvalidArgument, err)
		}
		return 0, fmt.Errorf("read %s: %w", p, err)
	}
	vr := newVerifyingReader(ctx, p, f, rc)
	// An HTTP transport may still read the body after its round trip
	// returned; vr.close makes such late reads fail without touching rc.
	defer vr.close()
	if _, verr := vr.state(); verr != nil {
		return 0, verr // an empty file whose digest is not the empty digest
	}
	var r io.Reader = vr
	if _, ok := rc.(io.Seeker); ok {
		r = &verifyingSeeker{vr}
	}
	err = b.d.PutBlob(ctx, BlobInfo(f), r)
	ok, verr := vr.state()
	if verr != nil {
		// The content was wrong or unreadable: that is the error, whatever
		// the driver made of it.
		return 0, verr
	}
	if CodeOf(err) == AlreadyExists {
		return -1, nil
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return 0, cerr
		}
		return 0, fmt.Errorf("store %s (%s): %w", p, f.Digest, err)
	}
	if !ok {
		return 0, Errorf(Internal, "store %s: the driver returned before reading the whole content", p)
	}
	return f.Size, nil
}

// verifyingReader hands out a source's content, at most the manifest's
// size, hashing it. When the size-th byte has been read it compares the
// digest: a mismatch fails that Read (its bytes withheld, so a consumer
// that stops at the size never sees a complete wrong blob) and every later
// one with an InvalidArgument error; a match marks the content verified.
// After that one more Read tells io.EOF from a source that is too long
// (InvalidArgument). It stops with ctx's error when ctx is done, and with
// an error once closed.
type verifyingReader struct {
	ctx    context.Context
	path   string
	want   AssetFile
	src    io.ReadCloser
	mu     sync.Mutex
	h      hash.Hash
	n      int64
	err    error // a mismatch or source failure, sticky until a rewind
	ok     bool  // size bytes read and their digest matched
	closed bool
	parked bool // at the end after Seek(0, io.SeekEnd), until a rewind
}

var errReaderClosed = errors.New("verifying reader: closed")

func newVerifyingReader(ctx context.Context, p string, f AssetFile, src io.ReadCloser) *verifyingReader {
	v := &verifyingReader{ctx: ctx, path: p, want: f, src: src, h: sha256.New()}
	if f.Size == 0 {
		// Nothing to read before the check: a driver may read nothing.
		v.err = v.check()
	}
	return v
}

func (v *verifyingReader) mismatch(n int64, got string) error {
	return Errorf(InvalidArgument, "content of %s does not match the manifest (%d bytes, %s; manifest says %d bytes, %s)", v.path, n, got, v.want.Size, v.want.Digest)
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return 0, errReaderClosed
	case v.err != nil:
		return 0, v.err
	case v.parked:
		return 0, io.EOF
	}
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.ok {
		// Everything was handed out: the source must be at its end.
		var one [1]byte
		n, err := io.ReadFull(v.src, one[:])
		if n > 0 {
			v.err = Errorf(InvalidArgument, "content of %s does not match the manifest (more than %d bytes; manifest says %d bytes, %s)", v.path, v.want.Size, v.want.Size, v.want.Digest)
			return 0, v.err
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, io.EOF
		}
		return 0, v.srcErr(err)
	}
	if rest := v.want.Size - v.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := v.src.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n == v.want.Size {
		if v.err = v.check(); v.err != nil {
			return 0, v.err
		}
		if err == io.EOF {
			// The source ended exactly at the size: verified and done.
			return n, io.EOF
		}
		return n, nil
	}
	switch {
	case err == io.EOF:
		v.err = v.mismatch(v.n, "sha256:"+hex.EncodeToString(v.h.Sum(nil)))
		return n, v.err
	case err != nil:
		return n, v.srcErr(err)
	}
	return n, nil
}

// check compares the digest of the size bytes read; the caller holds mu.
func (v *verifyingReader) check() error {
	got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
	if got != v.want.Digest {
		return v.mismatch(v.n, got)
	}
	v.ok = true
	return nil
}

// srcErr records a failure of the source; the caller holds mu.
func (v *verifyingReader) srcErr(err error) error {
	if v.ctx.Err() != nil {
		return err
	}
	v.err = WithCode(codeOr(err, Internal), fmt.Errorf("read %s: %w", v.path, err))
	return v.err
}

// state reports whether the whole content was handed out and matched, and
// the content error, if any.
func (v *verifyingReader) state() (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ok, v.err
}

func (v *verifyingReader) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		v.closed = true
		v.src.Close()
	}
}

// verifyingSeeker is a verifyingReader over a seekable source, for
// drivers that rewind to retry. It supports what HTTP clients do: a query
// of the offset (Seek(0, io.SeekCurrent)), a jump to the end to learn the
// length (Seek(0, io.SeekEnd): the manifest's size; reads then return
// io.EOF), and a rewind (Seek(0, io.SeekStart)), which restarts
// verification. Other seeks are refused.
type verifyingSeeker struct{ *verifyingReader }

func (v *verifyingSeeker) Seek(offset int64, whence int) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return 0, errReaderClosed
	}
	switch {
	case offset == 0 && whence == io.SeekCurrent:
		if v.parked {
			return v.want.Size, nil
		}
		return v.n, nil
	case offset == 0 && whence == io.SeekEnd:
		v.parked = true
		return v.want.Size, nil
	case offset == 0 && whence == io.SeekStart:
		if _, err := v.src.(io.Seeker).Seek(0, io.SeekStart); err != nil {
			return v.n, err
		}
		v.h.Reset()
		v.n, v.err, v.ok, v.parked = 0, nil, false, false
		if v.want.Size == 0 {
			v.err = v.check()
		}
		return 0, nil
	}
	return v.n, errors.New("verifying reader: only Seek(0, io.SeekStart|io.SeekCurrent|io.SeekEnd) is supported")
}

// Manifest returns the manifest at prefix, or NotFound (see
// AssetStore.Manifest). Its Files map is never nil.
func (b *AssetBucket) Manifest(ctx context.Context, prefix string) (Manifest, error) {
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}
	if err := ValidateAssetPrefix(prefix); err != nil {
		return Manifest{}, err
	}
	sm, err := b.d.GetManifest(ctx, prefix)
	if err != nil {
		return Manifest{}, b.wrap("manifest", prefix, err)
	}
	if sm.Manifest.Files == nil {
		sm.Manifest.Files = map[string]AssetFile{}
	}
	return sm.Manifest, nil
}

// Open returns the blob with the given digest as the driver hands it out,
// or NotFound; InvalidArgument for a malformed digest.
func (b *AssetBucket) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ValidDigest(digest) {
		return nil, Errorf(InvalidArgument, "%s: digest %q is not sha256:<64 hex digits>", b.name, digest)
	}
	rc, err := b.d.OpenBlob(ctx, digest)
	if err != nil {
		return nil, b.wrap("blob", digest, err)
	}
	return rc, nil
}

// List returns the prefixes whose manifest labels match selector, sorted
// by prefix; an empty result is an empty, non-nil slice.
func (b *AssetBucket) List(ctx context.Context, selector Labels) ([]ManifestInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := b.d.ListManifests(ctx, selector)
	if err != nil {
		return nil, b.wrap("list", "", err)
	}
	out := make([]ManifestInfo, 0, len(all))
	for _, mi := range all {
		if mi.Labels.Matches(selector) {
			out = append(out, mi)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out, nil
}

// Delete removes the manifest at prefix; a missing prefix is success.
// What happens to its blobs is the driver's (see
// AssetDriver.DeleteManifest).
func (b *AssetBucket) Delete(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateAssetPrefix(prefix); err != nil {
		return err
	}
	if err := b.d.DeleteManifest(ctx, prefix); err != nil && !IsNotFound(err) {
		return b.wrap("delete", prefix, err)
	}
	return nil
}

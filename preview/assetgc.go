package preview

import (
	"context"
	"sort"
	"time"
)

// Asset blob collection: blobs are shared by digest between manifests, so
// deleting a manifest leaves its blobs (most drivers cannot know who else
// is about to use them), and a failed or interrupted Publish leaves the
// blobs it sent. CollectBlobs removes the blobs that no manifest
// references.

// DefaultBlobGrace is the grace period of CollectBlobs when
// BlobCollectOptions.OlderThan is zero.
const DefaultBlobGrace = time.Hour

// AssetBlob is a stored blob as AssetBlobLister lists it.
type AssetBlob struct {
	Digest string // "sha256:<hex>"
	Size   int64
	// Modified is when the backend stored the blob (S3's LastModified, a
	// file's modification time).
	Modified time.Time
}

// AssetBlobLister is an optional interface of an AssetDriver whose blobs
// AssetBucket.CollectBlobs can collect.
type AssetBlobLister interface {
	// ListBlobs returns every stored blob, in any order. Objects under the
	// blob namespace that are not a valid blob are left out.
	ListBlobs(ctx context.Context) ([]AssetBlob, error)
	// DeleteBlobs removes the blobs with the given digests (distinct,
	// sorted), batching as the backend allows; a missing blob is success.
	DeleteBlobs(ctx context.Context, digests []string) error
}

// AssetBlobCollector is an optional interface of an AssetDriver that
// collects its own blobs, under a lock that excludes Publish (fsassets).
// The bucket's CollectBlobs delegates to it (after validating opts), in
// preference to AssetBlobLister.
type AssetBlobCollector interface {
	CollectBlobs(ctx context.Context, opts BlobCollectOptions) (BlobCollectStats, error)
}

// BlobCollector is implemented by AssetStores that can remove the blobs
// no manifest references (AssetBucket and the stores over it); glimpse gc
// uses it when the configured store has it.
type BlobCollector interface {
	CollectBlobs(ctx context.Context, opts BlobCollectOptions) (BlobCollectStats, error)
}

// BlobCollectOptions configure CollectBlobs.
type BlobCollectOptions struct {
	// OlderThan is the grace period: a blob stored less than OlderThan ago
	// is kept even when no manifest references it. 0 means
	// DefaultBlobGrace; a negative value is InvalidArgument. See
	// AssetBucket.CollectBlobs for why it must exceed the longest Publish.
	OlderThan time.Duration
	// DryRun counts what would be deleted and deletes nothing.
	DryRun bool
}

// BlobCollectStats says what CollectBlobs found and removed (or, with
// DryRun, would remove).
type BlobCollectStats struct {
	// Blobs is how many blobs are stored.
	Blobs int `json:"blobs"`
	// Referenced is how many of them a manifest names.
	Referenced int `json:"referenced"`
	// Young is how many unreferenced blobs were kept because they are
	// younger than the grace period.
	Young int `json:"young"`
	// Deleted and DeletedBytes count the blobs removed (to be removed, in
	// a dry run).
	Deleted      int   `json:"deleted"`
	DeletedBytes int64 `json:"deletedBytes"`
	// Temp counts leftover temporary files removed (fsassets).
	Temp   int  `json:"temp,omitempty"`
	DryRun bool `json:"dryRun,omitempty"`
}

var _ BlobCollector = (*AssetBucket)(nil)

// CollectBlobs deletes the blobs that no manifest references and that
// were stored at least opts.OlderThan ago. A blob that a manifest names is
// never deleted.
//
// The grace period exists because a Publish uploads its missing blobs
// before it writes the manifest that names them (manifest last): while a
// Publish is in flight its new blobs are referenced by nothing, and a
// collection without a grace period would delete them under it, leaving a
// manifest that names missing blobs. A blob younger than the grace period
// is therefore kept, referenced or not; the grace period must exceed the
// longest Publish (and the clock skew between this machine and the
// backend, whose timestamps are compared with time.Now). The default is an
// hour.
//
// Drivers that implement AssetBlobCollector collect under their own lock,
// which excludes Publish altogether (fsassets). For drivers with only
// AssetBlobLister (s3assets) the collection proceeds in this order: list
// the blobs, then read every manifest (ListManifests, then GetManifest of
// each; any error other than a manifest deleted meanwhile stops the
// collection before it deletes anything), then delete the unreferenced
// blobs older than the grace period. A manifest that the driver's
// ListManifests skips as unreadable (corrupt JSON) is not seen, so the
// blobs only it names may be deleted; it could not be served anyway. One window remains without a lock: a
// Publish that found an old, unreferenced blob present (a preview torn
// down and published again with the same file) and writes its manifest
// after this collection read the manifests. Keep the grace period long,
// and run glimpse gc when few publishes run.
//
// Without either interface CollectBlobs is Unimplemented.
func (b *AssetBucket) CollectBlobs(ctx context.Context, opts BlobCollectOptions) (BlobCollectStats, error) {
	st := BlobCollectStats{DryRun: opts.DryRun}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if opts.OlderThan < 0 {
		return st, Errorf(InvalidArgument, "%s: collect: grace period must not be negative, got %s", b.name, opts.OlderThan)
	}
	if opts.OlderThan == 0 {
		opts.OlderThan = DefaultBlobGrace
	}
	if c, ok := b.d.(AssetBlobCollector); ok {
		st, err := c.CollectBlobs(ctx, opts)
		st.DryRun = opts.DryRun
		return st, b.wrap("collect", "", err)
	}
	l, ok := b.d.(AssetBlobLister)
	if !ok {
		return st, Errorf(Unimplemented, "%s: collect: the store cannot list its blobs", b.name)
	}
	start := time.Now()
	blobs, err := l.ListBlobs(ctx)
	if err != nil {
		return st, b.wrap("collect", "", err)
	}
	st.Blobs = len(blobs)
	referenced, err := b.referenced(ctx)
	if err != nil {
		return st, b.wrap("collect", "", err)
	}
	var doomed []string
	for _, bl := range blobs {
		switch {
		case referenced[bl.Digest]:
			st.Referenced++
		case start.Sub(bl.Modified) < opts.OlderThan:
			st.Young++
		default:
			doomed = append(doomed, bl.Digest)
			st.DeletedBytes += bl.Size
		}
	}
	sort.Strings(doomed)
	st.Deleted = len(doomed)
	if opts.DryRun || len(doomed) == 0 {
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := l.DeleteBlobs(ctx, doomed); err != nil {
		return st, b.wrap("collect", "", err)
	}
	return st, nil
}

// referenced returns the digests every stored manifest names.
func (b *AssetBucket) referenced(ctx context.Context) (map[string]bool, error) {
	infos, err := b.d.ListManifests(ctx, nil)
	if err != nil {
		return nil, err
	}
	ref := map[string]bool{}
	for _, mi := range infos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sm, err := b.d.GetManifest(ctx, mi.Prefix)
		if IsNotFound(err) {
			continue // deleted meanwhile: its blobs are not needed by it
		}
		if err != nil {
			return nil, err
		}
		for _, f := range sm.Manifest.Files {
			ref[f.Digest] = true
		}
	}
	return ref, nil
}

// Package fsassets is a preview.AssetStore on a local directory, the
// default asset store of a single-machine Glimpse: preview.AssetBucket (which
// validates input, dedupes, decides which blobs to send, uploads them a few
// at a time, verifies their digests and writes the manifest last) over this
// package's directory driver, which only stores and fetches. Blobs are stored
// content-addressed at <dir>/blobs/sha256/<hex[:2]>/<hex>, each written to a
// temporary file, checked against its digest while it is written and then
// renamed into place, so a blob file is either absent or complete and
// correct. Each preview's manifest lives at <dir>/manifests/<prefix>.json
// together with its labels and is replaced by a rename, so the edge (which
// reads the same directory, see BlobPath and Open) sees the old or the new
// manifest, never a mix. Several processes may use one directory at once: a
// lock file serialises garbage collection against publishing. The package
// registers the URL scheme "fs" (see DirFromURL for the URL forms).
package fsassets

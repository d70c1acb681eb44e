package edge

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// Defaults of the blob cache of stores without local files (see
// Options.AssetCacheBytes and Options.AssetCacheMaxBlob).
const (
	DefaultAssetCacheBytes   = 64 << 20
	DefaultAssetCacheMaxBlob = 4 << 20
)

// blobPather is the optional interface of an asset store that keeps each
// blob in a local file (cdn/fsassets). The edge serves such a store by
// opening the file per request (sendfile, the page cache does the caching)
// and keeps no copy in memory.
type blobPather interface {
	BlobPath(digest string) (string, error)
}

// blobCache keeps recently served blobs of a store without local files
// (S3, an in-memory store) in memory, keyed by digest. Blobs never change
// under their digest, so an entry is never stale; the cache is bounded by
// the total bytes it holds and evicts the least recently used blob. Blobs
// larger than maxBlob are not cached (the caller streams them). Concurrent
// misses of one digest share one load.
type blobCache struct {
	max, maxBlob int64

	mu       sync.Mutex
	used     int64
	entries  map[string]*list.Element // digest -> element of lru, Value *cachedBlob
	lru      list.List                // front: most recently used
	inflight map[string]*blobLoad

	// Counters, under mu (for tests and diagnostics).
	hits, misses, evictions int64
}

type cachedBlob struct {
	digest string
	data   []byte
}

// blobLoad is one load in progress; done is closed when data or err is
// set.
type blobLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// newBlobCache returns the blob cache for store, or nil when the store
// needs none (nil, or a store with local files) or caching is off
// (maxBytes < 0).
func newBlobCache(store preview.AssetStore, maxBytes, maxBlob int64) *blobCache {
	if store == nil || maxBytes < 0 {
		return nil
	}
	if _, ok := store.(blobPather); ok {
		return nil
	}
	if maxBytes == 0 {
		maxBytes = DefaultAssetCacheBytes
	}
	if maxBlob <= 0 {
		maxBlob = DefaultAssetCacheMaxBlob
	}
	maxBlob = min(maxBlob, maxBytes)
	return &blobCache{max: maxBytes, maxBlob: maxBlob, entries: map[string]*list.Element{}, inflight: map[string]*blobLoad{}}
}

// cacheable reports whether a blob of size bytes is kept in the cache.
func (c *blobCache) cacheable(size int64) bool { return size <= c.maxBlob }

// get returns the content of the blob digest of size bytes, from the cache
// or loaded with open (which must return the blob's content). A loaded
// blob is verified against its digest and size before it is cached or
// returned; a mismatch is an Internal error and nothing is cached.
func (c *blobCache) get(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) ([]byte, error) {
	c.mu.Lock()
	if el := c.entries[digest]; el != nil {
		c.lru.MoveToFront(el)
		c.hits++
		data := el.Value.(*cachedBlob).data
		c.mu.Unlock()
		return data, nil
	}
	if l := c.inflight[digest]; l != nil {
		c.mu.Unlock()
		select {
		case <-l.done:
			if l.err == nil {
				return l.data, nil
			}
			// The loader failed (perhaps its client went away); load for
			// this request without sharing.
			return loadBlob(ctx, digest, size, open)
		case <-ctx.Done():
			return nil, preview.WithCode(preview.Canceled, ctx.Err())
		}
	}
	l := &blobLoad{done: make(chan struct{})}
	c.inflight[digest] = l
	c.misses++
	c.mu.Unlock()

	l.data, l.err = loadBlob(ctx, digest, size, open)

	c.mu.Lock()
	delete(c.inflight, digest)
	if l.err == nil {
		c.addLocked(digest, l.data)
	}
	c.mu.Unlock()
	close(l.done)
	return l.data, l.err
}

// addLocked inserts a blob and evicts from the back until the bound holds.
func (c *blobCache) addLocked(digest string, data []byte) {
	if c.entries[digest] != nil || int64(len(data)) > c.maxBlob {
		return
	}
	c.entries[digest] = c.lru.PushFront(&cachedBlob{digest: digest, data: data})
	c.used += int64(len(data))
	for c.used > c.max {
		el := c.lru.Back()
		cb := el.Value.(*cachedBlob)
		c.lru.Remove(el)
		delete(c.entries, cb.digest)
		c.used -= int64(len(cb.data))
		c.evictions++
	}
}

// stats returns the bytes held, the blobs held and the counters.
func (c *blobCache) stats() (used int64, n int, hits, misses, evictions int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, len(c.entries), c.hits, c.misses, c.evictions
}

var errBlobMismatch = errors.New("blob content does not match its digest or size")

// loadBlob reads the whole blob and verifies it.
func loadBlob(ctx context.Context, digest string, size int64, open func(context.Context) (io.ReadCloser, error)) ([]byte, error) {
	rc, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(rc, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, preview.WithCode(preview.Internal, errBlobMismatch)
		}
		return nil, err
	}
	var one [1]byte
	if n, _ := io.ReadFull(rc, one[:]); n != 0 {
		return nil, preview.WithCode(preview.Internal, errBlobMismatch)
	}
	sum := sha256.Sum256(data)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return nil, preview.WithCode(preview.Internal, errBlobMismatch)
	}
	return data, nil
}

// forwardSeeker makes a non-seekable blob reader good enough for
// http.ServeContent with a single range: Seek(0, io.SeekEnd) reports the
// manifest's size without moving, and seeking forward from the current
// offset (or back to it) reads through and discards the bytes in between.
// Seeking backwards fails, so multi-range requests must not reach it.
type forwardSeeker struct {
	r      io.Reader
	size   int64
	pos    int64
	parked bool // after Seek(0, io.SeekEnd): reads return io.EOF
}

func (f *forwardSeeker) Read(p []byte) (int, error) {
	if f.parked {
		return 0, io.EOF
	}
	n, err := f.r.Read(p)
	f.pos += int64(n)
	return n, err
}

func (f *forwardSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		if offset == 0 {
			f.parked = true
			return f.size, nil
		}
		offset += f.size
	}
	if offset < f.pos {
		return f.pos, errors.New("edge: streamed blob cannot seek backwards")
	}
	f.parked = false
	if offset > f.pos {
		n, err := io.CopyN(io.Discard, f.r, offset-f.pos)
		f.pos += n
		if err != nil {
			return f.pos, err
		}
	}
	return f.pos, nil
}

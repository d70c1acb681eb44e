package embedregistry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// DefaultGCGrace is the GCOptions.Grace used when it is zero.
const DefaultGCGrace = time.Hour

// GCOptions configure GarbageCollect. Nil means defaults.
type GCOptions struct {
	// Grace protects recent data: blobs written or checked (HEAD) more
	// recently than Grace ago, manifests younger than Grace and uploads
	// active within Grace are kept, so that a push in progress (blobs
	// first, manifest last) is never cut short. Zero means DefaultGCGrace.
	Grace time.Duration
	// UntaggedManifests also removes manifests that no tag names, directly
	// or through an index in the same repository.
	UntaggedManifests bool
}

// GCStats says what GarbageCollect removed.
type GCStats struct {
	ManifestsRemoved int
	BlobsRemoved     int
	BytesFreed       int64
	UploadsRemoved   int
}

// GarbageCollect removes blobs that no stored manifest references, uploads
// abandoned for longer than the grace period and, with
// opts.UntaggedManifests, untagged manifests. Manifest reads and writes wait
// while it runs. After Close it returns an error. It stops early with ctx's error, having removed only
// unreferenced data; running it again continues. Safe to call at any time.
func (r *Registry) GarbageCollect(ctx context.Context, opts *GCOptions) (GCStats, error) {
	var st GCStats
	r.closeMu.RLock()
	closed := r.closed
	if !closed {
		r.inflight.Add(1)
		defer r.inflight.Done()
	}
	r.closeMu.RUnlock()
	if closed {
		return st, errors.New("embedregistry: GarbageCollect after Close")
	}
	if opts == nil {
		opts = &GCOptions{}
	}
	grace := opts.Grace
	if grace == 0 {
		grace = DefaultGCGrace
	}
	cutoff := now().Add(-grace)

	r.upMu.Lock()
	for id, u := range r.uploads {
		if u.mu.TryLock() {
			if u.touched.Before(cutoff) {
				u.discard()
				delete(r.uploads, id)
				st.UploadsRemoved++
			}
			u.mu.Unlock()
		}
	}
	r.upMu.Unlock()

	r.meta.Lock()
	defer r.meta.Unlock()
	repos, err := r.repositories()
	if err != nil {
		return st, err
	}
	live := map[string]bool{}
	for _, name := range repos {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, err := r.markRepo(name, opts.UntaggedManifests, cutoff, live)
		st.ManifestsRemoved += n
		if err != nil {
			return st, err
		}
	}
	blobDir := filepath.Join(r.dir, "blobs", "sha256")
	ents, err := os.ReadDir(blobDir)
	if err != nil {
		return st, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		d := "sha256:" + e.Name()
		if live[d] || !validDigest(d) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(blobDir, e.Name())); err == nil {
			st.BlobsRemoved++
			st.BytesFreed += fi.Size()
		}
	}
	return st, nil
}

// markRepo adds the blobs the repository's manifests reference to live,
// first removing untagged manifests older than cutoff when asked to.
func (r *Registry) markRepo(name string, untagged bool, cutoff time.Time, live map[string]bool) (removed int, err error) {
	revDir := filepath.Join(r.repoDir(name), "_manifests", "sha256")
	ents, err := os.ReadDir(revDir)
	if err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	docs := map[string]manifestDoc{}
	for _, e := range ents {
		d := "sha256:" + e.Name()
		if !validDigest(d) {
			continue
		}
		_, body, err := r.readRevision(name, d)
		if err != nil {
			return removed, err
		}
		doc, _ := parseManifest(body)
		docs[d] = doc
	}
	if untagged {
		reached := map[string]bool{}
		var visit func(d string)
		visit = func(d string) {
			if reached[d] {
				return
			}
			reached[d] = true
			for _, m := range docs[d].Manifests {
				visit(m.Digest)
			}
		}
		tags, err := r.listTags(name)
		if err != nil {
			return removed, err
		}
		for _, t := range tags {
			if d, err := r.resolveTag(name, t); err == nil {
				visit(d)
			}
		}
		for d := range docs {
			if reached[d] {
				continue
			}
			p := r.revPath(name, d)
			if fi, err := os.Stat(p); err != nil || fi.ModTime().After(cutoff) {
				continue
			}
			if err := os.Remove(p); err == nil {
				removed++
				delete(docs, d)
			}
		}
		if removed > 0 {
			r.pruneRepo(name)
		}
	}
	for _, doc := range docs {
		if doc.Config != nil {
			live[doc.Config.Digest] = true
		}
		for _, l := range doc.Layers {
			live[l.Digest] = true
		}
	}
	return removed, nil
}

package embedregistry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func (r *Registry) blobPath(digest string) string {
	return filepath.Join(r.dir, "blobs", "sha256", digest[len("sha256:"):])
}

// blobExists reports whether the blob is stored.
func (r *Registry) blobExists(digest string) bool {
	fi, err := os.Stat(r.blobPath(digest))
	return err == nil && fi.Mode().IsRegular()
}

func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, digest string) error {
	if !validDigest(digest) {
		return errDigestInvalid
	}
	f, err := os.Open(r.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return errBlobUnknown
	} else if err != nil {
		return err
	}
	defer f.Close()
	if req.Method == http.MethodHead {
		// A client that found the blob will reference it in a manifest
		// soon: restart its garbage collection grace period.
		if fi, err := f.Stat(); err == nil && now().Sub(fi.ModTime()) > time.Minute {
			t := now()
			os.Chtimes(f.Name(), t, t)
		}
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+digest+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	// ServeContent answers HEAD without a body and honours Range.
	http.ServeContent(w, req, "", time.Time{}, f)
	return nil
}

func (r *Registry) deleteBlob(w http.ResponseWriter, digest string) error {
	if !validDigest(digest) {
		return errDigestInvalid
	}
	// Exclude manifest PUTs that are checking this blob's existence.
	r.meta.Lock()
	defer r.meta.Unlock()
	err := os.Remove(r.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return errBlobUnknown
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// upload is a blob upload in progress: data appended to a file under
// uploads/, hashed as it arrives. Uploads live in memory (with their file)
// and do not survive Close or a restart; clients start again.
type upload struct {
	mu      sync.Mutex
	id      string
	name    string
	path    string
	h       hash.Hash
	size    int64
	touched time.Time
	gone    bool // finished or discarded
}

func (u *upload) discard() {
	u.gone = true
	os.Remove(u.path)
}

func (r *Registry) newUpload(name string) (*upload, error) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	u := &upload{id: id, name: name, path: filepath.Join(r.dir, "uploads", id), h: sha256.New(), touched: now()}
	f, err := os.OpenFile(u.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	r.upMu.Lock()
	r.uploads[id] = u
	r.upMu.Unlock()
	return u, nil
}

// lockUpload finds the upload and locks it; the caller unlocks.
func (r *Registry) lockUpload(name, id string) (*upload, error) {
	r.upMu.Lock()
	u := r.uploads[id]
	r.upMu.Unlock()
	if u == nil || u.name != name {
		return nil, errUploadUnknown
	}
	u.mu.Lock()
	if u.gone {
		u.mu.Unlock()
		return nil, errUploadUnknown
	}
	return u, nil
}

func (r *Registry) dropUpload(u *upload) {
	u.discard()
	r.upMu.Lock()
	delete(r.uploads, u.id)
	r.upMu.Unlock()
}

// appendBody appends body to the upload. The file and the running hash stay
// consistent even when the client goes away mid-body, so the upload can be
// resumed from the size it reports.
func (r *Registry) appendBody(u *upload, body io.Reader) error {
	u.touched = now()
	if body == nil {
		return nil
	}
	f, err := os.OpenFile(u.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, werr := f.Write(buf[:n])
			u.h.Write(buf[:m])
			u.size += int64(m)
			if werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &regError{http.StatusBadRequest, "BLOB_UPLOAD_INVALID", "reading request body: " + rerr.Error()}
		}
	}
}

// finish checks the upload against digest and moves it into the blob store.
// The upload is gone afterwards whatever the outcome.
func (r *Registry) finish(u *upload, digest string) error {
	defer r.dropUpload(u)
	if !validDigest(digest) {
		return errDigestInvalid
	}
	if got := "sha256:" + hex.EncodeToString(u.h.Sum(nil)); got != digest {
		return &regError{http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("content has digest %s, not %s", got, digest)}
	}
	if r.blobExists(digest) {
		return nil
	}
	if !r.noSync {
		f, err := os.OpenFile(u.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return os.Rename(u.path, r.blobPath(digest))
}

func (r *Registry) uploadHeaders(w http.ResponseWriter, u *upload) {
	h := w.Header()
	h.Set("Location", "/v2/"+u.name+"/blobs/uploads/"+u.id)
	h.Set("Docker-Upload-UUID", u.id)
	end := u.size - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", fmt.Sprintf("0-%d", end))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, name, digest string) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (r *Registry) handleUpload(w http.ResponseWriter, req *http.Request, rt route) error {
	q := req.URL.Query()
	if rt.target == "" {
		if err := allow(req, http.MethodPost); err != nil {
			return err
		}
		// Cross-repository mount: blobs are shared, so the blob only has
		// to exist.
		if m := q.Get("mount"); m != "" && validDigest(m) && r.blobExists(m) {
			blobCreated(w, rt.name, m)
			return nil
		}
		u, err := r.newUpload(rt.name)
		if err != nil {
			return err
		}
		if d := q.Get("digest"); d != "" {
			// Monolithic upload: the body is the whole blob.
			u.mu.Lock()
			defer u.mu.Unlock()
			if err := r.appendBody(u, req.Body); err != nil {
				r.dropUpload(u)
				return err
			}
			if err := r.finish(u, d); err != nil {
				return err
			}
			blobCreated(w, rt.name, d)
			return nil
		}
		r.uploadHeaders(w, u)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}

	switch req.Method {
	case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return allow(req, http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)
	}
	u, err := r.lockUpload(rt.name, rt.target)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	switch req.Method {
	case http.MethodGet:
		r.uploadHeaders(w, u)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		r.dropUpload(u)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		if cr := req.Header.Get("Content-Range"); cr != "" {
			var start, end int64
			if _, err := fmt.Sscanf(cr, "%d-%d", &start, &end); err != nil || start != u.size || end < start {
				w.Header().Set("Range", fmt.Sprintf("0-%d", max(u.size-1, 0)))
				return &regError{http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID",
					fmt.Sprintf("Content-Range %q does not continue the %d bytes received", cr, u.size)}
			}
		}
		if err := r.appendBody(u, req.Body); err != nil {
			return err
		}
		r.uploadHeaders(w, u)
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		d := q.Get("digest")
		if d == "" {
			return &regError{http.StatusBadRequest, "DIGEST_INVALID", "digest query parameter missing"}
		}
		if err := r.appendBody(u, req.Body); err != nil {
			r.dropUpload(u)
			return err
		}
		if err := r.finish(u, d); err != nil {
			return err
		}
		blobCreated(w, rt.name, d)
	}
	return nil
}

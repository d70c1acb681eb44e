package embedregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func (r *Registry) repoDir(name string) string {
	return filepath.Join(r.dir, "repositories", filepath.FromSlash(name))
}

func (r *Registry) revPath(name, digest string) string {
	return filepath.Join(r.repoDir(name), "_manifests", "sha256", digest[len("sha256:"):])
}

func (r *Registry) tagPath(name, tag string) string {
	return filepath.Join(r.repoDir(name), "_tags", tag)
}

// readRevision returns a stored manifest. Callers hold r.meta.
func (r *Registry) readRevision(name, digest string) (mediaType string, body []byte, err error) {
	b, err := os.ReadFile(r.revPath(name, digest))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, errManifestUnkown
	} else if err != nil {
		return "", nil, err
	}
	mt, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return "", nil, fmt.Errorf("manifest %s of %s is corrupt", digest, name)
	}
	return string(mt), body, nil
}

// resolveTag returns the digest a tag points to. Callers hold r.meta.
func (r *Registry) resolveTag(name, tag string) (string, error) {
	b, err := os.ReadFile(r.tagPath(name, tag))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errManifestUnkown
	} else if err != nil {
		return "", err
	}
	d := strings.TrimSpace(string(b))
	if !validDigest(d) {
		return "", fmt.Errorf("tag %s of %s is corrupt", tag, name)
	}
	return d, nil
}

// resolveRef turns a tag or digest reference into a digest. Callers hold
// r.meta.
func (r *Registry) resolveRef(name, ref string) (string, error) {
	switch {
	case validDigest(ref):
		return ref, nil
	case validTag(ref):
		return r.resolveTag(name, ref)
	case strings.Contains(ref, ":"):
		return "", errDigestInvalid
	}
	return "", &regError{http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("invalid tag %q", ref)}
}

func (r *Registry) getManifest(w http.ResponseWriter, req *http.Request, name, ref string) error {
	r.meta.RLock()
	digest, err := r.resolveRef(name, ref)
	var mt string
	var body []byte
	if err == nil {
		mt, body, err = r.readRevision(name, digest)
	}
	r.meta.RUnlock()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Type", mt)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Etag", `"`+digest+`"`)
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		w.Write(body)
	}
	return nil
}

// descriptor is the part of an OCI descriptor the registry checks.
type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	URLs      []string `json:"urls"`
}

// manifestDoc is the union of the image manifest and index fields the
// registry reads.
type manifestDoc struct {
	MediaType string       `json:"mediaType"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"`
}

// UnmarshalJSON and fields read exact keys: encoding/json matches struct
// fields case-insensitively (so "Layers" or "Digest" would be checked in
// place of "layers" or "digest"), while other registries and clients read
// the exact keys, which could then name blobs the registry never checked.
func (d *descriptor) UnmarshalJSON(b []byte) error {
	return fields(b, map[string]any{"mediaType": &d.MediaType, "digest": &d.Digest, "urls": &d.URLs})
}

func (m *manifestDoc) UnmarshalJSON(b []byte) error {
	return fields(b, map[string]any{"mediaType": &m.MediaType, "config": &m.Config, "layers": &m.Layers, "manifests": &m.Manifests})
}

func fields(b []byte, dst map[string]any) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	for k, v := range dst {
		if raw, ok := obj[k]; ok {
			if err := json.Unmarshal(raw, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// validMediaType reports whether a media type can be stored (on the
// first line of the revision file) and answered as a Content-Type.
func validMediaType(mt string) bool {
	if mt == "" {
		return false
	}
	for i := 0; i < len(mt); i++ {
		if c := mt[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func parseManifest(body []byte) (manifestDoc, error) {
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		return m, &regError{http.StatusBadRequest, "MANIFEST_INVALID", "manifest is not valid JSON: " + err.Error()}
	}
	return m, nil
}

// distributable reports whether a layer must be present in the registry;
// foreign layers (with URLs or a non-distributable media type) need not be.
func distributable(d descriptor) bool {
	return len(d.URLs) == 0 && !strings.Contains(d.MediaType, "nondistributable") && !strings.Contains(d.MediaType, "foreign")
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, name, ref string) error {
	body, err := io.ReadAll(io.LimitReader(req.Body, r.maxMan+1))
	if err != nil {
		return &regError{http.StatusBadRequest, "MANIFEST_INVALID", "reading request body: " + err.Error()}
	}
	if int64(len(body)) > r.maxMan {
		return &regError{http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest is larger than %d bytes", r.maxMan)}
	}
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	tag := ""
	switch {
	case validDigest(ref):
		if ref != digest {
			return &regError{http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("manifest has digest %s, not %s", digest, ref)}
		}
	case validTag(ref):
		tag = ref
	case strings.Contains(ref, ":"):
		return errDigestInvalid
	default:
		return &regError{http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("invalid tag %q", ref)}
	}
	doc, err := parseManifest(body)
	if err != nil {
		return err
	}
	mt := req.Header.Get("Content-Type")
	if parsed, _, err := mime.ParseMediaType(mt); err == nil {
		mt = parsed
	}
	if mt == "" {
		mt = doc.MediaType
	}
	if !validMediaType(mt) {
		return &regError{http.StatusBadRequest, "MANIFEST_INVALID", "manifest media type unknown: set Content-Type"}
	}

	r.meta.Lock()
	defer r.meta.Unlock()
	if doc.Config != nil {
		if !validDigest(doc.Config.Digest) || !r.blobExists(doc.Config.Digest) {
			return &regError{http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "config blob unknown: " + doc.Config.Digest}
		}
	}
	for _, l := range doc.Layers {
		if !distributable(l) {
			continue
		}
		if !validDigest(l.Digest) || !r.blobExists(l.Digest) {
			return &regError{http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "layer blob unknown: " + l.Digest}
		}
	}
	for _, m := range doc.Manifests {
		if !validDigest(m.Digest) {
			return &regError{http.StatusBadRequest, "MANIFEST_INVALID", "invalid manifest digest " + m.Digest}
		}
		if _, err := os.Stat(r.revPath(name, m.Digest)); err != nil {
			return &regError{http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", "manifest unknown: " + m.Digest}
		}
	}
	rev := r.revPath(name, digest)
	if _, err := os.Stat(rev); err != nil {
		data := make([]byte, 0, len(mt)+1+len(body))
		data = append(append(append(data, mt...), '\n'), body...)
		if err := r.writeFileAtomic(rev, data); err != nil {
			return err
		}
	}
	if tag != "" {
		if cur, err := r.resolveTag(name, tag); err != nil || cur != digest {
			if err := r.writeFileAtomic(r.tagPath(name, tag), []byte(digest+"\n")); err != nil {
				return err
			}
		}
	}
	w.Header().Set("Location", "/v2/"+name+"/manifests/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest deletes a tag (the manifest stays), or a manifest by
// digest together with every tag that points to it.
func (r *Registry) deleteManifest(w http.ResponseWriter, name, ref string) error {
	r.meta.Lock()
	defer r.meta.Unlock()
	switch {
	case validDigest(ref):
		err := os.Remove(r.revPath(name, ref))
		if errors.Is(err, fs.ErrNotExist) {
			return errManifestUnkown
		} else if err != nil {
			return err
		}
		tags, err := r.listTags(name)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if d, err := r.resolveTag(name, t); err == nil && d == ref {
				if err := os.Remove(r.tagPath(name, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
	case validTag(ref):
		err := os.Remove(r.tagPath(name, ref))
		if errors.Is(err, fs.ErrNotExist) {
			return errManifestUnkown
		} else if err != nil {
			return err
		}
	default:
		return errManifestUnkown
	}
	r.pruneRepo(name)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// pruneRepo removes a repository's directories once it holds no manifest
// and no tag, so that it disappears from the catalog. Callers hold r.meta.
func (r *Registry) pruneRepo(name string) {
	dir := r.repoDir(name)
	// os.Remove fails on non-empty directories, which is the test.
	os.Remove(filepath.Join(dir, "_tags"))
	os.Remove(filepath.Join(dir, "_manifests", "sha256"))
	os.Remove(filepath.Join(dir, "_manifests"))
	root := filepath.Join(r.dir, "repositories")
	for d := dir; d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
}

// listTags returns a repository's tags, sorted. Callers hold r.meta.
func (r *Registry) listTags(name string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.repoDir(name), "_tags"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	tags := make([]string, 0, len(ents))
	for _, e := range ents {
		if validTag(e.Name()) {
			tags = append(tags, e.Name())
		}
	}
	slices.Sort(tags)
	return tags, nil
}

// repoExists reports whether name has a manifest or tag. Callers hold r.meta.
func (r *Registry) repoExists(name string) bool {
	_, err1 := os.Stat(filepath.Join(r.repoDir(name), "_manifests"))
	_, err2 := os.Stat(filepath.Join(r.repoDir(name), "_tags"))
	return err1 == nil || err2 == nil
}

// paginate applies the n and last query parameters of the tags and catalog
// endpoints to a sorted list and sets the Link header when more remain.
func paginate(w http.ResponseWriter, req *http.Request, all []string) ([]string, error) {
	q := req.URL.Query()
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(all, last)
		for i < len(all) && all[i] <= last {
			i++
		}
		all = all[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, &regError{http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n " + strconv.Quote(ns)}
		}
		if n < len(all) {
			all = all[:n]
			if n > 0 {
				next := url.URL{Path: req.URL.Path, RawQuery: url.Values{"n": {ns}, "last": {all[n-1]}}.Encode()}
				w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", next.String()))
			}
		}
	}
	return all, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (r *Registry) tagsList(w http.ResponseWriter, req *http.Request, name string) error {
	r.meta.RLock()
	exists := r.repoExists(name)
	tags, err := r.listTags(name)
	r.meta.RUnlock()
	if err != nil {
		return err
	}
	if !exists {
		return errNameUnknown
	}
	tags, err = paginate(w, req, tags)
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
	return nil
}

// repositories returns every repository name, sorted. Callers hold r.meta.
func (r *Registry) repositories() ([]string, error) {
	root := filepath.Join(r.dir, "repositories")
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || p == root {
			return nil
		}
		switch d.Name() {
		case "_manifests", "_tags":
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			if n := filepath.ToSlash(rel); len(names) == 0 || names[len(names)-1] != n {
				names = append(names, n)
			}
			return fs.SkipDir
		}
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names), err
}

func (r *Registry) catalog(w http.ResponseWriter, req *http.Request) error {
	r.meta.RLock()
	names, err := r.repositories()
	r.meta.RUnlock()
	if err != nil {
		return err
	}
	names, err = paginate(w, req, names)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, struct {
		Repositories []string `json:"repositories"`
	}{names})
	return nil
}

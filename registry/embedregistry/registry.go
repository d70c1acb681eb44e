package embedregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
)

// DefaultMaxManifestSize is the largest manifest accepted when
// Options.MaxManifestSize is zero: 4 MiB, as the CNCF distribution registry.
const DefaultMaxManifestSize = 4 << 20

// Options configure a Registry. The zero value (or nil) gives the defaults.
type Options struct {
	// Logger receives warnings about internal errors (a failed disk write
	// answered with 500). Nil discards them; the registry never writes to
	// stderr or the standard logger.
	Logger *slog.Logger
	// MaxManifestSize limits a pushed manifest, in bytes. Zero means
	// DefaultMaxManifestSize.
	MaxManifestSize int64
	// DisableDelete makes every DELETE answer 405 UNSUPPORTED, as a
	// registry configured without deletes does.
	DisableDelete bool
	// NoSync skips fsync of written files. Data then survives a process
	// restart but not necessarily a power loss. For tests and benchmarks.
	NoSync bool
}

// Registry is an OCI distribution registry stored under one directory. It is
// safe for concurrent use. At most one Registry (in any process on the
// machine) serves a directory at a time; New fails when another holds it.
type Registry struct {
	dir     string
	log     *slog.Logger
	maxMan  int64
	noDel   bool
	noSync  bool
	handler http.Handler

	lockFile *os.File

	// meta guards manifests and tags (the repositories tree). Blob files
	// are content-addressed and written by rename, so they need no lock,
	// except against GarbageCollect, which takes meta for writing and so
	// excludes the manifest PUTs that check blob existence.
	meta sync.RWMutex

	upMu    sync.Mutex
	uploads map[string]*upload

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// New opens (creating if needed) the registry stored in dir. Uploads left
// unfinished by a previous process are discarded. It fails when dir cannot
// be created or another Registry holds it. A nil opts means defaults.
func New(dir string, opts *Options) (*Registry, error) {
	if opts == nil {
		opts = &Options{}
	}
	if dir == "" {
		return nil, errors.New("embedregistry: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedregistry: %w", err)
	}
	for _, sub := range []string{"blobs/sha256", "repositories", "uploads", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, filepath.FromSlash(sub)), 0o755); err != nil {
			return nil, fmt.Errorf("embedregistry: %w", err)
		}
	}
	lf, err := lockDir(filepath.Join(abs, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("embedregistry: %w", err)
	}
	// Nobody else serves the directory, so leftovers are ours to remove.
	for _, sub := range []string{"uploads", "tmp"} {
		clearDir(filepath.Join(abs, sub))
	}
	r := &Registry{
		dir:      abs,
		log:      opts.Logger,
		maxMan:   opts.MaxManifestSize,
		noDel:    opts.DisableDelete,
		noSync:   opts.NoSync,
		lockFile: lf,
		uploads:  map[string]*upload{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.maxMan <= 0 {
		r.maxMan = DefaultMaxManifestSize
	}
	r.handler = http.HandlerFunc(r.serve)
	return r, nil
}

// Dir returns the absolute directory the registry stores its data in.
func (r *Registry) Dir() string { return r.dir }

// Handler returns the HTTP handler serving the distribution API under /v2/.
// Mount it so that it sees the full request path ("/v2/..."). After Close
// it answers 503.
func (r *Registry) Handler() http.Handler { return r.handler }

// Close waits for the requests being served to finish, discards uploads in
// progress and releases the directory; later requests get 503 UNAVAILABLE.
// Shut the HTTP server down first (or give it read timeouts): a client that
// stalls in the middle of a request body delays Close. Closing twice is
// harmless.
func (r *Registry) Close() error {
	r.closeMu.Lock()
	if r.closed {
		r.closeMu.Unlock()
		return nil
	}
	r.closed = true
	r.closeMu.Unlock()
	r.inflight.Wait()

	r.upMu.Lock()
	for id, u := range r.uploads {
		u.mu.Lock()
		u.discard()
		u.mu.Unlock()
		delete(r.uploads, id)
	}
	r.upMu.Unlock()
	return unlockDir(r.lockFile)
}

// route is a parsed /v2/ request path.
type route struct {
	kind   string // "base", "catalog", "blob", "upload", "manifest", "tags"
	name   string // repository name
	target string // digest, tag or upload id
}

// parsePath splits a /v2/ path. The repository name may itself contain
// slashes, so the operation is found from the end of the path.
func parsePath(p string) (route, bool) {
	if p == "/v2" || p == "/v2/" {
		return route{kind: "base"}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	e := strings.Split(rest, "/")
	n := len(e)
	switch {
	case n >= 3 && e[n-2] == "tags" && e[n-1] == "list":
		return route{kind: "tags", name: strings.Join(e[:n-2], "/")}, true
	case n >= 4 && e[n-3] == "blobs" && e[n-2] == "uploads":
		// ".../blobs/uploads/" (start) or ".../blobs/uploads/<id>".
		return route{kind: "upload", name: strings.Join(e[:n-3], "/"), target: e[n-1]}, true
	case n >= 3 && e[n-2] == "blobs" && e[n-1] == "uploads":
		return route{kind: "upload", name: strings.Join(e[:n-2], "/")}, true
	case n >= 3 && e[n-2] == "blobs":
		return route{kind: "blob", name: strings.Join(e[:n-2], "/"), target: e[n-1]}, true
	case n >= 3 && e[n-2] == "manifests":
		return route{kind: "manifest", name: strings.Join(e[:n-2], "/"), target: e[n-1]}, true
	}
	return route{}, false
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_{1,2}|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_{1,2}|-+)[a-z0-9]+)*)*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

func validName(s string) bool   { return len(s) <= 255 && nameRE.MatchString(s) }
func validTag(s string) bool    { return tagRE.MatchString(s) }
func validDigest(s string) bool { return digestRE.MatchString(s) }

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	r.closeMu.RLock()
	closed := r.closed
	if !closed {
		r.inflight.Add(1)
	}
	r.closeMu.RUnlock()
	if closed {
		writeError(w, errUnavailable)
		return
	}
	defer r.inflight.Done()
	rt, ok := parsePath(req.URL.Path)
	if !ok {
		writeError(w, &regError{http.StatusNotFound, "NOT_FOUND", "unknown path " + req.URL.Path})
		return
	}
	if rt.kind != "base" && rt.kind != "catalog" && !validName(rt.name) {
		writeError(w, &regError{http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository name %q", rt.name)})
		return
	}
	if req.Method == http.MethodDelete && r.noDel {
		writeError(w, &regError{http.StatusMethodNotAllowed, "UNSUPPORTED", "deletes are disabled on this registry"})
		return
	}
	var err error
	switch rt.kind {
	case "base":
		err = allow(req, http.MethodGet, http.MethodHead)
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			if req.Method == http.MethodGet {
				io.WriteString(w, "{}")
			}
		}
	case "catalog":
		if err = allow(req, http.MethodGet); err == nil {
			err = r.catalog(w, req)
		}
	case "tags":
		if err = allow(req, http.MethodGet); err == nil {
			err = r.tagsList(w, req, rt.name)
		}
	case "blob":
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			err = r.getBlob(w, req, rt.target)
		case http.MethodDelete:
			err = r.deleteBlob(w, rt.target)
		default:
			err = allow(req, http.MethodGet, http.MethodHead, http.MethodDelete)
		}
	case "upload":
		err = r.handleUpload(w, req, rt)
	case "manifest":
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			err = r.getManifest(w, req, rt.name, rt.target)
		case http.MethodPut:
			err = r.putManifest(w, req, rt.name, rt.target)
		case http.MethodDelete:
			err = r.deleteManifest(w, rt.name, rt.target)
		default:
			err = allow(req, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
		}
	}
	if err != nil {
		var re *regError
		if !errors.As(err, &re) {
			r.log.Warn("embedregistry: internal error", "method", req.Method, "path", req.URL.Path, "err", err)
			re = &regError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
		}
		writeError(w, re)
	}
}

func allow(req *http.Request, methods ...string) error {
	for _, m := range methods {
		if req.Method == m {
			return nil
		}
	}
	return &regError{http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method + " is not supported here"}
}

// regError is an error answered with the distribution error body.
type regError struct {
	status  int
	code    string
	message string
}

func (e *regError) Error() string { return e.code + ": " + e.message }

var (
	errUnavailable    = &regError{http.StatusServiceUnavailable, "UNAVAILABLE", "registry is closed"}
	errBlobUnknown    = &regError{http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry"}
	errDigestInvalid  = &regError{http.StatusBadRequest, "DIGEST_INVALID", "digest must be sha256:<64 lower-case hex digits>"}
	errUploadUnknown  = &regError{http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"}
	errManifestUnkown = &regError{http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown to registry"}
	errNameUnknown    = &regError{http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry"}
)

func writeError(w http.ResponseWriter, e *regError) {
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
	}{[]item{{e.code, e.message}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(e.status)
	w.Write(b)
}

// writeFileAtomic replaces path with data (see package atomicfile),
// creating its directory; the temporary file lives in the registry's tmp
// directory.
func (r *Registry) writeFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, &atomicfile.Options{TempDir: filepath.Join(r.dir, "tmp"), Perm: 0o644, MkdirAll: true, NoSync: r.noSync})
}

func clearDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// now is the clock of upload expiry and garbage collection grace periods.
var now = time.Now

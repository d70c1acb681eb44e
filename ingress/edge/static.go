package edge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/preview"
)

// Cache-Control policy of static files. HTML and every file whose name is
// not fingerprinted get "no-cache": browsers keep them but revalidate each
// use, which costs a 304 (the ETag is the content digest, so the edge
// answers it from memory) and means a reviewer who reloads after a push
// always sees the new commit. Files whose names carry a content hash
// (app.3f2a9c1b.js, index-BdK3x9Qa.css, as webpack, Vite, esbuild and
// Parcel emit) never change under that name, so they get a year and
// "immutable". A time-based max-age for other files was rejected: previews
// change on every push, and stale CSS for five minutes looks like a bug.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// negativeTTL is how long a missing manifest is remembered.
const negativeTTL = time.Second

// assetSet is a route's manifest prepared for serving.
type assetSet struct {
	files map[string]*asset // URL path -> file; "/dir/" keys name index.html
	err   error             // non-nil: the manifest could not be loaded
	until time.Time         // for err: when to try again
}

// asset holds the precomputed header values of one file. The slices are
// shared by all responses and never modified (each has cap 1, so an append
// by a handler copies).
type asset struct {
	digest        string
	size          int64
	contentType   []string
	etag          []string
	cacheControl  []string
	contentLength []string
	etagValue     string

	// br and gz are the precompressed variants of the file, when the
	// manifest has <path>.br or <path>.gz: the variant's blob, with this
	// file's Content-Type and Cache-Control. encoding is set on variants
	// ("br", "gzip").
	br, gz   *asset
	encoding []string
	vary     bool // the file has variants, or is one: responses carry Vary

	// fields is the response head of a plain answer with the whole file
	// (the headers serveAsset sets), rendered on first use for the edge's
	// own connections (h1.ResponseWriter.SetFields).
	fields atomic.Pointer[h1.Fields]
}

// variant returns a copy of v (the asset of <path>.br or .gz) that serves
// as a's encoded representation.
func (a *asset) variant(v *asset, encoding string) *asset {
	return &asset{
		digest:        v.digest,
		size:          v.size,
		contentType:   a.contentType,
		etag:          v.etag,
		cacheControl:  a.cacheControl,
		contentLength: v.contentLength,
		etagValue:     v.etagValue,
		encoding:      []string{encoding},
		vary:          true,
	}
}

// setHeaders sets the header fields of an answer with the file (not its
// Accept-Ranges, which depends on how it is served) in h.
func (a *asset) setHeaders(h http.Header) {
	if a.vary {
		h["Vary"] = hdrVaryAcceptEncoding
	}
	h["Etag"] = a.etag
	h["Cache-Control"] = a.cacheControl
	h["Content-Type"] = a.contentType
	h["X-Content-Type-Options"] = hdrNosniff
	if a.encoding != nil {
		h["Content-Encoding"] = a.encoding
	}
}

// renderedFields returns the head of a plain answer with the whole file
// from memory: setHeaders' fields, Accept-Ranges and Content-Length.
func (a *asset) renderedFields() *h1.Fields {
	if f := a.fields.Load(); f != nil {
		return f
	}
	h := make(http.Header, 8)
	a.setHeaders(h)
	h["Accept-Ranges"] = hdrAcceptRanges
	h["Content-Length"] = a.contentLength
	f := h1.NewFields(h)
	a.fields.Store(f)
	return f
}

func newAssetSet(m preview.Manifest) *assetSet {
	s := &assetSet{files: make(map[string]*asset, len(m.Files)+len(m.Files)/4)}
	for p, f := range m.Files {
		etag := `"` + strings.TrimPrefix(f.Digest, "sha256:") + `"`
		ct := f.ContentType
		if ct == "" {
			ct = preview.ContentType(p)
		}
		a := &asset{
			digest:        f.Digest,
			size:          f.Size,
			contentType:   []string{ct},
			etag:          []string{etag},
			cacheControl:  []string{cacheControlFor(p, ct)},
			contentLength: []string{strconv.FormatInt(f.Size, 10)},
			etagValue:     etag,
		}
		s.files[p] = a
	}
	for p, a := range s.files {
		if v := s.files[p+".br"]; v != nil {
			a.br = a.variant(v, "br")
		}
		if v := s.files[p+".gz"]; v != nil {
			a.gz = a.variant(v, "gzip")
		}
		a.vary = a.br != nil || a.gz != nil
	}
	for p := range m.Files {
		if dir, ok := strings.CutSuffix(p, "/index.html"); ok {
			if _, exists := m.Files[dir+"/"]; !exists {
				s.files[dir+"/"] = s.files[p]
			}
		}
	}
	return s
}

// cacheControlFor returns the Cache-Control value of a file (see
// cacheImmutable).
func cacheControlFor(p, contentType string) string {
	if strings.HasPrefix(contentType, "text/html") {
		return cacheRevalidate
	}
	if fingerprinted(path.Base(p)) {
		return cacheImmutable
	}
	return cacheRevalidate
}

// fingerprinted reports whether a file name carries a content hash: one of
// its '.', '-' or '_' separated parts, other than the extension, is at least
// 8 hex digits mixing digits and letters (webpack, esbuild: main.3f2a9c1b.js)
// or exactly 8 letters and digits mixing upper case, lower case and digits
// (Rollup and Vite: index-BdK3x9Qa.js).
func fingerprinted(name string) bool {
	ext := path.Ext(name)
	stem := name[:len(name)-len(ext)]
	for len(stem) > 0 {
		i := strings.IndexAny(stem, ".-_")
		part := stem
		if i >= 0 {
			part, stem = stem[:i], stem[i+1:]
		} else {
			stem = ""
		}
		if hashLike(part) {
			return true
		}
	}
	return false
}

func hashLike(s string) bool {
	if len(s) < 8 {
		return false
	}
	var digit, hexLetter, lower, upper, other bool
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f':
			hexLetter, lower = true, true
		case c >= 'g' && c <= 'z':
			lower = true
			other = true
		case c >= 'A' && c <= 'Z':
			upper = true
			other = true
		default:
			return false
		}
	}
	if !other {
		return digit && hexLetter
	}
	return len(s) == 8 && digit && lower && upper
}

// manifestFor returns the route's prepared manifest, loading it once (one
// loader per route; others wait) and caching it until the route changes or
// InvalidateAssets is called. A missing manifest is cached for negativeTTL;
// other errors are not cached.
func (e *Edge) manifestFor(ctx context.Context, rt *route) *assetSet {
	if s := rt.assets.Load(); s != nil && (s.err == nil || time.Now().Before(s.until)) {
		return s
	}
	rt.loadMu.Lock()
	defer rt.loadMu.Unlock()
	if s := rt.assets.Load(); s != nil && (s.err == nil || time.Now().Before(s.until)) {
		return s
	}
	m, err := e.opts.Assets.Manifest(ctx, rt.prefix)
	if err != nil {
		s := &assetSet{err: err, until: time.Now().Add(negativeTTL)}
		if preview.IsNotFound(err) {
			rt.assets.Store(s)
		} else {
			e.log.Warn("edge: loading asset manifest", "prefix", rt.prefix, "err", err)
		}
		return s
	}
	s := newAssetSet(m)
	rt.assets.Store(s)
	return s
}

var (
	hdrAllowGetHead       = []string{"GET, HEAD"}
	hdrAcceptRanges       = []string{"bytes"}
	hdrVaryAcceptEncoding = []string{"Accept-Encoding"}
)

func (e *Edge) serveStatic(w http.ResponseWriter, r *http.Request, rt *route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllowGetHead
		h1.TextError(w, http.StatusMethodNotAllowed, "405 method not allowed: static files answer GET and HEAD\n")
		return
	}
	if rt.prefix == "" || e.opts.Assets == nil {
		h1.TextError(w, http.StatusNotFound, "404 not found\n")
		return
	}
	set := e.manifestFor(e.ctxOf(w, r), rt)
	if set.err != nil {
		if preview.IsNotFound(set.err) {
			h1.TextError(w, http.StatusNotFound, "404 this preview has no published assets\n")
			return
		}
		h1.TextError(w, http.StatusBadGateway, "502 asset store unavailable\n")
		return
	}
	p := r.URL.Path
	a := set.files[p]
	if a == nil {
		var redirect string
		a, redirect = e.resolveSlow(set, p)
		if redirect != "" {
			if q := r.URL.RawQuery; q != "" {
				redirect += "?" + q
			}
			http.Redirect(w, r, redirect, http.StatusMovedPermanently)
			return
		}
		if a == nil {
			e.notFound(w, r, rt, set)
			return
		}
	}
	e.serveAsset(w, r, rt, a, http.StatusOK)
}

// resolveSlow handles paths that are not manifest keys as they stand:
// unclean paths are cleaned, and a directory without its trailing slash
// redirects to it (so relative links in its index.html resolve), the way
// http.FileServer and nginx do.
func (e *Edge) resolveSlow(set *assetSet, p string) (a *asset, redirect string) {
	if p == "" {
		p = "/"
	}
	clean := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if a := set.files[clean]; a != nil {
		return a, ""
	}
	if !strings.HasSuffix(clean, "/") {
		if set.files[clean+"/"] != nil {
			return nil, clean + "/"
		}
	}
	return nil, ""
}

func (e *Edge) notFound(w http.ResponseWriter, r *http.Request, rt *route, set *assetSet) {
	if e.opts.SPAFallback && path.Ext(r.URL.Path) == "" {
		if a := set.files["/index.html"]; a != nil {
			e.serveAsset(w, r, rt, a, http.StatusOK)
			return
		}
	}
	if a := set.files["/404.html"]; a != nil {
		e.serveAsset(w, r, rt, a, http.StatusNotFound)
		return
	}
	h1.TextError(w, http.StatusNotFound, "404 not found\n")
}

// serveAsset answers with one file, or its precompressed variant when the
// manifest has one the client accepts. A matching If-None-Match is
// answered 304 from memory, without touching the blob. Requests with Range
// or other preconditions go through http.ServeContent; plain ones are
// copied with sendfile where the store hands out files. Stores without
// local files are served through the blob cache (serveCached; on the
// edge's own connections, a plain answer with a cached blob is
// serveFromMemory).
func (e *Edge) serveAsset(w http.ResponseWriter, r *http.Request, rt *route, a *asset, status int) {
	h := w.Header()
	if a.vary {
		if v := a.pickVariant(r.Header["Accept-Encoding"]); v != nil {
			a = v
		}
	}
	if status == http.StatusOK {
		if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, a.etagValue) {
			if a.vary {
				h["Vary"] = hdrVaryAcceptEncoding
			}
			h["Etag"] = a.etag
			h["Cache-Control"] = a.cacheControl
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if fw, ok := w.(*h1.ResponseWriter); ok && e.blobs != nil && e.blobs.cacheable(a.size) && (status != http.StatusOK || !needsServeContent(r)) {
		e.serveFromMemory(fw, r, rt, a, status)
		return
	}
	a.setHeaders(h)
	if e.blobs != nil {
		e.serveCached(w, r, rt, a, status)
		return
	}
	rc, err := e.opts.Assets.Open(e.ctxOf(w, r), a.digest)
	if err != nil {
		e.blobError(w, rt, a, err)
		return
	}
	defer rc.Close()
	rs, seekable := rc.(io.ReadSeeker)
	if status == http.StatusOK && seekable && needsServeContent(r) {
		http.ServeContent(w, r, "", time.Time{}, rs)
		return
	}
	if seekable {
		h["Accept-Ranges"] = hdrAcceptRanges
	}
	h["Content-Length"] = a.contentLength
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	copyBlob(w, rc)
}

// serveFromMemory is serveCached's common case on the edge's own
// connections: a plain answer with a whole blob of the cache, its head
// rendered once per file (asset.renderedFields) instead of set in the
// header map and formatted for every response.
func (e *Edge) serveFromMemory(w *h1.ResponseWriter, r *http.Request, rt *route, a *asset, status int) {
	data, err := e.cachedBlob(e.ctxOf(w, r), a)
	if err != nil {
		e.blobError(w, rt, a, err)
		return
	}
	w.SetFields(a.renderedFields())
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// cachedBlob returns a's blob from the blob cache, reading it from the
// store on a miss.
func (e *Edge) cachedBlob(ctx context.Context, a *asset) ([]byte, error) {
	return e.blobs.get(ctx, a.digest, a.size, func(ctx context.Context) (io.ReadCloser, error) {
		return e.opts.Assets.Open(ctx, a.digest)
	})
}

// blobError answers a request whose blob could not be read.
func (e *Edge) blobError(w http.ResponseWriter, rt *route, a *asset, err error) {
	h := w.Header()
	delete(h, "Etag")
	delete(h, "Cache-Control")
	delete(h, "Content-Encoding")
	delete(h, "Vary")
	if preview.IsNotFound(err) {
		// The manifest changed under us (a newer publish removed the
		// blob); read it again next time.
		rt.assets.Store(nil)
		h1.TextError(w, http.StatusNotFound, "404 not found\n")
		return
	}
	e.log.Warn("edge: opening asset", "digest", a.digest, "err", err)
	h1.TextError(w, http.StatusBadGateway, "502 asset store unavailable\n")
}

// serveCached serves a blob of a store without local files. A blob of at
// most the cache's per-blob cap is read whole (verified against its
// digest) into the blob cache and served from memory, Range requests
// included. A larger blob is streamed from the store on every request and
// not verified: a plain GET copies it; a request with a single Range reads
// through the bytes before the range (a seekable reader seeks instead),
// and a request with several ranges gets the whole blob (200), as RFC 9110
// allows.
func (e *Edge) serveCached(w http.ResponseWriter, r *http.Request, rt *route, a *asset, status int) {
	h := w.Header()
	ctx := e.ctxOf(w, r)
	if e.blobs.cacheable(a.size) {
		data, err := e.cachedBlob(ctx, a)
		if err != nil {
			e.blobError(w, rt, a, err)
			return
		}
		if status == http.StatusOK && needsServeContent(r) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		h["Accept-Ranges"] = hdrAcceptRanges
		h["Content-Length"] = a.contentLength
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(data)
		}
		return
	}
	rc, err := e.opts.Assets.Open(ctx, a.digest)
	if err != nil {
		e.blobError(w, rt, a, err)
		return
	}
	defer rc.Close()
	if status == http.StatusOK && needsServeContent(r) {
		rs, ok := rc.(io.ReadSeeker)
		if !ok {
			rs = &forwardSeeker{r: rc, size: a.size}
			if rg := r.Header["Range"]; len(rg) > 1 || (len(rg) == 1 && strings.Contains(rg[0], ",")) {
				r2 := *r
				r2.Header = r.Header.Clone()
				delete(r2.Header, "Range")
				r = &r2
			}
		}
		http.ServeContent(w, r, "", time.Time{}, rs)
		return
	}
	h["Accept-Ranges"] = hdrAcceptRanges
	h["Content-Length"] = a.contentLength
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	copyBlob(w, rc)
}

// pickVariant returns the precompressed variant of a that the
// Accept-Encoding values accept with the highest q (brotli on a tie), or
// nil for the file itself.
func (a *asset) pickVariant(accept []string) *asset {
	if len(accept) == 0 {
		return nil
	}
	var qbr, qgz float64
	if a.br != nil {
		qbr = acceptQ(accept, "br")
	}
	if a.gz != nil {
		qgz = acceptQ(accept, "gzip")
	}
	switch {
	case qbr > 0 && qbr >= qgz:
		return a.br
	case qgz > 0:
		return a.gz
	}
	return nil
}

// acceptQ returns the q value that Accept-Encoding values give coding
// (RFC 9110 12.5.3): its own entry's, else that of "*", else 0. "x-gzip"
// counts as gzip.
func acceptQ(values []string, coding string) float64 {
	star := -1.0
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			q := 1.0
			for params != "" {
				var p string
				p, params, _ = strings.Cut(params, ";")
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && (k == "q" || k == "Q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch {
			case strings.EqualFold(name, coding) || (coding == "gzip" && strings.EqualFold(name, "x-gzip")):
				return q
			case name == "*":
				star = q
			}
		}
	}
	if star > 0 {
		return star
	}
	return 0
}

// copyBlob copies a blob to the client. net/http's response is an
// io.ReaderFrom that sends an *os.File with sendfile(2); io.Copy would
// prefer the file's WriteTo and lose that.
func copyBlob(w http.ResponseWriter, rc io.Reader) {
	if rf, ok := w.(io.ReaderFrom); ok {
		rf.ReadFrom(rc)
		return
	}
	bp := bodyBufs.Get().(*[]byte)
	io.CopyBuffer(w, struct{ io.Reader }{rc}, *bp)
	bodyBufs.Put(bp)
}

// needsServeContent reports whether the request carries a header that only
// http.ServeContent handles: ranges and the less common preconditions.
func needsServeContent(r *http.Request) bool {
	h := r.Header
	return len(h["Range"]) > 0 || len(h["If-Match"]) > 0 || len(h["If-Unmodified-Since"]) > 0 || len(h["If-Range"]) > 0
}

// etagMatches reports whether an If-None-Match header lists etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if v == "" {
				break
			}
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				return false
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				return false
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

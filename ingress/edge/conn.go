package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Connection takeover. net/http's server spends, per request, a goroutine
// and a read system call on watching the client (its "background read"),
// plus wake-ups of idle threads; on a two-core machine that is most of the
// gap to nginx. So the edge takes an HTTP/1.x keep-alive connection over
// (http.Hijacker) at its first request for a preview host and serves that
// request and the following ones itself in a small loop: requests parsed
// with http.ReadRequest, responses framed by fastResponse, and the client
// watched only when a request takes longer than watchDelay. Requests for
// hosts without a route that arrive on such a connection (a load balancer
// reusing connections across hosts) go to Options.Fallback.
//
// Limits on a taken-over connection, which net/http's server no longer
// enforces: between requests the connection waits at most
// Options.IdleTimeout for the first byte of the next one (then it is
// closed silently); from that byte the header block must arrive within
// Limits.ReadHeaderTimeout (else 408) and fit in Limits.MaxHeaderBytes
// (else 431). Request bodies are bounded per read by the handlers that
// read them (http.ResponseController.SetReadDeadline works here, see
// fastResponse.SetReadDeadline; the proxy applies Limits.BodyReadTimeout),
// and what a handler leaves unread is drained within BodyReadTimeout or
// the connection is closed.

const (
	// watchDelay is how long a request may run before the edge starts
	// watching its client for a disconnect (which cancels the request).
	watchDelay = 100 * time.Millisecond
	// maxDrain is how much of an unread request body is discarded to keep
	// a connection alive.
	maxDrain = 256 << 10
)

var (
	errHeaderTooLarge = errors.New("request header too large")
	errShortBody      = errors.New("response body shorter than its Content-Length")
	errHeaderTimeout  = fmt.Errorf("reading the request header: %w", os.ErrDeadlineExceeded)
)

// fastConn is one taken-over client connection.
type fastConn struct {
	e      *Edge
	c      net.Conn
	br     *bufio.Reader // reads through fc (see Read)
	bw     *bufio.Writer
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState
	res    fastResponse

	// Header size limit: bytes the current header block may still read;
	// negative means no limit (reading a body).
	limit int
	// linger makes the connection close gracefully (see lingeringClose):
	// the client may still be sending a body nobody reads.
	linger bool

	// The watchdog: a timer that starts a background read when a request
	// runs long; the byte it reads (a pipelined request) is kept in
	// peeked and returned first by Read.
	mu       sync.Mutex
	cond     sync.Cond
	watch    *time.Timer
	inReq    bool
	bgActive bool
	peeked   [1]byte
	hasPeek  bool
	gone     atomic.Bool
	idle     atomic.Bool // waiting for the next request
	upstream atomic.Pointer[upConn]

	// Raw socket access (nil for TLS): state of one read or write step.
	raw     rawConn
	rp      []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wp      []byte
	wrote   int
	werr    error
	writeFn func(fd uintptr) bool
}

// takeOver hijacks the connection of r and serves it until it closes.
// ok is false when the connection cannot be taken over; then nothing was
// written and the caller serves r normally.
func (e *Edge) takeOver(w http.ResponseWriter, r *http.Request) (ok bool) {
	hj, isHJ := w.(http.Hijacker)
	if !isHJ {
		return false
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return false
	}
	fc := &fastConn{e: e, c: c, remote: r.RemoteAddr, tls: r.TLS, limit: -1}
	fc.cond.L = &fc.mu
	fc.ctx, fc.cancel = context.WithCancel(context.Background())
	// The server's reader may hold bytes of a pipelined request: read them
	// first, then the connection through fc.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		fc.br = bufio.NewReaderSize(io.MultiReader(strings.NewReader(string(b)), fc), 4096)
	} else {
		fc.br = bufio.NewReaderSize(fc, 4096)
	}
	fc.raw = rawConnOf(c)
	fc.readFn, fc.writeFn = fc.readStep, fc.writeStep
	fc.bw = bufio.NewWriterSize(connWriter{fc}, 4096)
	fc.res.fc = fc
	fc.res.h = make(http.Header, 8)
	fc.res.buf = make([]byte, 0, 2048)
	fc.watch = time.AfterFunc(time.Hour, fc.onWatch)
	fc.watch.Stop()
	// One registration per connection aborts whichever upstream exchange
	// is running when the client goes away (see Edge.proxy).
	context.AfterFunc(fc.ctx, func() {
		if uc := fc.upstream.Swap(nil); uc != nil {
			uc.nc.SetDeadline(longAgo)
		}
	})
	c.SetDeadline(time.Time{})
	if !e.track(fc, true) {
		c.Close()
		return true
	}
	fc.serve(r.WithContext(fc.ctx))
	return true
}

// track adds or removes a taken-over connection; adding fails after Close.
func (e *Edge) track(fc *fastConn, add bool) bool {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if add {
		if e.closed.Load() {
			return false
		}
		if e.conns == nil {
			e.conns = map[*fastConn]struct{}{}
		}
		e.conns[fc] = struct{}{}
		return true
	}
	delete(e.conns, fc)
	return true
}

// Read is the underlying reader of fc.br: the byte a watchdog read, then
// the connection, counted against the header limit.
func (fc *fastConn) Read(p []byte) (int, error) {
	if fc.hasPeek && len(p) > 0 {
		fc.hasPeek = false
		p[0] = fc.peeked[0]
		return 1, nil
	}
	if fc.limit == 0 {
		return 0, errHeaderTooLarge
	}
	if fc.limit > 0 && len(p) > fc.limit {
		p = p[:fc.limit]
	}
	n, err := fc.connRead(p)
	if fc.limit > 0 {
		fc.limit -= n
	}
	return n, err
}

// connRead reads from the connection, with raw system calls where
// possible (see sysRead).
func (fc *fastConn) connRead(p []byte) (int, error) {
	if fc.raw == nil {
		return fc.c.Read(p)
	}
	fc.rp, fc.rn, fc.rerr = p, 0, nil
	err := fc.raw.Read(fc.readFn)
	fc.rp = nil
	if err != nil {
		return 0, err
	}
	if fc.rerr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: fc.rerr}
	}
	if fc.rn == 0 {
		return 0, io.EOF
	}
	return fc.rn, nil
}

// connWriter is the underlying writer of fc.bw.
type connWriter struct{ fc *fastConn }

func (cw connWriter) Write(p []byte) (int, error) {
	fc := cw.fc
	if fc.raw == nil {
		return fc.c.Write(p)
	}
	fc.wp, fc.wrote, fc.werr = p, 0, nil
	err := fc.raw.Write(fc.writeFn)
	n := fc.wrote
	fc.wp = nil
	if err != nil {
		return n, err
	}
	if fc.werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: fc.werr}
	}
	return n, nil
}

func (fc *fastConn) serve(req *http.Request) {
	defer func() {
		fc.watch.Stop()
		fc.cancel()
		if fc.linger {
			fc.lingeringClose()
		}
		fc.c.Close()
		fc.e.track(fc, false)
	}()
	req.RemoteAddr = fc.remote
	req.TLS = fc.tls
	for {
		if !fc.serveOne(req) {
			return
		}
		// Close sets closed and then interrupts idle connections by
		// setting a past deadline: the order here (deadline, idle,
		// closed) means either this loop sees closed or Close sees idle
		// after the deadline below is in place.
		fc.c.SetReadDeadline(time.Now().Add(fc.e.opts.IdleTimeout))
		fc.idle.Store(true)
		if fc.e.closed.Load() {
			return
		}
		next, started, err := fc.nextRequest()
		if err != nil {
			status := ""
			switch {
			case !started, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
				// Idle, closed by the client, or interrupted by Close.
			case isTimeout(err):
				if !fc.e.closed.Load() {
					status = "408 Request Timeout"
				}
			case errors.Is(err, errHeaderTooLarge):
				status = "431 Request Header Fields Too Large"
			case errors.Is(err, errBadVersion):
				status = "505 HTTP Version Not Supported"
			default:
				status = "400 Bad Request"
			}
			if status != "" {
				fc.c.SetWriteDeadline(time.Now().Add(time.Second))
				io.WriteString(fc.c, "HTTP/1.1 "+status+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+status+"\n")
				fc.linger = true
			}
			return
		}
		fc.idle.Store(false)
		fc.c.SetReadDeadline(time.Time{})
		next.RemoteAddr = fc.remote
		next.TLS = fc.tls
		// The request keeps the background context: the edge's handlers
		// use fc.ctx (see Edge.ctxOf), which saves a copy of the request.
		req = next
	}
}

// nextRequest reads the next request: it waits for its first byte until
// the deadline the caller set (the idle timeout), then reads the rest of
// the header block within Limits.ReadHeaderTimeout and at most
// Limits.MaxHeaderBytes of it. started reports whether a byte of the
// request arrived (an error before that is the idle connection ending).
func (fc *fastConn) nextRequest() (req *http.Request, started bool, err error) {
	fc.limit = fc.e.opts.Limits.MaxHeaderBytes
	defer func() { fc.limit = -1 }()
	if _, err := fc.br.Peek(1); err != nil {
		return nil, false, err
	}
	// Most requests arrive whole with their first byte: a deadline is
	// only needed for a header block still incomplete.
	var deadline time.Time
	if buf, _ := fc.br.Peek(fc.br.Buffered()); headerEnd(buf, 0) < 0 {
		deadline = time.Now().Add(fc.e.opts.Limits.ReadHeaderTimeout)
		// See serve for the order with Close's interruption.
		fc.c.SetReadDeadline(deadline)
		if fc.e.closed.Load() {
			return nil, true, net.ErrClosed
		}
	}
	req, err = fc.readRequest()
	if err != nil && !deadline.IsZero() && !time.Now().Before(deadline) {
		// The parser may report the truncated block it was left with
		// rather than the timeout.
		err = errHeaderTimeout
	}
	return req, true, err
}

// lingeringClose half-closes the connection and, for half a second or
// until the client closes, reads (at most 4 MiB of) what it is still
// sending (a body nobody reads), so that closing does not reset the
// connection before the client has read the last response: a reset can
// discard the response from the client's receive buffer. Past 4 MiB it
// stops reading but still waits out the half second (the client's writes
// then block instead of failing), as net/http's server does.
func (fc *fastConn) lingeringClose() {
	if cw, ok := fc.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	until := time.Now().Add(500 * time.Millisecond)
	fc.c.SetReadDeadline(until)
	if n, err := io.Copy(io.Discard, io.LimitReader(fc.c, 4<<20)); err == nil && n == 4<<20 {
		time.Sleep(time.Until(until))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// serveOne serves one request and reports whether the connection may be
// used for another.
func (fc *fastConn) serveOne(req *http.Request) (keep bool) {
	w := &fc.res
	w.reset(req)
	hasBody := req.Body != http.NoBody && req.Body != nil
	if hasBody {
		if exp := req.Header["Expect"]; len(exp) > 0 {
			if !strings.EqualFold(exp[0], "100-continue") {
				w.h["Connection"] = []string{"close"}
				textError(w, http.StatusExpectationFailed, "417 expectation failed\n")
				w.finish()
				return false
			}
			if fc.e.refusesBody(req) {
				// The proxy answers 413 without reading: do not invite
				// the body, and close after the answer.
				w.closeAfter = true
			} else {
				fc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
				fc.bw.Flush()
			}
		}
	}
	watched := req.Body == http.NoBody && fc.br.Buffered() == 0 && !fc.hasPeek
	if watched {
		fc.mu.Lock()
		fc.inReq = true
		fc.mu.Unlock()
		fc.watch.Reset(watchDelay)
	}
	aborted := fc.handle(w, req)
	if watched {
		fc.endWatch()
	}
	if w.hijacked {
		return false
	}
	if aborted || fc.gone.Load() {
		return false
	}
	if err := w.finish(); err != nil {
		fc.linger = hasBody
		return false
	}
	if hasBody {
		if w.closeAfter || req.Close {
			fc.linger = true // whatever is left of the body is not read
			return false
		}
		// Discard what the handler left of the body, within bounds.
		fc.c.SetReadDeadline(time.Now().Add(fc.e.opts.Limits.BodyReadTimeout))
		n, err := io.CopyN(io.Discard, req.Body, maxDrain)
		if err != io.EOF || n >= maxDrain {
			fc.linger = true
			return false
		}
	}
	return !w.closeAfter && !req.Close
}

// handle runs the handler, turning a panic into a broken connection (as
// net/http does; http.ErrAbortHandler is silent).
func (fc *fastConn) handle(w *fastResponse, req *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				fc.e.log.Error("edge: panic serving request", "host", req.Host, "path", req.URL.Path, "panic", p)
			}
		}
	}()
	e := fc.e
	if rt := e.lookup(req.Host); rt != nil {
		e.route(w, req, rt)
	} else if e.opts.Fallback != nil {
		if req.Context() != fc.ctx {
			req = req.WithContext(fc.ctx)
		}
		e.opts.Fallback.ServeHTTP(w, req)
	} else {
		textError(w, http.StatusNotFound, "404 no preview is routed at this host\n")
	}
	return false
}

// onWatch runs when a request has taken watchDelay: it reads from the
// client until the request ends (the read is then interrupted) or the
// client closes or sends the next request.
func (fc *fastConn) onWatch() {
	fc.mu.Lock()
	if !fc.inReq || fc.bgActive {
		fc.mu.Unlock()
		return
	}
	fc.bgActive = true
	fc.mu.Unlock()
	n, err := fc.c.Read(fc.peeked[:])
	fc.mu.Lock()
	if n == 1 {
		fc.hasPeek = true
	} else if err != nil && !isTimeout(err) {
		fc.gone.Store(true)
		fc.cancel() // aborts the upstream exchange
	}
	fc.bgActive = false
	fc.cond.Broadcast()
	fc.mu.Unlock()
}

// endWatch stops the watchdog of the request that just ended and waits
// for its background read to finish.
func (fc *fastConn) endWatch() {
	if fc.watch.Stop() {
		fc.mu.Lock()
		fc.inReq = false
		fc.mu.Unlock()
		return
	}
	fc.mu.Lock()
	fc.inReq = false
	if fc.bgActive {
		fc.c.SetReadDeadline(longAgo)
		for fc.bgActive {
			fc.cond.Wait()
		}
		fc.c.SetReadDeadline(time.Time{})
	}
	fc.mu.Unlock()
}

// fastResponse is the http.ResponseWriter of taken-over connections. The
// response head is held back until the body outgrows a small buffer, is
// flushed, or the handler ends, so short responses get a Content-Length
// and longer ones are chunked, as with net/http.
type fastResponse struct {
	fc  *fastConn
	req *http.Request
	h   http.Header

	status      int
	wroteHeader bool
	committed   bool
	chunked     bool
	head        bool
	noBody      bool
	closeAfter  bool
	hijacked    bool
	buf         []byte
	declared    int64 // the Content-Length sent, -1 if none
	written     int64 // body bytes sent
}

var (
	_ http.Flusher    = (*fastResponse)(nil)
	_ http.Hijacker   = (*fastResponse)(nil)
	_ io.ReaderFrom   = (*fastResponse)(nil)
	_ io.StringWriter = (*fastResponse)(nil)
)

func (w *fastResponse) reset(req *http.Request) {
	clear(w.h)
	w.req = req
	w.status = 0
	w.wroteHeader, w.committed, w.chunked, w.closeAfter, w.hijacked = false, false, false, false, false
	w.head = req.Method == http.MethodHead
	w.noBody = false
	w.buf = w.buf[:0]
	w.declared, w.written = -1, 0
}

func (w *fastResponse) Header() http.Header { return w.h }

// ctxOf returns the context of a request: the taken-over connection's for
// requests on one, else the request's own.
func (e *Edge) ctxOf(w http.ResponseWriter, r *http.Request) context.Context {
	if fr, ok := w.(*fastResponse); ok {
		return fr.fc.ctx
	}
	return r.Context()
}

func (w *fastResponse) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once.
		bw := w.fc.bw
		writeStatusLine(bw, code)
		writeHeaders(bw, w.h)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.status = code
	w.wroteHeader = true
	w.noBody = code == http.StatusNoContent || code == http.StatusNotModified || code < 200
}

func (w *fastResponse) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.head {
		return len(p), nil
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if !w.committed {
		if len(w.buf)+len(p) <= cap(w.buf) {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return w.writeBody(p)
}

func (w *fastResponse) WriteString(s string) (int, error) {
	if !w.committed && !w.head && w.wroteHeader && !w.noBody && len(w.buf)+len(s) <= cap(w.buf) {
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes p as body, chunk-framed when chunked.
func (w *fastResponse) writeBody(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bw := w.fc.bw
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if w.chunked {
		bw.WriteString("\r\n")
	}
	if err != nil {
		w.fc.gone.Store(true)
	}
	return n, err
}

// commit writes the status line and headers, choosing the body framing:
// the handler's Content-Length, else (final) the buffered length, else
// chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
func (w *fastResponse) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.h
	req := w.req
	if len(h["Connection"]) > 0 && headerHasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	hasLength := len(h["Content-Length"]) > 0
	trailers := len(h["Trailer"]) > 0
	if !w.noBody && !hasLength {
		switch {
		case trailers && req.ProtoAtLeast(1, 1) && !w.head:
			w.chunked = true // only a chunked body can carry trailers
		case final && (!w.head || len(w.buf) > 0):
			h["Content-Length"] = []string{strconv.Itoa(len(w.buf))}
		case final:
			// HEAD without a body written: say nothing about its length.
		case req.ProtoAtLeast(1, 1):
			w.chunked = true
		default:
			w.closeAfter = true
		}
	}
	if _, ok := h["Content-Type"]; !ok && !w.noBody && len(w.buf) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.buf)}
	}
	if req.ProtoMajor == 1 && req.ProtoMinor == 0 && !w.closeAfter {
		if headerHasToken(req.Header["Connection"], "keep-alive") && !w.chunked {
			h["Connection"] = []string{"keep-alive"}
		} else {
			w.closeAfter = true
		}
	}
	if (req.Close || w.closeAfter) && len(h["Connection"]) == 0 {
		w.closeAfter = true
		h["Connection"] = []string{"close"}
	}
	if cl := h["Content-Length"]; len(cl) == 1 && !w.noBody && !w.head {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
	bw := w.fc.bw
	writeStatusLine(bw, w.status)
	writeHeaders(bw, h)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.buf) > 0 && !w.head {
		buf := w.buf
		w.buf = w.buf[:0]
		w.writeBody(buf)
	}
}

// finish completes the response: head, buffered body, last chunk and
// trailers, and flushes.
func (w *fastResponse) finish() error {
	if !w.committed {
		w.commit(true)
	}
	if w.declared >= 0 && w.written != w.declared {
		// Fewer bytes than announced: only closing tells the client.
		w.fc.bw.Flush()
		return errShortBody
	}
	bw := w.fc.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vv := range w.h {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok {
				continue
			}
			writeField(bw, name, vv)
		}
		// Trailers declared in the Trailer header and set after the head.
		for _, decl := range w.h["Trailer"] {
			for _, name := range strings.Split(decl, ",") {
				name = http.CanonicalHeaderKey(strings.TrimSpace(name))
				if _, dup := w.h[http.TrailerPrefix+name]; !dup {
					writeField(bw, name, w.h[name])
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		w.fc.gone.Store(true)
		return err
	}
	return nil
}

func (w *fastResponse) Flush() {
	if w.hijacked {
		return
	}
	w.commit(false)
	if err := w.fc.bw.Flush(); err != nil {
		w.fc.gone.Store(true)
	}
}

// ReadFrom sends a body from src, with sendfile(2) when src is a file and
// the length is known.
func (w *fastResponse) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.head || w.noBody || w.hijacked {
		return io.Copy(io.Discard, src)
	}
	w.commit(false)
	if !w.chunked {
		if err := w.fc.bw.Flush(); err != nil {
			w.fc.gone.Store(true)
			return 0, err
		}
		if rf, ok := w.fc.c.(io.ReaderFrom); ok {
			if w.declared >= 0 {
				// One level of LimitedReader, which sendfile still
				// recognises around an *os.File.
				left := w.declared - w.written
				if lr, ok := src.(*io.LimitedReader); ok {
					src = &io.LimitedReader{R: lr.R, N: min(lr.N, left)}
				} else {
					src = &io.LimitedReader{R: src, N: left}
				}
			}
			n, err := rf.ReadFrom(src)
			w.written += n
			if err != nil {
				w.fc.gone.Store(true)
			}
			return n, err
		}
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

type writerOnly struct{ io.Writer }

// SetReadDeadline sets the connection's read deadline: it makes
// http.ResponseController.SetReadDeadline work on taken-over connections,
// as on net/http's, for handlers that bound their body reads. The edge
// sets the deadlines it needs between requests itself.
func (w *fastResponse) SetReadDeadline(t time.Time) error {
	if w.hijacked {
		return http.ErrHijacked
	}
	return w.fc.c.SetReadDeadline(t)
}

// EnableFullDuplex lets http.ResponseController.EnableFullDuplex succeed:
// a taken-over connection already lets a handler read the request body
// while it writes the response.
func (w *fastResponse) EnableFullDuplex() error { return nil }

// Hijack hands the connection to the caller (a WebSocket upgrade).
func (w *fastResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	fc := w.fc
	fc.endWatch()
	if w.committed {
		fc.bw.Flush()
	}
	w.hijacked = true
	return fc.c, bufio.NewReadWriter(fc.br, fc.bw), nil
}

func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

// writeHeaders writes h, skipping trailers and empty (suppressed) fields
// and replacing line breaks in values, as net/http does.
func writeHeaders(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(cleanValue(v))
			bw.WriteString("\r\n")
		}
	}
}

func writeField(bw *bufio.Writer, name string, vv []string) {
	for _, v := range vv {
		bw.WriteString(name)
		bw.WriteString(": ")
		bw.WriteString(cleanValue(v))
		bw.WriteString("\r\n")
	}
}

func cleanValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	return v
}

// httpDate returns the current time in HTTP format, formatted once a
// second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateCache{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateCache struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dateCache]

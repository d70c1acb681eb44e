package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// watchDelay is how long a request may run before the server starts
	// watching its client for a disconnect (which cancels the request).
	watchDelay = 100 * time.Millisecond
	// sweepEvery is how often the sweeper looks at the connections (see
	// Server.sweep): the watch and the idle timeout are that precise.
	sweepEvery = 25 * time.Millisecond
	// maxDrain is how much of an unread request body is discarded to keep
	// a connection alive.
	maxDrain = 256 << 10
)

var (
	errHeaderTooLarge = errors.New("request header too large")
	errShortBody      = errors.New("response body shorter than its Content-Length")
	errHeaderTimeout  = fmt.Errorf("reading the request header: %w", os.ErrDeadlineExceeded)

	// longAgo is a deadline in the past: setting it interrupts a blocked
	// read or write.
	longAgo = time.Unix(1, 0)
)

// Server serves the HTTP/1.x connections it takes over from net/http's
// server (see the package comment for the contract). Set its fields
// before the first TakeOver and do not change them afterwards; the zero
// value of each means what it means for http.Server. It is safe for
// concurrent use.
type Server struct {
	// Handler serves every request on a taken-over connection, the one
	// given to TakeOver included. When it is also a BodyRefuser the
	// server asks it before inviting a body with 100 Continue.
	Handler http.Handler
	// Logger receives handler panics; nil means slog.Default().
	Logger *slog.Logger
	// IdleTimeout is how long a connection waits for the first byte of
	// its next request before it is closed silently (give or take the
	// sweeper's 25 ms); 0 means no limit.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds reading a header block from its first
	// byte (a slower client is answered 408); 0 means no limit.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds discarding what a handler left unread of a
	// request body (past it the connection is closed); 0 means no limit.
	BodyReadTimeout time.Duration
	// MaxHeaderBytes caps a request's header block (a larger one is
	// answered 431); 0 means http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	closed atomic.Bool
	mu     sync.Mutex
	conns  map[*conn]struct{}

	// The sweeper's clock: nanoseconds since epoch, advanced every
	// sweepEvery while there are connections (connections read it
	// instead of the time, which costs a system call on some machines
	// and a timer operation per request to act on).
	epoch    time.Time
	clock    atomic.Int64
	sweeping bool // a sweeper runs (under mu)
}

// BodyRefuser is an optional interface of a Server's Handler.
// RefusesBody reports whether the handler will answer r without reading
// its body (a declared length over its limit, say); for such a request
// with "Expect: 100-continue" the server sends no 100 Continue and closes
// the connection after the answer instead of waiting for a body nobody
// reads. It must not read r's body and must be safe for concurrent use.
type BodyRefuser interface {
	RefusesBody(r *http.Request) bool
}

// after returns the deadline d from now, or none for d <= 0.
func after(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// conn is one taken-over client connection.
type conn struct {
	srv    *Server
	c      net.Conn
	br     *bufio.Reader // reads through fc (see Read)
	bw     *bufio.Writer
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState
	res    ResponseWriter

	// Header size limit: bytes the current header block may still read;
	// negative means no limit (reading a body).
	limit int
	// linger makes the connection close gracefully (see lingeringClose):
	// the client may still be sending a body nobody reads.
	linger bool

	// The watchdog: the sweeper starts a background read when a request
	// has run watchDelay since watchFrom (the clock + 1; 0: not watched);
	// the byte it reads (a pipelined request) is kept in peeked and
	// returned first by Read.
	mu        sync.Mutex
	cond      sync.Cond
	watchFrom atomic.Int64
	inReq     bool
	bgActive  bool
	peeked    [1]byte
	hasPeek   bool
	gone      atomic.Bool
	idle      atomic.Bool // waiting for the next request
	// idleFrom is the clock + 1 when the connection began waiting for
	// its next request's first byte, 0 while it is not, -1 once the
	// sweeper ended the wait (IdleTimeout).
	idleFrom atomic.Int64
	// readDeadline is set when a handler or a body drain may have left a
	// read deadline on the connection, to be cleared before the wait for
	// the next request (which has none: see Server.sweep).
	readDeadline atomic.Bool
	upstream     atomic.Pointer[UpConn]

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
	// gather, when set, is sent right after the bytes of the next
	// connWriter.Write, in the same writev(2) where the socket is raw;
	// gathered is how many of its bytes went out (see writeBody).
	gather   []byte
	gathered int
	wtail    []byte // gather during a raw write step
	writevFn func(fd uintptr) bool
}

// TakeOver hijacks the connection of r and serves r and the
// connection's following requests with s.Handler until the connection
// closes; then it returns true. It returns false, having written nothing,
// when the connection cannot be taken over: w is not an http.Hijacker,
// the hijack fails, or w is the ResponseWriter of a connection already
// taken over (a handler of s calling TakeOver again). The caller then
// serves r itself. After Close, TakeOver closes the hijacked connection at
// once and returns true. The caller checks that r suits a takeover
// (HTTP/1.x, no body, no Upgrade).
func (s *Server) TakeOver(w http.ResponseWriter, r *http.Request) (ok bool) {
	if _, nested := w.(*ResponseWriter); nested {
		return false
	}
	hj, isHJ := w.(http.Hijacker)
	if !isHJ {
		return false
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return false
	}
	fc := &conn{srv: s, c: c, remote: r.RemoteAddr, tls: r.TLS, limit: -1}
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
	fc.readFn, fc.writeFn, fc.writevFn = fc.readStep, fc.writeStep, fc.writevStep
	fc.bw = bufio.NewWriterSize(connWriter{fc}, 4096)
	fc.res.fc = fc
	fc.res.h = make(http.Header, 8)
	fc.res.buf = make([]byte, 0, 2048)
	// One registration per connection aborts whichever upstream exchange
	// is running when the client goes away (see ResponseWriter.BindUpstream).
	context.AfterFunc(fc.ctx, func() {
		if uc := fc.upstream.Swap(nil); uc != nil {
			uc.Abort()
		}
	})
	c.SetDeadline(time.Time{})
	if !s.track(fc, true) {
		c.Close()
		return true
	}
	fc.serve(r.WithContext(fc.ctx))
	return true
}

// track adds or removes a taken-over connection; adding fails after
// Close. Adding the first connection starts the sweeper.
func (s *Server) track(fc *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed.Load() {
			return false
		}
		if s.conns == nil {
			s.conns = map[*conn]struct{}{}
			s.epoch = time.Now()
		}
		s.conns[fc] = struct{}{}
		if !s.sweeping {
			s.sweeping = true
			s.tick()
			go s.sweep()
		}
		return true
	}
	delete(s.conns, fc)
	return true
}

// tick advances the clock to now and returns it.
func (s *Server) tick() int64 {
	now := int64(time.Since(s.epoch))
	s.clock.Store(now)
	return now
}

// now is the clock plus 1 (so that it is never 0): at most sweepEvery
// behind the time while there are connections.
func (s *Server) now() int64 { return s.clock.Load() + 1 }

// sweep runs while there are connections: every sweepEvery it advances
// the clock, starts the watch of requests that have run watchDelay and
// ends the wait of connections idle for IdleTimeout. It replaces a timer
// per connection and two deadline changes per request with an atomic
// store or two.
func (s *Server) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for range t.C {
		s.mu.Lock()
		if len(s.conns) == 0 {
			s.sweeping = false
			s.mu.Unlock()
			return
		}
		now := s.tick() + 1
		for fc := range s.conns {
			if v := fc.watchFrom.Load(); v != 0 && now-v >= int64(watchDelay) && fc.watchFrom.CompareAndSwap(v, 0) {
				go fc.onWatch()
			}
			if v := fc.idleFrom.Load(); v > 0 && s.IdleTimeout > 0 && now-v >= int64(s.IdleTimeout) && fc.idleFrom.CompareAndSwap(v, -1) {
				fc.c.SetReadDeadline(longAgo) // the wait in nextRequest ends
			}
		}
		s.mu.Unlock()
	}
}

// Conns returns how many taken-over connections are open.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close closes the taken-over connections: idle ones at once, busy ones
// when their current response is complete (a request still reading its
// header block is interrupted). Later TakeOvers close their connection at
// once. Close does not wait; it is idempotent. http.Server.Shutdown does
// not know these connections (they are hijacked): call Close after it.
func (s *Server) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		if fc.idle.Load() {
			fc.c.SetReadDeadline(longAgo)
		}
	}
}

// Read is the underlying reader of fc.br: the byte a watchdog read, then
// the connection, counted against the header limit.
func (fc *conn) Read(p []byte) (int, error) {
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
func (fc *conn) connRead(p []byte) (int, error) {
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
type connWriter struct{ fc *conn }

func (cw connWriter) Write(p []byte) (int, error) {
	fc := cw.fc
	tail := fc.gather
	fc.gather, fc.gathered = nil, 0
	if fc.raw == nil {
		n, err := fc.c.Write(p)
		if err == nil && len(tail) > 0 {
			fc.gathered, err = fc.c.Write(tail)
		}
		return n, err
	}
	fc.wp, fc.wtail, fc.wrote, fc.werr = p, tail, 0, nil
	fn := fc.writeFn
	if len(tail) > 0 {
		fn = fc.writevFn
	}
	err := fc.raw.Write(fn)
	n := fc.wrote
	fc.wp, fc.wtail = nil, nil
	if n > len(p) {
		n, fc.gathered = len(p), n-len(p)
	}
	if err != nil {
		return n, err
	}
	if fc.werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Err: fc.werr}
	}
	return n, nil
}

func (fc *conn) serve(req *http.Request) {
	defer func() {
		fc.watchFrom.Store(0)
		fc.cancel()
		if fc.linger {
			fc.lingeringClose()
		}
		fc.c.Close()
		fc.srv.track(fc, false)
	}()
	req.RemoteAddr = fc.remote
	req.TLS = fc.tls
	for {
		if !fc.serveOne(req) {
			return
		}
		// Close sets closed and then interrupts idle connections by
		// setting a past deadline: the order here (idle, closed) means
		// either this loop sees closed or Close sees idle. The sweeper
		// ends the wait after IdleTimeout (idleFrom).
		if fc.readDeadline.Swap(false) {
			fc.c.SetReadDeadline(time.Time{})
		}
		fc.idleFrom.Store(fc.srv.now())
		fc.idle.Store(true)
		if fc.srv.closed.Load() {
			return
		}
		next, started, err := fc.nextRequest()
		if err != nil {
			status := ""
			switch {
			case !started, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
				// Idle, closed by the client, or interrupted by Close.
			case isTimeout(err):
				if !fc.srv.closed.Load() {
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
		if fc.srv.closed.Load() {
			// Close may have interrupted the wait as the request came:
			// clear its deadline once its loop (under mu) is done, so
			// that this last request's body reads work.
			fc.srv.mu.Lock()
			fc.c.SetReadDeadline(time.Time{})
			fc.srv.mu.Unlock()
		}
		next.RemoteAddr = fc.remote
		next.TLS = fc.tls
		// The request keeps the background context: handlers use fc.ctx
		// (see ResponseWriter.Context), which saves a copy of the request.
		req = next
	}
}

// nextRequest reads the next request: it waits for its first byte until
// the sweeper ends the wait (IdleTimeout) or Close interrupts it, then reads the rest of
// the header block within Server.ReadHeaderTimeout and at most
// Server.MaxHeaderBytes of it. started reports whether a byte of the
// request arrived (an error before that is the idle connection ending).
func (fc *conn) nextRequest() (req *http.Request, started bool, err error) {
	fc.limit = fc.srv.MaxHeaderBytes
	if fc.limit <= 0 {
		fc.limit = http.DefaultMaxHeaderBytes
	}
	defer func() { fc.limit = -1 }()
	_, err = fc.br.Peek(1)
	if fc.idleFrom.Swap(0) < 0 {
		// The sweeper ended the wait (IdleTimeout), perhaps as the
		// first byte came: close, as at any idle timeout.
		return nil, false, os.ErrDeadlineExceeded
	}
	if err != nil {
		return nil, false, err
	}
	// Most requests arrive whole with their first byte: a deadline is
	// only needed for a header block still incomplete.
	var deadline time.Time
	if buf, _ := fc.br.Peek(fc.br.Buffered()); HeaderEnd(buf, 0) < 0 {
		deadline = after(fc.srv.ReadHeaderTimeout)
		// See serve for the order with Close's interruption.
		fc.c.SetReadDeadline(deadline)
		if fc.srv.closed.Load() {
			return nil, true, net.ErrClosed
		}
	}
	req, err = fc.readRequest()
	if !deadline.IsZero() {
		if err != nil && !time.Now().Before(deadline) {
			// The parser may report the truncated block it was left
			// with rather than the timeout.
			err = errHeaderTimeout
		}
		fc.c.SetReadDeadline(time.Time{})
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
func (fc *conn) lingeringClose() {
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
func (fc *conn) serveOne(req *http.Request) (keep bool) {
	w := &fc.res
	w.reset(req)
	hasBody := req.Body != http.NoBody && req.Body != nil
	if hasBody {
		if exp := req.Header["Expect"]; len(exp) > 0 {
			if !strings.EqualFold(exp[0], "100-continue") {
				w.h["Connection"] = []string{"close"}
				TextError(w, http.StatusExpectationFailed, "417 expectation failed\n")
				w.finish()
				return false
			}
			if br, ok := fc.srv.Handler.(BodyRefuser); ok && br.RefusesBody(req) {
				// The handler answers without reading: do not invite
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
		fc.watchFrom.Store(fc.srv.now())
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
		fc.readDeadline.Store(true)
		fc.c.SetReadDeadline(after(fc.srv.BodyReadTimeout))
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
func (fc *conn) handle(w *ResponseWriter, req *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				fc.srv.logger().Error("edge: panic serving request", "host", req.Host, "path", req.URL.Path, "panic", p)
			}
		}
	}()
	fc.srv.Handler.ServeHTTP(w, req)
	return false
}

// onWatch runs (on a goroutine of its own) when a request has taken
// watchDelay: it reads from the client until the request ends (the read
// is then interrupted) or the client closes or sends the next request.
func (fc *conn) onWatch() {
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
// It always looks for a running read under the lock: a watch the sweeper
// started just as the request ended may find the connection's next
// request in progress and watch it instead (early, which is harmless);
// that request's endWatch then ends the read before the connection reads
// on, so the two reads never race for the client's bytes.
func (fc *conn) endWatch() {
	fc.watchFrom.Store(0)
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

// ResponseWriter is the http.ResponseWriter of taken-over connections.
// The response head is held back until the body outgrows a small buffer,
// is flushed, or the handler ends, so short responses get a
// Content-Length and longer ones are chunked, as with net/http. Besides
// http.ResponseWriter it is an http.Flusher, an http.Hijacker, an
// io.ReaderFrom (sendfile(2) for a file of known length) and an
// io.StringWriter, and it answers http.ResponseController's
// SetReadDeadline and EnableFullDuplex. Like net/http's, it belongs to
// the handler's goroutine: only a body read may run alongside a write.
type ResponseWriter struct {
	fc  *conn
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
	fields      *Fields
}

var (
	_ http.Flusher    = (*ResponseWriter)(nil)
	_ http.Hijacker   = (*ResponseWriter)(nil)
	_ io.ReaderFrom   = (*ResponseWriter)(nil)
	_ io.StringWriter = (*ResponseWriter)(nil)
)

func (w *ResponseWriter) reset(req *http.Request) {
	clear(w.h)
	w.req = req
	w.status = 0
	w.wroteHeader, w.committed, w.chunked, w.closeAfter, w.hijacked = false, false, false, false, false
	w.head = req.Method == http.MethodHead
	w.noBody = false
	w.buf = w.buf[:0]
	w.declared, w.written = -1, 0
	w.fields = nil
}

// SetFields adds f's header fields to the response's head, after those of
// Header(): for a handler that answers many requests with the same fields
// (rendered once by NewFields instead of formatted from the map on every
// response). A Content-Length or Content-Type in f counts as set, for the
// framing and sniffing rules (and is sent as it is, also with a 204 or
// 304); a field must not be in both f and Header(),
// or it is sent twice. A later call replaces f; after the head is sent
// it has no effect.
func (w *ResponseWriter) SetFields(f *Fields) { w.fields = f }

// Header returns the response header map, as http.ResponseWriter says.
func (w *ResponseWriter) Header() http.Header { return w.h }

// Context returns the connection's context: canceled when the client
// goes away (noticed once a request has run watchDelay, see the package
// comment) or the connection ends. Use it instead of the request's
// context, which for requests after the first is context.Background().
func (w *ResponseWriter) Context() context.Context { return w.fc.ctx }

// CloseAfter makes the connection close after the current response, with
// a lingering close: for a request whose body the handler stopped
// reading, which the client may still be sending.
func (w *ResponseWriter) CloseAfter() {
	w.fc.linger = true
	w.closeAfter = true
}

// BindUpstream makes a client that goes away abort uc (UpConn.Abort)
// until UnbindUpstream: one registration per connection instead of a
// context.AfterFunc per request. One upstream connection is bound at a
// time; binding replaces the previous one.
func (w *ResponseWriter) BindUpstream(uc *UpConn) { w.fc.upstream.Store(uc) }

// UnbindUpstream ends BindUpstream and reports whether the bound
// connection is intact: false when the client went away and it was
// aborted (it must then be closed, not reused).
func (w *ResponseWriter) UnbindUpstream() (intact bool) { return w.fc.upstream.Swap(nil) != nil }

// Status is the status of the response so far: the one WriteHeader
// recorded, 0 when none was (the response will be 200 once written).
func (w *ResponseWriter) Status() int { return w.status }

// WriteHeader records the status; an informational status (1xx but
// 101) is written at once with the current header and may precede the
// final one. Later calls are ignored.
func (w *ResponseWriter) WriteHeader(code int) {
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

// Write writes body bytes, buffered until the buffer is full (see the
// type's comment). It fails with http.ErrHijacked, http.ErrBodyNotAllowed
// (204, 304) or http.ErrContentLength (more than a declared length).
func (w *ResponseWriter) Write(p []byte) (int, error) {
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

// WriteString is Write without converting s while it fits the buffer.
func (w *ResponseWriter) WriteString(s string) (int, error) {
	if !w.committed && !w.head && w.wroteHeader && !w.noBody && len(w.buf)+len(s) <= cap(w.buf) {
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes p as body, chunk-framed when chunked.
func (w *ResponseWriter) writeBody(p []byte) (int, error) {
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
	} else if k := bw.Available(); bw.Buffered() > 0 && len(p) > k {
		// The buffered head (or body) and p leave in one writev instead
		// of a buffer flush and a second write: one system call and one
		// TCP segment fewer for every response of more than the buffer
		// (a 10 KB static file, say).
		bw.Write(p[:k]) // fills the buffer, writes nothing
		w.fc.gather = p[k:]
		err := bw.Flush()
		n := k + w.fc.gathered
		w.fc.gather, w.fc.gathered = nil, 0
		if err != nil {
			n = 0 // unknown; the connection is closed, not reused
			w.fc.gone.Store(true)
		}
		w.written += int64(n)
		return n, err
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
func (w *ResponseWriter) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.h
	req := w.req
	if len(h["Connection"]) > 0 && HasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	f := w.fields
	if f == nil {
		f = &noFields
	}
	hasLength := len(h["Content-Length"]) > 0 || f.contentLength >= 0
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
	if _, ok := h["Content-Type"]; !ok && !f.contentType && !w.noBody && len(w.buf) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.buf)}
	}
	if req.ProtoMajor == 1 && req.ProtoMinor == 0 && !w.closeAfter {
		if HasToken(req.Header["Connection"], "keep-alive") && !w.chunked {
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
	} else if len(cl) == 0 && f.contentLength >= 0 && !w.noBody && !w.head {
		w.declared = f.contentLength
	}
	bw := w.fc.bw
	writeStatusLine(bw, w.status)
	writeHeaders(bw, h)
	bw.WriteString(f.block)
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
func (w *ResponseWriter) finish() error {
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

// Flush sends the head (choosing the framing as if more body followed)
// and everything buffered.
func (w *ResponseWriter) Flush() {
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
func (w *ResponseWriter) ReadFrom(src io.Reader) (int64, error) {
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
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

type writerOnly struct{ io.Writer }

// SetReadDeadline sets the connection's read deadline: it makes
// http.ResponseController.SetReadDeadline work on taken-over connections,
// as on net/http's, for handlers that bound their body reads. The server
// sets the deadlines it needs between requests itself.
func (w *ResponseWriter) SetReadDeadline(t time.Time) error {
	if w.hijacked {
		return http.ErrHijacked
	}
	w.fc.readDeadline.Store(true)
	return w.fc.c.SetReadDeadline(t)
}

// EnableFullDuplex lets http.ResponseController.EnableFullDuplex succeed:
// a taken-over connection already lets a handler read the request body
// while it writes the response.
func (w *ResponseWriter) EnableFullDuplex() error { return nil }

// Hijack hands the connection to the caller (a WebSocket upgrade).
func (w *ResponseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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

// Fields is a block of response header fields rendered once (NewFields)
// and sent with many responses (ResponseWriter.SetFields). It is
// immutable and safe for concurrent use.
type Fields struct {
	block         string // "Name: value\r\n" lines
	contentLength int64  // its Content-Length, -1 if none
	contentType   bool   // it has a Content-Type
}

var noFields = Fields{contentLength: -1}

// NewFields renders h as writing it with a response would: trailers and
// fields without values left out, line breaks in values replaced. The
// per-response fields (Connection, Date, Transfer-Encoding, Trailer) are
// left out too, since the server writes those for each response. A
// Content-Length that is not one non-negative number is left out.
func NewFields(h http.Header) *Fields {
	f := &Fields{contentLength: -1}
	var b strings.Builder
	for k, vv := range h {
		switch k {
		case "Connection", "Date", "Transfer-Encoding", "Trailer":
			continue
		case "Content-Length":
			n, err := strconv.ParseInt(firstOf(vv), 10, 64)
			if len(vv) != 1 || err != nil || n < 0 {
				continue
			}
			f.contentLength = n
		case "Content-Type":
			f.contentType = len(vv) > 0
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		writeField(&b, k, vv)
	}
	f.block = b.String()
	return f
}

func firstOf(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

func writeStatusLine(bw *bufio.Writer, code int) {
	switch code {
	case http.StatusOK:
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	case http.StatusNotModified:
		bw.WriteString("HTTP/1.1 304 Not Modified\r\n")
		return
	}
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
		writeField(bw, k, vv)
	}
}

// writeField writes one "name: value" line per value, line breaks in
// values replaced.
func writeField[W io.StringWriter](w W, name string, vv []string) {
	for _, v := range vv {
		w.WriteString(name)
		w.WriteString(": ")
		w.WriteString(cleanValue(v))
		w.WriteString("\r\n")
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

// copyBufs are the copy buffers of ReadFrom without sendfile.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

var (
	hdrTextPlain = []string{"text/plain; charset=utf-8"}
	hdrNosniff   = []string{"nosniff"}
	hdrNoStore   = []string{"no-store"}
)

// TextError writes a short plain-text error (Content-Type text/plain,
// nosniff, no-store) to any http.ResponseWriter, without allocating on a
// ResponseWriter of this package.
func TextError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h["Content-Type"] = hdrTextPlain
	h["X-Content-Type-Options"] = hdrNosniff
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(code)
	if wr, ok := w.(interface{ WriteString(string) (int, error) }); ok {
		wr.WriteString(msg)
		return
	}
	w.Write([]byte(msg))
}

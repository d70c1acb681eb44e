// Package limits bounds what one client can make a server hold: a cap on
// the connections open at once (Listener), and a per-read timeout and a
// size cap on request bodies (Body, Handler). Header timeouts and idle
// timeouts are http.Server's (and the edge's, on connections it takes
// over); this package covers what net/http has no per-read setting for.
package limits

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors a Body returns instead of the underlying reader's.
var (
	// ErrBodyTooLarge: the body is longer than the Body's limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrBodyTimeout: the client sent nothing for the Body's timeout.
	ErrBodyTimeout = errors.New("request body timed out")
	// ErrBodyStopped: Stop interrupted the read.
	ErrBodyStopped = errors.New("request body reading stopped")
)

// longAgo is a deadline in the past: it interrupts a read in progress.
var longAgo = time.Unix(1, 0)

// Body is a request body read with a timeout per read and a size cap.
// Before each Read it moves the connection's read deadline (through
// http.ResponseController, which net/http's and the edge's response
// writers support; elsewhere there is no timeout) to timeout from now, so
// a client that keeps sending is never cut off however long the body,
// while one that stalls is (as nginx's client_body_timeout). It returns
// ErrBodyTooLarge once more than max bytes arrived (max < 0: no cap),
// ErrBodyTimeout after a stall, and io.EOF at the end.
//
// Read may run on another goroutine than the handler (a proxy streaming
// the body), one Read at a time; Stop and Release may be called
// concurrently with it. Release must be called before the handler
// returns: it leaves the connection's read deadline as the server should
// find it (see Release).
type Body struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	left    int64 // bytes still allowed; < 0: no cap

	mu       sync.Mutex
	done     bool // Release was called: deadlines are left alone
	deadline bool // a deadline was set and must be cleared
	eof      bool // the body was read to its end
	stopped  atomic.Bool
	failure  atomic.Int32 // failTooLarge, failTimeout
	n        atomic.Int64
}

const (
	failTooLarge = 1
	failTimeout  = 2
)

// NewBody returns body read with timeout per read (0: none) and at most
// max bytes (< 0: no cap). w is the request's ResponseWriter, through
// which the read deadline is set.
func NewBody(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration, max int64) *Body {
	b := &Body{body: body, timeout: timeout, left: max}
	if timeout > 0 {
		b.rc = http.NewResponseController(w)
	}
	return b
}

// Read reads from the body; see Body for its errors.
func (b *Body) Read(p []byte) (int, error) {
	if b.stopped.Load() {
		return 0, ErrBodyStopped
	}
	if b.left == 0 {
		// At the cap: the body may still end here. Look one byte on.
		var one [1]byte
		n, err := b.read(one[:])
		if n > 0 {
			b.failure.Store(failTooLarge)
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	b.n.Add(int64(n))
	return n, err
}

func (b *Body) read(p []byte) (int, error) {
	var until time.Time
	if b.rc != nil {
		b.mu.Lock()
		if !b.done {
			until = time.Now().Add(b.timeout)
			if b.rc.SetReadDeadline(until) == nil {
				b.deadline = true
			}
		}
		b.mu.Unlock()
	}
	n, err := b.body.Read(p)
	switch {
	case err == nil || err == io.EOF:
		if err == io.EOF {
			b.clear()
		}
	case isTimeout(err) && !until.IsZero() && !time.Now().Before(until):
		// Our deadline passed (even if Stop came too, meanwhile).
		b.failure.Store(failTimeout)
		err = ErrBodyTimeout
	case b.stopped.Load():
		err = ErrBodyStopped
	case isTimeout(err):
		b.failure.Store(failTimeout)
		err = ErrBodyTimeout
	}
	return n, err
}

// clear removes the deadline once the body has ended, before net/http
// starts its own background read of the connection.
func (b *Body) clear() {
	if b.rc == nil {
		return
	}
	b.mu.Lock()
	b.eof = true
	if b.deadline && !b.done {
		b.rc.SetReadDeadline(time.Time{})
		b.deadline = false
	}
	b.mu.Unlock()
}

// Close closes the underlying body.
func (b *Body) Close() error { return b.body.Close() }

// Stop interrupts a Read in progress (it returns ErrBodyStopped) and makes
// later ones fail. The connection keeps a past read deadline until
// Release. A body already read to its end is left alone: net/http reads
// the connection itself from then on, and a failed read would make it
// drop the connection.
func (b *Body) Stop() {
	b.stopped.Store(true)
	if b.rc == nil {
		return
	}
	b.mu.Lock()
	if !b.done && !b.eof {
		if b.rc.SetReadDeadline(longAgo) == nil {
			b.deadline = true
		}
	}
	b.mu.Unlock()
}

// Release leaves the connection's read deadline as the server should
// find it after the handler, and leaves the deadlines alone from then on.
// Call it before the handler returns (a Read running on after it fails or
// sees the deadline the server sets next). A body read to its end: no
// deadline. A body left unread (the handler answered without it, or Stop
// was called): a deadline timeout from now, which bounds the server's
// discarding of the rest (net/http reads up to 256 KiB of it, with no
// deadline of its own when it has no ReadTimeout). A stalled body: its
// expired deadline stays, so that discarding fails at once and the
// connection is closed.
func (b *Body) Release() {
	if b.rc == nil {
		return
	}
	b.mu.Lock()
	if !b.done {
		switch {
		case b.TimedOut():
		case !b.eof:
			b.rc.SetReadDeadline(time.Now().Add(b.timeout))
		case b.deadline:
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	b.done = true
	b.mu.Unlock()
}

// TooLarge reports whether a Read failed with ErrBodyTooLarge.
func (b *Body) TooLarge() bool { return b.failure.Load() == failTooLarge }

// TimedOut reports whether a Read failed with ErrBodyTimeout.
func (b *Body) TimedOut() bool { return b.failure.Load() == failTimeout }

// BytesRead is the number of body bytes returned so far.
func (b *Body) BytesRead() int64 { return b.n.Load() }

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TooLargeText is the one-line body of a 413 answer for a limit of max
// bytes.
func TooLargeText(max int64) string {
	return "413 request body larger than the limit of " + strconv.FormatInt(max, 10) + " bytes\n"
}

// TimeoutText is the one-line body of a 408 answer to a stalled body.
const TimeoutText = "408 the request body stopped arriving\n"

// Handler wraps next so that every request body is read through a Body
// with timeout per read and a cap of max bytes: a declared length over max
// is answered 413 without calling next; a body that turns out longer, or
// stalls, makes any 5xx answer of next (a proxy's "bad gateway", say) a 413
// or a 408 with a one-line text body instead, and the connection is
// closed after it. Requests without a body pass as they are.
func Handler(next http.Handler, timeout time.Duration, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if max >= 0 && r.ContentLength > max {
			w.Header().Set("Connection", "close")
			Error(w, http.StatusRequestEntityTooLarge, TooLargeText(max))
			return
		}
		b := NewBody(w, r.Body, timeout, max)
		defer b.Release()
		r2 := *r
		r2.Body = b
		next.ServeHTTP(&clientErrorWriter{ResponseWriter: w, b: b, max: max}, &r2)
	})
}

// Error writes a short plain-text answer: code and the one line msg.
func Error(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

// clientErrorWriter turns a handler's 5xx into 413 or 408 when the request
// body failed because of the client.
type clientErrorWriter struct {
	http.ResponseWriter
	b       *Body
	max     int64
	replace bool // the answer was replaced: drop the handler's body
}

func (cw *clientErrorWriter) WriteHeader(code int) {
	if code >= 500 && (cw.b.TooLarge() || cw.b.TimedOut()) {
		cw.replace = true
		h := cw.ResponseWriter.Header()
		clear(h)
		h.Set("Connection", "close")
		if cw.b.TooLarge() {
			Error(cw.ResponseWriter, http.StatusRequestEntityTooLarge, TooLargeText(cw.max))
		} else {
			Error(cw.ResponseWriter, http.StatusRequestTimeout, TimeoutText)
		}
		return
	}
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *clientErrorWriter) Write(p []byte) (int, error) {
	if cw.replace {
		return len(p), nil
	}
	return cw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (cw *clientErrorWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// Flush passes flushes on (httputil.ReverseProxy streams through it).
func (cw *clientErrorWriter) Flush() {
	if f, ok := cw.ResponseWriter.(http.Flusher); ok && !cw.replace {
		f.Flush()
	}
}

// Listener returns ln limited to max connections open at once (max <= 0:
// ln itself). At the cap, Accept waits until an accepted connection is
// closed, so connections queue in the kernel's backlog instead of costing
// a descriptor and goroutines each; with idle and header timeouts in place
// slots free up by themselves. Accepted TCP connections stay usable as
// *net.TCPConn's capabilities (syscall.Conn, io.ReaderFrom, CloseWrite)
// through embedding, so raw socket access and sendfile keep working.
func Listener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &listener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

type listener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	release := func() { <-l.sem }
	if tc, ok := c.(*net.TCPConn); ok {
		return &tcpConn{TCPConn: tc, release: release}, nil
	}
	return &conn{Conn: c, release: release}, nil
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// tcpConn is an accepted TCP connection that frees its slot on Close.
type tcpConn struct {
	*net.TCPConn
	release func()
	once    sync.Once
}

func (c *tcpConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.release)
	return err
}

// conn is any other accepted connection that frees its slot on Close.
type conn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

var _ syscall.Conn = (*tcpConn)(nil)

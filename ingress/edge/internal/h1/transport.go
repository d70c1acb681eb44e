package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// Buffer sizes of an upstream connection. The read buffer holds a whole
// response header block (the edge refuses a larger one with 502, as nginx
// does past its proxy_buffer_size of 4 or 8 KiB) and is the copy buffer of
// response bodies.
const (
	upReadBufSize  = 16 << 10
	upWriteBufSize = 4 << 10
)

// Transport keeps idle HTTP/1.1 connections to upstream addresses for a
// proxy that writes requests and reads responses itself. Unlike net/http's
// Transport it runs no goroutines per connection: the handler goroutine
// writes the request and reads the response, which saves two goroutine
// hand-offs per request. It knows nothing of HTTP beyond connections: the
// caller frames requests and responses and Puts a connection back only
// when its last response was read completely. It is safe for concurrent
// use; an UpConn belongs to one goroutine at a time (between Get and Put),
// except for Abort and AbortWrite, which any goroutine may call.
type Transport struct {
	dialer      net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.RWMutex
	pools  map[string]*connPool
	timer  *time.Timer
	closed bool
}

// connPool is the idle connections to one address, most recently used
// last (LIFO keeps a few connections warm instead of many lukewarm).
type connPool struct {
	mu      sync.Mutex
	idle    []*UpConn
	removed bool
}

// UpConn is one upstream connection with its buffered Reader and
// Writer. Both go through the UpConn itself (see read and write), which
// lets a request without a body be written by the same poller call that
// waits for its response (see DeferWrites): one system call fewer per
// request than write, read (EAGAIN), wait, read.
type UpConn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	pool     *connPool
	lastUsed time.Time

	// deferWrites makes write collect bytes in pending instead of sending
	// them; the next read sends them first.
	deferWrites bool
	pending     []byte
	raw         rawConn // nil where the combined write+read is unsupported

	// State of one combined write+read (see rawStep).
	out    []byte
	rp     []byte
	rn     int
	rerr   error
	wrote  int
	werr   error
	stepFn func(fd uintptr) bool
}

// upReader and upWriter are the underlying reader and writer of an
// UpConn's buffers.
type (
	upReader struct{ c *UpConn }
	upWriter struct{ c *UpConn }
)

func (r upReader) Read(p []byte) (int, error)  { return r.c.read(p) }
func (w upWriter) Write(p []byte) (int, error) { return w.c.write(p) }

// Conn returns the network connection, for deadlines and raw copies (an
// upgraded connection); reads and writes of HTTP messages go through
// Reader and Writer.
func (c *UpConn) Conn() net.Conn { return c.nc }

// Reader returns the buffered reader of responses. Its buffer holds a
// whole response header block (a larger one is the caller's to refuse) and
// serves as the copy buffer of response bodies.
func (c *UpConn) Reader() *bufio.Reader { return c.br }

// Writer returns the buffered writer of requests.
func (c *UpConn) Writer() *bufio.Writer { return c.bw }

// DeferWrites, while on, keeps what Writer flushes in memory and sends it
// with the next read from Reader, in one poller call with the wait for the
// answer where the platform allows: for a request without a body, whose
// response cannot start before the request is complete. Turn it off
// before writing a body that must go out as it is flushed.
func (c *UpConn) DeferWrites(on bool) { c.deferWrites = on }

// Abort interrupts any read or write in progress on the connection and
// makes later ones fail: for a client that went away. An aborted
// connection is closed, never Put back. Safe from any goroutine.
func (c *UpConn) Abort() { c.nc.SetDeadline(longAgo) }

// AbortWrite interrupts a write in progress (a request body still being
// sent) and makes later writes fail; reads go on, so the response can
// still be read. Such a connection is closed, never Put back. Safe from
// any goroutine.
func (c *UpConn) AbortWrite() { c.nc.SetWriteDeadline(longAgo) }

// Close closes the connection; it is not Put back.
func (c *UpConn) Close() error { return c.nc.Close() }

// write is bw's underlying writer.
func (c *UpConn) write(p []byte) (int, error) {
	if c.deferWrites {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	return c.nc.Write(p)
}

// read is br's underlying reader. With pending bytes it sends them and
// then reads, in one poller call where possible.
func (c *UpConn) read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.nc.Read(p)
	}
	pending := c.pending
	c.pending = c.pending[:0] // the bytes stay valid until the next Write
	if c.raw != nil {
		c.out, c.rp, c.rn, c.rerr, c.wrote, c.werr = pending, p, 0, nil, 0, nil
		err := c.raw.Read(c.stepFn)
		c.out, c.rp = nil, nil
		if err != nil {
			return 0, err
		}
		if c.werr != nil && !isAgain(c.werr) {
			return 0, &net.OpError{Op: "write", Net: "tcp", Err: c.werr}
		}
		if c.wrote == len(pending) {
			if c.rerr != nil {
				return c.rn, &net.OpError{Op: "read", Net: "tcp", Err: c.rerr}
			}
			if c.rn == 0 {
				return 0, io.EOF
			}
			return c.rn, nil
		}
		pending = pending[c.wrote:] // the socket buffer was full: finish below
	}
	if _, err := c.nc.Write(pending); err != nil {
		return 0, err
	}
	return c.nc.Read(p)
}

// NewTransport returns a Transport that keeps at most maxIdle idle
// connections per address, closes those idle longer than idleTimeout (a
// sweep every idleTimeout/2) and bounds a dial by dialTimeout. All three
// must be positive. Close stops it.
func NewTransport(maxIdle int, idleTimeout, dialTimeout time.Duration) *Transport {
	t := &Transport{
		dialer:      net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		pools:       map[string]*connPool{},
	}
	t.timer = time.AfterFunc(idleTimeout/2, t.sweep)
	return t
}

func (t *Transport) pool(addr string) *connPool {
	t.mu.RLock()
	p := t.pools[addr]
	t.mu.RUnlock()
	if p != nil {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return &connPool{removed: true}
	}
	if p = t.pools[addr]; p == nil {
		p = &connPool{}
		t.pools[addr] = p
	}
	return p
}

// Get returns an idle connection to addr (reused true), most recently
// used first, or dials one (reused false). With checkAlive, idle
// connections the upstream has closed meanwhile are skipped (one
// non-blocking peek each): for requests that cannot be retried on a fresh
// connection. A reused connection may still turn out closed when written
// to; the caller decides whether to retry. After Close, Get still dials,
// and Put closes what it dialed.
func (t *Transport) Get(ctx context.Context, addr string, checkAlive bool) (c *UpConn, reused bool, err error) {
	p := t.pool(addr)
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !checkAlive || c.alive() {
			return c, true, nil
		}
		c.nc.Close()
	}
	c, err = t.dial(ctx, addr, p)
	return c, false, err
}

// Dial returns a new connection to addr that Put closes instead of
// keeping (an upgraded connection, which never returns to HTTP).
func (t *Transport) Dial(ctx context.Context, addr string) (*UpConn, error) {
	return t.dial(ctx, addr, &connPool{removed: true})
}

func (t *Transport) dial(ctx context.Context, addr string, p *connPool) (*UpConn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &UpConn{nc: nc, pool: p, raw: rawConnOf(nc)}
	c.br = bufio.NewReaderSize(upReader{c}, upReadBufSize)
	c.bw = bufio.NewWriterSize(upWriter{c}, upWriteBufSize)
	c.stepFn = c.rawStep
	return c, nil
}

// Put returns a connection whose last response was read completely, for
// Get to reuse; past maxIdle for its address, after Close, or for a
// connection from Dial, it is closed instead.
func (t *Transport) Put(c *UpConn) {
	c.lastUsed = time.Now()
	p := c.pool
	p.mu.Lock()
	if p.removed || len(p.idle) >= t.maxIdle {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// sweep closes connections idle longer than idleTimeout and forgets pools
// left empty (an upstream that moved to another port), then reschedules
// itself.
func (t *Transport) sweep() {
	cutoff := time.Now().Add(-t.idleTimeout)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for addr, p := range t.pools {
		p.mu.Lock()
		keep := p.idle[:0]
		for _, c := range p.idle {
			if c.lastUsed.Before(cutoff) {
				c.nc.Close()
			} else {
				keep = append(keep, c)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		if len(keep) == 0 {
			p.removed = true
			delete(t.pools, addr)
		}
		p.mu.Unlock()
	}
	t.timer.Reset(t.idleTimeout / 2)
}

// Close closes every idle connection and stops the sweeper; connections
// in use are closed when they are Put back. It is idempotent.
func (t *Transport) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.timer.Stop()
	for addr, p := range t.pools {
		p.mu.Lock()
		for _, c := range p.idle {
			c.nc.Close()
		}
		p.idle = nil
		p.removed = true
		p.mu.Unlock()
		delete(t.pools, addr)
	}
}

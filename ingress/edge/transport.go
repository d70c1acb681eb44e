package edge

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// Buffer sizes of an upstream connection. The read buffer holds a whole
// response header block (a larger one is refused with 502, as nginx does
// past its proxy_buffer_size of 4 or 8 KiB) and is the copy buffer of
// response bodies.
const (
	upReadBufSize  = 16 << 10
	upWriteBufSize = 4 << 10
)

// transport keeps idle HTTP/1.1 connections to upstream addresses. Unlike
// net/http's Transport it runs no goroutines per connection: the handler
// goroutine writes the request and reads the response itself, which saves
// two goroutine hand-offs per request.
type transport struct {
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
	idle    []*upConn
	removed bool
}

// upConn is one upstream connection. br reads from and bw writes
// through the upConn itself (see Read and Write), which lets a request
// without a body be written by the same poller call that waits for its
// response: one system call fewer per request than write, read (EAGAIN),
// wait, read.
type upConn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	pool     *connPool
	lastUsed time.Time

	// deferWrites makes Write collect bytes in pending instead of sending
	// them; the next Read sends them first.
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

// Write is bw's underlying writer.
func (c *upConn) Write(p []byte) (int, error) {
	if c.deferWrites {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	return c.nc.Write(p)
}

// Read is br's underlying reader. With pending bytes it sends them and
// then reads, in one poller call where possible.
func (c *upConn) Read(p []byte) (int, error) {
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

func newTransport(maxIdle int, idleTimeout, dialTimeout time.Duration) *transport {
	t := &transport{
		dialer:      net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		pools:       map[string]*connPool{},
	}
	t.timer = time.AfterFunc(idleTimeout/2, t.sweep)
	return t
}

func (t *transport) pool(addr string) *connPool {
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

// get returns an idle connection to addr (reused true) or dials one.
// With checkAlive, idle connections the upstream has closed meanwhile are
// skipped (one non-blocking peek each): for requests that cannot be
// retried on a fresh connection.
func (t *transport) get(ctx context.Context, addr string, checkAlive bool) (c *upConn, reused bool, err error) {
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

func (t *transport) dial(ctx context.Context, addr string, p *connPool) (*upConn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{nc: nc, pool: p, raw: rawConnOf(nc)}
	c.br = bufio.NewReaderSize(c, upReadBufSize)
	c.bw = bufio.NewWriterSize(c, upWriteBufSize)
	c.stepFn = c.rawStep
	return c, nil
}

// put returns a connection whose last response was read completely.
func (t *transport) put(c *upConn) {
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
func (t *transport) sweep() {
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

// close closes every idle connection and stops the sweeper; connections
// in use are closed when they are returned.
func (t *transport) close() {
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

// Package netdelay is a TCP proxy that adds a fixed one-way delay to
// every byte in both directions, for benchmarks that need a network
// between client and server where the machine only has loopback (there is
// no netem here, and loopback's round trip is some microseconds, which
// makes a latency-bound workload look CPU-bound).
//
// A chunk read from one side is written to the other no earlier than
// OneWay after it was read, in order, so a request and its response take
// at least two OneWay longer than without the proxy, while chunks read
// one after another are each delayed from their own arrival (up to 256
// chunks of at most 32 KiB in flight per direction): the delay is
// latency, not a bandwidth limit, for the small exchanges it is meant for.
// A new connection's first bytes wait one round trip more, as behind a
// TCP handshake. Connections are proxied until either side closes; a half
// close is passed on (CloseWrite) once the delayed bytes before it are
// written.
package netdelay

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections accepted on its address to a target address
// with a one-way delay. It is safe for concurrent use; Close stops it and
// every connection it proxies.
type Proxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a proxy on a free loopback port that forwards to target
// (host:port) with oneWay delay in each direction.
func Listen(target string, oneWay time.Duration) (*Proxy, error) {
	if oneWay < 0 {
		return nil, errors.New("netdelay: negative delay")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, oneWay: oneWay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every proxied connection and waits for
// the proxy's goroutines. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	if already {
		return nil
	}
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track adds (or removes) c from the connections Close ends; it reports
// false when the proxy is closed already, and closes c then.
func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.conns, c)
		return true
	}
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client)
		}()
	}
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	defer client.Close()
	time.Sleep(2 * p.oneWay) // the handshake's round trip: what the client sent meanwhile waits
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(server, true) {
		return
	}
	defer p.track(server, false)
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(server, client)
	}()
	p.pipe(client, server)
	<-done
}

// chunk is bytes read from one side, due at the other side at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delayed by oneWay, then half-closes
// dst. A reader goroutine stamps chunks as they arrive, so that chunks
// read while an earlier one waits are delayed from their own arrival,
// not from the earlier one's delivery.
func (p *Proxy) pipe(dst, src net.Conn) {
	ch := make(chan chunk, 256) // bounds what one direction holds in flight
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{buf[:n], time.Now().Add(p.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	broken := false
	for c := range ch {
		if broken {
			continue // drain, so the reader can finish
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.data); err != nil {
			broken = true
			src.Close() // unblocks the reader
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && !broken {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

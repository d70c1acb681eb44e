package netdelay

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every connection until the client half-closes, then
// closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func listen(t *testing.T, oneWay time.Duration) *Proxy {
	t.Helper()
	p, err := Listen(echoServer(t), oneWay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRoundTripIsDelayedBothWays(t *testing.T) {
	const oneWay = 30 * time.Millisecond
	p := listen(t, oneWay)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	for range 3 {
		t0 := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(t0); rtt < 2*oneWay {
			t.Fatalf("round trip took %v, want at least %v", rtt, 2*oneWay)
		}
		if string(buf) != "ping" {
			t.Fatalf("echo = %q", buf)
		}
	}
}

func TestBytesArriveIntactAndHalfCloseIsPassedOn(t *testing.T) {
	p := listen(t, time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, 1<<20)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c) // ends only if the echo server saw EOF and closed
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want the %d sent, in order", len(got), len(want))
	}
}

// TestDelayIsLatencyNotSerialisation: exchanges on many connections at
// once each take about one round trip, not one round trip per exchange
// before them.
func TestDelayIsLatencyNotSerialisation(t *testing.T) {
	const oneWay, n = 25 * time.Millisecond, 20
	p := listen(t, oneWay)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 2)
			if _, err := c.Write([]byte("hi")); err != nil {
				errs <- err
				return
			}
			_, err = io.ReadFull(c, buf)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if took, serial := time.Since(t0), n*2*oneWay; took >= serial/2 {
		t.Fatalf("%d concurrent exchanges took %v, as if serialised (%v)", n, took, serial)
	}
}

// TestChunksAreDelayedFromTheirOwnArrival: a second chunk sent on the
// same connection a little after the first comes back about that little
// after it, not a whole round trip later; and a new connection's first
// exchange pays the handshake's round trip too.
func TestChunksAreDelayedFromTheirOwnArrival(t *testing.T) {
	const oneWay, gap = 100 * time.Millisecond, 20 * time.Millisecond
	p := listen(t, oneWay)
	t0 := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	c.Write([]byte("a"))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if first := time.Since(t0); first < 4*oneWay {
		t.Fatalf("the first exchange took %v, want at least %v (handshake and request)", first, 4*oneWay)
	}
	t1 := time.Now()
	c.Write([]byte("b"))
	time.Sleep(gap)
	c.Write([]byte("c"))
	for _, want := range "bc" {
		if _, err := io.ReadFull(c, buf); err != nil || rune(buf[0]) != want {
			t.Fatalf("read %q, %v; want %q", buf, err, want)
		}
	}
	// Delayed from its own arrival, "c" is back at gap + 2 oneWay; queued
	// behind "b"'s delivery it would take 2 oneWay more.
	if took := time.Since(t1); took < 2*oneWay+gap || took >= 4*oneWay {
		t.Fatalf("two chunks %v apart came back after %v, want between %v and %v", gap, took, 2*oneWay+gap, 4*oneWay)
	}
}

func TestCloseEndsProxiedConnections(t *testing.T) {
	p := listen(t, 0)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a connection was open")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("the proxied connection still answers after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNegativeDelayRefused(t *testing.T) {
	if _, err := Listen("127.0.0.1:1", -time.Second); err == nil {
		t.Fatal("a negative delay was accepted")
	}
}

package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a keep-alive HTTP/1.1 server that answers every request
// "ok" and counts the connections it accepted.
func upstream(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/hang" {
						time.Sleep(10 * time.Second)
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if req.URL.Path == "/bye" {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

// acceptedSoon returns the accept count once it reaches want (the accept
// loop may lag behind a dial that has returned), or after a second.
func acceptedSoon(accepted *atomic.Int32, want int32) int32 {
	deadline := time.Now().Add(time.Second)
	for accepted.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // and one too many would show
	return accepted.Load()
}

// roundTrip writes a GET for path on uc and reads the answer's body.
func roundTrip(t *testing.T, uc *UpConn, path string, deferred bool) string {
	t.Helper()
	uc.DeferWrites(deferred)
	bw := uc.Writer()
	bw.WriteString("GET " + path + " HTTP/1.1\r\nHost: up\r\n\r\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(uc.Reader(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTransportReuse(t *testing.T) {
	t.Parallel()
	addr, accepted := upstream(t)
	tr := NewTransport(2, time.Minute, 5*time.Second)
	defer tr.Close()
	ctx := context.Background()
	uc, reused, err := tr.Get(ctx, addr, false)
	if err != nil || reused {
		t.Fatalf("first Get: reused=%v %v", reused, err)
	}
	for _, deferred := range []bool{true, false} {
		if body := roundTrip(t, uc, "/", deferred); body != "ok" {
			t.Fatalf("deferred=%v: %q", deferred, body)
		}
	}
	tr.Put(uc)
	uc2, reused, err := tr.Get(ctx, addr, true)
	if err != nil || !reused || uc2 != uc {
		t.Fatalf("second Get: reused=%v same=%v %v", reused, uc2 == uc, err)
	}
	// The upstream closes after /bye: a Get that checks liveness skips
	// the dead connection and dials.
	roundTrip(t, uc2, "/bye", true)
	tr.Put(uc2)
	time.Sleep(50 * time.Millisecond) // let the close arrive
	uc3, reused, err := tr.Get(ctx, addr, true)
	if err != nil || reused || uc3 == uc2 {
		t.Fatalf("Get after the upstream closed: reused=%v %v", reused, err)
	}
	if body := roundTrip(t, uc3, "/", true); body != "ok" {
		t.Fatalf("fresh connection: %q", body)
	}
	tr.Put(uc3)
	if n := acceptedSoon(accepted, 2); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2", n)
	}
}

func TestTransportMaxIdleDialClose(t *testing.T) {
	t.Parallel()
	addr, accepted := upstream(t)
	tr := NewTransport(1, time.Minute, 5*time.Second)
	ctx := context.Background()
	a, _, _ := tr.Get(ctx, addr, false)
	b, _, err := tr.Get(ctx, addr, false)
	if err != nil {
		t.Fatal(err)
	}
	tr.Put(a)
	tr.Put(b) // over maxIdle: closed
	if _, err := b.Conn().Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a connection past maxIdle was kept: %v", err)
	}
	d, err := tr.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	tr.Put(d) // from Dial: closed
	if _, err := d.Conn().Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a connection from Dial was kept: %v", err)
	}
	if got, reused, _ := tr.Get(ctx, addr, false); got != a || !reused {
		t.Fatal("the idle connection was not reused")
	} else {
		tr.Put(got)
	}
	tr.Close()
	tr.Close() // idempotent
	if _, err := a.Conn().Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("an idle connection survived Close: %v", err)
	}
	// After Close, Get dials and Put closes.
	c, reused, err := tr.Get(ctx, addr, false)
	if err != nil || reused {
		t.Fatalf("Get after Close: reused=%v %v", reused, err)
	}
	tr.Put(c)
	if _, err := c.Conn().Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Put after Close kept the connection: %v", err)
	}
	if n := acceptedSoon(accepted, 4); n != 4 {
		t.Fatalf("upstream accepted %d connections, want 4", n)
	}
}

func TestTransportSweep(t *testing.T) {
	t.Parallel()
	addr, _ := upstream(t)
	tr := NewTransport(4, 100*time.Millisecond, 5*time.Second)
	defer tr.Close()
	uc, _, err := tr.Get(context.Background(), addr, false)
	if err != nil {
		t.Fatal(err)
	}
	tr.Put(uc)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := uc.Conn().Write([]byte("x")); errors.Is(err, net.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle connection outlived idleTimeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUpConnAbort(t *testing.T) {
	t.Parallel()
	addr, _ := upstream(t)
	tr := NewTransport(4, time.Minute, 5*time.Second)
	defer tr.Close()
	uc, _, err := tr.Get(context.Background(), addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.DeferWrites(true)
	uc.Writer().WriteString("GET /hang HTTP/1.1\r\nHost: up\r\n\r\n")
	uc.Writer().Flush()
	time.AfterFunc(50*time.Millisecond, uc.Abort)
	start := time.Now()
	_, err = uc.Reader().ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("read after Abort: %v after %v", err, time.Since(start))
	}
	uc.AbortWrite()
	if _, err := uc.Conn().Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after AbortWrite: %v", err)
	}
}

// TestRawConnThroughWrapper: a connection wrapped by a type embedding
// *net.TCPConn (internal/limits.Listener's) keeps the raw socket access
// taken-over connections use.
func TestRawConnThroughWrapper(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wrapped := struct{ *net.TCPConn }{c.(*net.TCPConn)}
	if rawConnOf(c) == nil {
		t.Skip("no raw socket access on this platform")
	}
	if rawConnOf(wrapped) == nil {
		t.Fatal("no raw socket access through a wrapper embedding *net.TCPConn")
	}
}

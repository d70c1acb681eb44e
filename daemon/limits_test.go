package daemon_test

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/daemon"
)

// Limits on the daemon's listener, as glimpse serve runs it (Stack.Server
// on Stack.Listener). Timeouts are short; the tests assert on the
// connections being closed (or answered), not on how long it took.

// serveStack opens a stack with limits and serves it as glimpse serve
// does; it returns the address to dial.
func serveStack(t *testing.T, limits daemon.Limits) string {
	t.Helper()
	st, err := daemon.Open(t.TempDir(), &daemon.Options{Logger: slog.New(slog.DiscardHandler), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := st.Server()
	go srv.Serve(st.Listener(ln))
	t.Cleanup(func() { srv.Close(); st.Close() })
	return ln.Addr().String()
}

type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one response (giving up after 10s).
func (c *conn) answer() (*http.Response, string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// closed reports whether the daemon closes the connection within 10s
// (anything it still sends is skipped).
func (c *conn) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

const healthz = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

// TestDaemonClosesIdleConnections: keep-alive connections left idle after
// a request are all closed after IdleTimeout.
func TestDaemonClosesIdleConnections(t *testing.T) {
	t.Parallel()
	addr := serveStack(t, daemon.Limits{IdleTimeout: 50 * time.Millisecond})
	conns := make([]*conn, 64)
	for i := range conns {
		conns[i] = dial(t, addr)
		conns[i].send(healthz)
		if resp, body := conns[i].answer(); resp.StatusCode != 200 || body != "ok\n" {
			t.Fatalf("healthz: %d %q", resp.StatusCode, body)
		}
	}
	for i, c := range conns {
		if !c.closed() {
			t.Fatalf("idle connection %d still open", i)
		}
	}
}

// TestDaemonSlowloris: a header sent one byte at a time, slower than
// ReadHeaderTimeout, ends with the connection closed, however long the
// idle timeout.
func TestDaemonSlowloris(t *testing.T) {
	t.Parallel()
	addr := serveStack(t, daemon.Limits{IdleTimeout: time.Hour, ReadHeaderTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		head := "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
		for i := 0; ; i++ {
			b := byte('a')
			if i < len(head) {
				b = head[i]
			}
			if _, err := c.c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	if !c.closed() {
		t.Fatal("slowloris connection still open")
	}
}

// TestDaemonStalledBody: a client that stops sending a body the handler
// does not read (a 405, a 404 of the gateway) is disconnected after
// BodyReadTimeout instead of holding the connection while net/http waits
// to discard the rest.
func TestDaemonStalledBody(t *testing.T) {
	t.Parallel()
	addr := serveStack(t, daemon.Limits{IdleTimeout: time.Hour, BodyReadTimeout: 100 * time.Millisecond})
	for _, path := range []string{"/healthz", "/function/nope"} {
		c := dial(t, addr)
		c.send("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nabc")
		if resp, body := c.answer(); resp.StatusCode < 400 || strings.Count(body, "\n") != 1 {
			t.Errorf("POST %s: %d %q, want an error with one line", path, resp.StatusCode, body)
		}
		if !c.closed() {
			t.Errorf("POST %s with a stalled body: connection still open", path)
		}
	}
}

// TestDaemonHeaderAndBodyCaps: a header block over MaxHeaderBytes is
// answered 431, a /function/ body over MaxFunctionBodyBytes 413, both with
// one line.
func TestDaemonHeaderAndBodyCaps(t *testing.T) {
	t.Parallel()
	addr := serveStack(t, daemon.Limits{MaxHeaderBytes: 4096, MaxFunctionBodyBytes: 1000})
	c := dial(t, addr)
	c.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + strings.Repeat("x", 16<<10) + "\r\n\r\n")
	if resp, body := c.answer(); resp.StatusCode != 431 || strings.Count(body, "\n") > 1 {
		t.Errorf("16 KiB header: %d %q, want 431", resp.StatusCode, body)
	}
	c = dial(t, addr)
	c.send("POST /function/any HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1001\r\n\r\n")
	if resp, body := c.answer(); resp.StatusCode != 413 || strings.Count(body, "\n") != 1 {
		t.Errorf("1001-byte /function/ body: %d %q, want 413 and one line", resp.StatusCode, body)
	}
}

// TestDaemonMaxConns: at MaxConns open connections the next one is not
// served until one of them closes.
func TestDaemonMaxConns(t *testing.T) {
	t.Parallel()
	addr := serveStack(t, daemon.Limits{MaxConns: 2, IdleTimeout: time.Hour})
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []*conn{a, b} {
		c.send(healthz)
		c.answer()
	}
	third := dial(t, addr)
	third.send(healthz)
	third.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := third.br.Peek(1); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	a.c.Close()
	if resp, _ := third.answer(); resp.StatusCode != 200 {
		t.Fatalf("third connection after one closed: %d", resp.StatusCode)
	}
}

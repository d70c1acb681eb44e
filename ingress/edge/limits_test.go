package edge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Limits: header, idle and body timeouts, header and body caps. Timeouts
// are short; the tests assert on what the edge answers and on the
// connection being closed, never on how long it took.

// limitsEdge is bodyEdge with the address to dial raw connections to.
func limitsEdge(t *testing.T, opts Options, up http.Handler) (*Edge, string) {
	t.Helper()
	e, srv := bodyEdge(t, opts, up)
	return e, strings.TrimPrefix(srv.URL, "http://")
}

// takenOverConn dials addr and sends one GET, so that (with takeover) the
// edge serves the connection itself from then on.
func takenOverConn(t *testing.T, addr string) *rawClient {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.Send("GET /warm HTTP/1.1\r\nHost: " + bodyHost + "\r\n\r\n")
	if resp, _ := rc.Read("GET"); resp.StatusCode != 200 {
		t.Fatalf("warm-up GET: %d", resp.StatusCode)
	}
	return rc
}

// closedWithin reports whether the server closes rc (EOF or reset) before
// the client gives up after limit; bytes the server still sends are
// skipped.
func closedWithin(rc *rawClient, limit time.Duration) bool {
	rc.Conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, rc.R)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "ok")
})

// TestTakeoverIdleConnectionsClosed: many taken-over keep-alive
// connections left idle are all closed after IdleTimeout, and the edge
// forgets them.
func TestTakeoverIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	e, addr := limitsEdge(t, Options{IdleTimeout: 50 * time.Millisecond}, okHandler)
	const n = 64
	conns := make([]*rawClient, n)
	for i := range conns {
		conns[i] = takenOverConn(t, addr)
	}
	for i, rc := range conns {
		if !closedWithin(rc, 10*time.Second) {
			t.Fatalf("idle connection %d still open", i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for takenOver(e) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d taken-over connections still tracked", takenOver(e))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTakeoverSlowloris: a client that sends the next request's header one
// byte at a time, slower than ReadHeaderTimeout allows (the idle timeout
// being long), is answered 408 and disconnected.
func TestTakeoverSlowloris(t *testing.T) {
	t.Parallel()
	_, addr := limitsEdge(t, Options{IdleTimeout: time.Hour, Limits: Limits{ReadHeaderTimeout: 100 * time.Millisecond}}, okHandler)
	rc := takenOverConn(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		head := "GET / HTTP/1.1\r\nHost: " + bodyHost + "\r\nX-Slow: "
		for i := 0; ; i++ {
			b := byte('a')
			if i < len(head) {
				b = head[i]
			}
			if _, err := rc.Conn.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	rc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.R, nil)
	if err != nil {
		t.Fatalf("no answer to a header that never ends: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow header: %d, want 408", resp.StatusCode)
	}
	if !closedWithin(rc, 10*time.Second) {
		t.Fatal("connection open after the header timeout")
	}
}

// TestSlowBodyTimesOut: a client that stops sending a body to a function
// is answered 408 and disconnected, on taken-over and net/http
// connections alike.
func TestSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		var reached atomic.Int32
		_, addr := limitsEdge(t, Options{Limits: Limits{BodyReadTimeout: 100 * time.Millisecond}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				reached.Add(1)
			}
			okHandler(w, r)
		}))
		rc := takenOverConn(t, addr)
		rc.Send("POST /upload HTTP/1.1\r\nHost: " + bodyHost + "\r\nContent-Length: 1000\r\n\r\n0123456789")
		rc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(rc.R, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("stalled body: %d %q, want 408 and one line", resp.StatusCode, b)
		}
		if !closedWithin(rc, 10*time.Second) {
			t.Fatal("connection open after the body timeout")
		}
	})
}

// TestTakeoverHeaderCap: a header block over MaxHeaderBytes is answered
// 431 and the connection closed; one under it is served.
func TestTakeoverHeaderCap(t *testing.T) {
	t.Parallel()
	_, addr := limitsEdge(t, Options{Limits: Limits{MaxHeaderBytes: 4096}}, okHandler)
	rc := takenOverConn(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: " + bodyHost + "\r\nX-Fits: " + strings.Repeat("x", 3000) + "\r\n\r\n")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("3 KB header: %d %q", resp.StatusCode, body)
	}
	rc.Send("GET / HTTP/1.1\r\nHost: " + bodyHost + "\r\nX-Big: " + strings.Repeat("x", 8000) + "\r\n\r\n")
	if resp, body := rc.Read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || strings.Count(body, "\n") != 1 {
		t.Fatalf("8 KB header: %d %q, want 431 and one line", resp.StatusCode, body)
	}
	if !closedWithin(rc, 10*time.Second) {
		t.Fatal("connection open after a refused header")
	}
}

// TestBodyCap: a body over MaxRequestBodyBytes is answered 413 with one
// line: declared, before the function is contacted (and without inviting
// the body when the client expects 100-continue); chunked, once it grows
// past the cap. A body at the cap passes.
func TestBodyCap(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		var reached atomic.Int32
		_, addr := limitsEdge(t, Options{Limits: Limits{MaxRequestBodyBytes: 1000}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				reached.Add(1)
			}
			okHandler(w, r)
		}))
		check := func(what string, resp *http.Response, body string, want int) {
			t.Helper()
			if resp.StatusCode != want || (want != 200 && strings.Count(body, "\n") != 1) {
				t.Fatalf("%s: %d %q, want %d", what, resp.StatusCode, body, want)
			}
		}
		rc := takenOverConn(t, addr)
		rc.Send("POST /u HTTP/1.1\r\nHost: " + bodyHost + "\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("a", 1000))
		resp, body := rc.Read("POST")
		check("1000 bytes", resp, body, 200)

		rc.Send("POST /u HTTP/1.1\r\nHost: " + bodyHost + "\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("a", 1001))
		resp, body = rc.Read("POST")
		check("declared 1001 bytes", resp, body, 413)
		if reached.Load() != 1 {
			t.Fatalf("the function saw %d POSTs, want only the one under the cap", reached.Load())
		}

		rc = takenOverConn(t, addr)
		rc.Send("POST /u HTTP/1.1\r\nHost: " + bodyHost + "\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range 3 {
			rc.Send("1f4\r\n" + strings.Repeat("b", 500) + "\r\n")
		}
		rc.Send("0\r\n\r\n")
		resp, body = rc.Read("POST")
		check("chunked 1500 bytes", resp, body, 413)

		rc = takenOverConn(t, addr)
		rc.Send("POST /u HTTP/1.1\r\nHost: " + bodyHost + "\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
		rc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := rc.R.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 413 ") {
			t.Fatalf("Expect: 100-continue over the cap: first line %q, %v; want a 413 and no 100 Continue", line, err)
		}
	})
}

// TestBadRequestBodyOneLine: a malformed chunked body to a function gets a
// 400 with one line, not a dropped connection or a panic.
func TestBadRequestBodyOneLine(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		_, addr := limitsEdge(t, Options{}, okHandler)
		rc := takenOverConn(t, addr)
		rc.Send("POST /u HTTP/1.1\r\nHost: " + bodyHost + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
		rc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(rc.R), nil)
		if err != nil {
			t.Fatalf("no answer to a malformed body: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("malformed chunked body: %d %q, want 400 and one line", resp.StatusCode, b)
		}
	})
}

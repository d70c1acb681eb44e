package limits

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListenerCapsOpenConnections(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener(raw, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	// The wrapper keeps what the edge needs of a TCP connection.
	if _, ok := first.(syscall.Conn); !ok {
		t.Error("accepted connection is not a syscall.Conn")
	}
	if _, ok := first.(io.ReaderFrom); !ok {
		t.Error("accepted connection is not an io.ReaderFrom (sendfile)")
	}
	if _, ok := first.(interface{ CloseWrite() error }); !ok {
		t.Error("accepted connection cannot CloseWrite")
	}
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with a cap of 2")
	case <-time.After(50 * time.Millisecond):
	}
	first.Close()
	first.Close() // frees one slot, not two
	if third := <-accepted; third == nil {
		t.Fatal("the third connection was not accepted after one closed")
	}
	second.Close()
	ln.Close()
	for c := range accepted {
		if c != nil {
			c.Close()
		}
	}
}

// bodyServer serves h; its handler reads the body through NewBody.
func bodyServer(t *testing.T, timeout time.Duration, max int64, got chan<- error) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := NewBody(w, r.Body, timeout, max)
		defer b.Release()
		_, err := io.Copy(io.Discard, b)
		got <- err
		io.WriteString(w, "done")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestBodyTimeoutIsPerRead(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	addr := bodyServer(t, time.Second, -1, got)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 16 bytes, one per 100ms: longer than the timeout in all, never
	// stalling for it.
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n")
	for range 16 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, "a")
	}
	if err := <-got; err != nil {
		t.Fatalf("a slow but steady body failed: %v", err)
	}
}

func TestBodyTimeoutStall(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	addr := bodyServer(t, 50*time.Millisecond, -1, got)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nabc")
	if err := <-got; !errors.Is(err, ErrBodyTimeout) {
		t.Fatalf("stalled body: %v, want ErrBodyTimeout", err)
	}
	// The server gives up on the connection rather than waiting for the
	// rest of the body.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("connection not closed after the stall: %v", err)
	}
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body    string
		chunked bool
		want    error
	}{
		{strings.Repeat("a", 10), false, nil},
		{strings.Repeat("a", 10), true, nil},
		{strings.Repeat("a", 11), true, ErrBodyTooLarge},
	} {
		got := make(chan error, 1)
		addr := bodyServer(t, time.Second, 10, got)
		req, _ := http.NewRequest("POST", "http://"+addr, strings.NewReader(c.body))
		if c.chunked {
			req.ContentLength = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if err := <-got; !errors.Is(err, c.want) && err != c.want {
			t.Errorf("%d bytes (chunked %v): %v, want %v", len(c.body), c.chunked, err, c.want)
		}
	}
}

func TestBodyStop(t *testing.T) {
	t.Parallel()
	started := make(chan *Body)
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := NewBody(w, r.Body, time.Hour, -1)
		defer b.Release()
		go func() { started <- b }()
		_, err := io.Copy(io.Discard, b)
		got <- err
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nabc")
	(<-started).Stop()
	if err := <-got; !errors.Is(err, ErrBodyStopped) {
		t.Fatalf("stopped read: %v, want ErrBodyStopped", err)
	}
}

// TestHandler: over the cap by declaration is 413 before the handler runs;
// by a chunked body, the handler's 5xx becomes a one-line 413; a stall, a
// one-line 408.
func TestHandler(t *testing.T) {
	t.Parallel()
	calls := 0
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}), 500*time.Millisecond, 10)
	srv := httptest.NewServer(h)
	defer srv.Close()
	send := func(raw string) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, raw)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890")
	if resp.StatusCode != 413 || body != TooLargeText(10) || calls != 0 {
		t.Errorf("declared 11 bytes: %d %q, handler called %d times", resp.StatusCode, body, calls)
	}
	resp, body = send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n")
	if resp.StatusCode != 413 || body != TooLargeText(10) || !resp.Close {
		t.Errorf("chunked 11 bytes: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	resp, body = send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
	if resp.StatusCode != 408 || body != TimeoutText {
		t.Errorf("stalled body: %d %q", resp.StatusCode, body)
	}
	resp, body = send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("5 bytes: %d %q", resp.StatusCode, body)
	}
}

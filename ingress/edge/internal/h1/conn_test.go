package h1

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/rawhttp"
)

// testHandler is the handler the engine tests run: a few paths that
// exercise the ResponseWriter, and a BodyRefuser for /refuse.
type testHandler struct {
	srv *Server
	// nested is what a TakeOver from within a handler returned.
	nested atomic.Int32 // 0: not tried, 1: false, 2: true
	// ctxDone receives whether /wait's context was canceled.
	ctxDone chan bool
	// ctxs records the connection context each request saw.
	ctxs chan context.Context
}

func (h *testHandler) RefusesBody(r *http.Request) bool { return r.URL.Path == "/refuse" }

func (h *testHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hw, _ := w.(*ResponseWriter)
	switch r.URL.Path {
	case "/text":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if ct := r.URL.Query().Get("type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		io.WriteString(w, strings.Repeat("y", n))
	case "/html":
		io.WriteString(w, "<html>short</html>")
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/short-body":
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	case "/inject":
		w.Header().Set("X-Evil", "a\r\nInjected: yes")
		io.WriteString(w, "x")
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	case "/flush":
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	case "/fields":
		// Rendered fields: Connection and Date are the server's, a line
		// break is no injection, the length and type count as set.
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		hw.SetFields(NewFields(http.Header{
			"Content-Length": {"5"},
			"Content-Type":   {"application/x-test"},
			"Connection":     {"close"},
			"Date":           {"yesterday"},
			"X-Evil":         {"a\r\nInjected: yes"},
		}))
		w.Header().Set("X-Map", "too")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, strings.Repeat("z", n))
	case "/deadline":
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		io.WriteString(w, "deadline")
	case "/panic":
		panic("test panic")
	case "/hijack":
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nhello")
		brw.Flush()
		_ = c
	case "/nested":
		if h.srv.TakeOver(w, r) {
			h.nested.Store(2)
		} else {
			h.nested.Store(1)
		}
		io.WriteString(w, "nested")
	case "/ctx":
		if hw != nil {
			h.ctxs <- hw.Context()
		}
		io.WriteString(w, "ctx")
	case "/wait":
		select {
		case <-hw.Context().Done():
			h.ctxDone <- true
		case <-time.After(5 * time.Second):
			h.ctxDone <- false
		}
	case "/closeafter":
		io.ReadAll(io.LimitReader(r.Body, 1))
		hw.CloseAfter()
		io.WriteString(w, "closing")
	case "/refuse":
		w.Header().Set("Connection", "close")
		TextError(w, http.StatusRequestEntityTooLarge, "413 too large\n")
	default:
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		io.WriteString(w, "echo:"+string(b))
	}
}

// engine serves a Server (with srv's limits and a testHandler) behind
// net/http's server, which hands body-less requests over with TakeOver,
// and returns the handler and the address to dial.
func engine(t *testing.T, srv *Server) (*testHandler, string) {
	t.Helper()
	h := &testHandler{srv: srv, ctxDone: make(chan bool, 1), ctxs: make(chan context.Context, 8)}
	srv.Handler = h
	srv.Logger = slog.New(slog.DiscardHandler) // the panic test's
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == http.NoBody && srv.TakeOver(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return h, strings.TrimPrefix(ts.URL, "http://")
}

// rawClient is one raw HTTP/1.1 connection to the engine.
type rawClient = rawhttp.Client

// dialRaw connects with a 10-second deadline on the whole exchange.
func dialRaw(t *testing.T, addr string) *rawClient {
	rc := rawhttp.Dial(t, addr)
	rc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	return rc
}

func TestKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	_, addr := engine(t, srv)
	rc := dialRaw(t, addr)
	if resp, body := rc.Get("/text?n=3"); resp.StatusCode != 200 || body != "yyy" || resp.ContentLength != 3 {
		t.Fatalf("first request: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("%d connections taken over, want 1", n)
	}
	// Three pipelined requests in one write, one with a body.
	rc.Send("GET /text?n=2 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"HEAD /text?n=1000 HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || body != "yy" || resp.Header.Get("Date") == "" {
		t.Fatalf("pipelined 1: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := rc.Read("POST"); resp.StatusCode != 200 || body != "echo:hello" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("pipelined 2: %d %q", resp.StatusCode, body)
	}
	if resp, body := rc.Read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != -1 {
		// A HEAD handler's body is discarded unbuffered: no length.
		t.Fatalf("pipelined HEAD: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	rc.Send("PUT /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if resp, body := rc.Read("PUT"); resp.StatusCode != 200 || body != "echo:abc" {
		t.Fatalf("chunked body: %d %q", resp.StatusCode, body)
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("%d connections taken over after keep-alive requests, want 1", n)
	}
	rc.Send("GET /text?n=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.Read("GET"); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close request: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !rc.Closed() {
		t.Fatal("connection open after Connection: close")
	}
}

func TestExpect(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{})
	t.Run("100-continue", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		line, err := rc.R.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim response: %q %v", line, err)
		}
		rc.R.ReadString('\n')
		rc.Send("data")
		if resp, body := rc.Read("POST"); resp.StatusCode != 200 || body != "echo:data" {
			t.Fatalf("after 100-continue: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("refused body", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		resp, body := rc.Read("POST")
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body != "413 too large\n" || !resp.Close {
			t.Fatalf("refused body: %d %q close=%v (no 100 Continue expected first)", resp.StatusCode, body, resp.Close)
		}
		if !rc.Closed() {
			t.Fatal("connection open after a refused body")
		}
	})
	t.Run("unknown expectation", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: something\r\n\r\ndata")
		resp, body := rc.Read("POST")
		if resp.StatusCode != http.StatusExpectationFailed || body != "417 expectation failed\n" ||
			resp.Header.Get("Cache-Control") != "no-store" || !resp.Close {
			t.Fatalf("unknown Expect: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		if !rc.Closed() {
			t.Fatal("connection open after 417")
		}
	})
}

func TestHTTP10(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{})
	rc := dialRaw(t, addr)
	rc.Send("GET /text?n=4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body := rc.Read("GET")
	if resp.StatusCode != 200 || body != "yyyy" || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// Too long to buffer: close-delimited, as HTTP/1.0 has no chunks.
	rc.Send("GET /text?n=5000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || len(body) != 5000 || resp.ContentLength != -1 {
		t.Fatalf("long HTTP/1.0 answer: %d len %d (%d)", resp.StatusCode, len(body), resp.ContentLength)
	}
	if !rc.Closed() {
		t.Fatal("connection open after a close-delimited answer")
	}
	rc = dialRaw(t, addr)
	rc.Send("GET /text?n=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /text?n=2 HTTP/1.0\r\n\r\n")
	rc.Read("GET")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || body != "yy" {
		t.Fatalf("HTTP/1.0: %d %q", resp.StatusCode, body)
	}
	if !rc.Closed() {
		t.Fatal("HTTP/1.0 connection without keep-alive stayed open")
	}
}

// Malformed requests on a taken-over connection are answered and the
// connection closed; within limits they are not.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{MaxHeaderBytes: 2048})
	for _, c := range []struct {
		name, req string
		status    int
	}{
		{"header at the limit", "GET /text?n=1 HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 1900) + "\r\n\r\n", 200},
		{"header over the limit", "GET /text?n=1 HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 3000) + "\r\n\r\n", 431},
		{"garbage", "this is not http\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad field name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
		{"malformed version", "GET / HTTP/1.2x\r\nHost: a\r\n\r\n", 400},
		{"version 2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.Get("/")
			rc.Send(c.req)
			resp, _ := rc.Read("GET")
			if resp.StatusCode != c.status {
				t.Fatalf("%d, want %d", resp.StatusCode, c.status)
			}
			if c.status != 200 && (!resp.Close || !rc.Closed()) {
				t.Fatal("connection open after a refused request")
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond})
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, addr)
		rc.Get("/")
		start := time.Now()
		if _, err := rc.R.ReadByte(); err == nil {
			t.Fatal("an idle connection was sent bytes")
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
			t.Fatalf("idle connection closed after %v, want about 300ms", d)
		}
	})
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("GET / HTTP/1.1\r\nHost: a\r\n") // and never the end
		if resp, _ := rc.Read("GET"); resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("slow header: %d, want 408", resp.StatusCode)
		}
	})
}

// TestDeadlinesEndWithTheirRequest: a read deadline a handler set, or
// the one bounding the drain of an unread body, is gone by the time the
// connection waits for its next request (the wait itself has none; the
// sweeper times it out).
func TestDeadlinesEndWithTheirRequest(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{IdleTimeout: 10 * time.Second, BodyReadTimeout: 20 * time.Millisecond})
	for _, first := range []string{
		"GET /deadline HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /html HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
	} {
		rc := dialRaw(t, addr)
		rc.Get("/") // taken over from here on
		rc.Send(first)
		if resp, _ := rc.Read("GET"); resp.StatusCode != 200 {
			t.Fatalf("%q: %d", first, resp.StatusCode)
		}
		time.Sleep(150 * time.Millisecond) // well past either deadline
		if resp, body := rc.Get("/html"); resp.StatusCode != 200 || body != "<html>short</html>" {
			t.Fatalf("after %q: %d %q", first, resp.StatusCode, body)
		}
	}
}

func TestCloseEndsConnections(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	_, addr := engine(t, srv)
	rc := dialRaw(t, addr)
	rc.Get("/")
	srv.Close()
	srv.Close() // idempotent
	if !rc.Closed() {
		t.Fatal("idle taken-over connection survived Close")
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still tracked after Close", srv.Conns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Taken over after Close: closed at once, nothing served.
	rc = dialRaw(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if !rc.Closed() {
		t.Fatal("a connection taken over after Close was served")
	}
}

func TestResponseWriterFraming(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{})
	rc := dialRaw(t, addr)
	rc.Get("/")
	for _, c := range []struct {
		path     string
		status   int
		length   int64
		chunked  bool
		ctype    string
		bodySize int
	}{
		{"/html", 200, 18, false, "text/html; charset=utf-8", 18},
		{"/text?n=10000&type=text/plain", 200, -1, true, "text/plain", 10000},
		{"/nocontent", 204, 0, false, "", 0},
		{"/flush", 200, -1, true, "text/plain; charset=utf-8", 2},
	} {
		resp, body := rc.Get(c.path)
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
		if resp.StatusCode != c.status || resp.ContentLength != c.length || chunked != c.chunked || resp.Header.Get("Content-Type") != c.ctype || len(body) != c.bodySize {
			t.Errorf("%s: %d len %d chunked %v type %q body %d", c.path, resp.StatusCode, resp.ContentLength, chunked, resp.Header.Get("Content-Type"), len(body))
		}
	}
	if resp, _ := rc.Get("/inject"); resp.Header.Get("Injected") != "" {
		t.Fatalf("header injection: %v", resp.Header)
	}
	if resp, body := rc.Get("/trailer"); body != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("trailer: %q %v", body, resp.Trailer)
	}
	// A body shorter than its Content-Length ends the connection, so the
	// client sees the truncation instead of waiting.
	rc.Send("GET /short-body HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(rc.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("short body read as complete")
	}
}

// TestSetFields: a head rendered once by NewFields goes out with the
// map's fields and the server's own; its Content-Length frames the body
// (a longer write fails, a HEAD gets none) and keeps the connection.
func TestSetFields(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{})
	rc := dialRaw(t, addr)
	rc.Get("/")
	for range 2 { // the second response must not inherit the first's fields
		resp, body := rc.Get("/fields?n=5")
		if resp.StatusCode != http.StatusAccepted || body != "zzzzz" || resp.ContentLength != 5 {
			t.Fatalf("/fields: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
		hd := resp.Header
		if hd.Get("Content-Type") != "application/x-test" || hd.Get("X-Map") != "too" || hd.Get("Injected") != "" ||
			hd.Get("X-Evil") != "a  Injected: yes" || hd.Get("Connection") != "" || len(hd["Date"]) != 1 || hd.Get("Date") == "yesterday" {
			t.Fatalf("/fields header: %v", hd)
		}
		if resp, body := rc.Get("/html"); body != "<html>short</html>" || resp.Header.Get("X-Evil") != "" || resp.ContentLength != 18 {
			t.Fatalf("after /fields: %q %v", body, resp.Header)
		}
	}
	rc.Send("HEAD /fields?n=5 HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := rc.Read("HEAD"); resp.ContentLength != 5 || body != "" {
		t.Fatalf("HEAD /fields: length %d body %q", resp.ContentLength, body)
	}
	if _, body := rc.Get("/fields?n=5"); body != "zzzzz" {
		t.Fatalf("after HEAD: %q", body)
	}
	// More than the rendered length: never sent; the client sees the
	// connection end before the 5 bytes it was promised.
	rc.Send("GET /fields?n=7 HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(rc.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err == nil || resp.ContentLength != 5 {
		t.Fatalf("/fields with 7 bytes for 5: read %q (%v), length %d", b, err, resp.ContentLength)
	}
}

// Handlers get the connection's context through the ResponseWriter, the
// same for every request of the connection, canceled when the client goes
// away; a TakeOver from inside a handler declines.
func TestContextAndNesting(t *testing.T) {
	t.Parallel()
	h, addr := engine(t, &Server{})
	rc := dialRaw(t, addr)
	rc.Get("/ctx")
	rc.Get("/ctx")
	if a, b := <-h.ctxs, <-h.ctxs; a != b || a.Err() != nil {
		t.Fatalf("contexts of two requests on one connection: %v %v", a, b)
	}
	if resp, body := rc.Get("/nested"); body != "nested" || resp.StatusCode != 200 || h.nested.Load() != 1 {
		t.Fatalf("nested TakeOver: %q, TakeOver state %d (1: declined)", body, h.nested.Load())
	}
	rc.Send("GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(watchDelay / 2)
	rc.Conn.Close()
	if !<-h.ctxDone {
		t.Fatal("the connection context was not canceled when the client went away")
	}
}

func TestCloseAfterPanicHijack(t *testing.T) {
	t.Parallel()
	_, addr := engine(t, &Server{})
	t.Run("CloseAfter", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("POST /closeafter HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nxyz")
		if resp, body := rc.Read("POST"); body != "closing" || !resp.Close {
			t.Fatalf("CloseAfter: %q close=%v", body, resp.Close)
		}
		if !rc.Closed() {
			t.Fatal("connection open after CloseAfter")
		}
	})
	t.Run("panic", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
		if !rc.Closed() {
			t.Fatal("a handler panic did not break the connection")
		}
	})
	t.Run("hijack", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.Get("/")
		rc.Send("GET /hijack HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(rc.R, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("hijacked answer: %v %v", resp, err)
		}
		b, _ := io.ReadAll(rc.R)
		if string(b) != "hello" {
			t.Fatalf("after the hijacked head: %q, then the connection closes", b)
		}
	})
}

func TestTextError(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	TextError(rec, http.StatusBadGateway, "502 nope\n")
	if rec.Code != 502 || rec.Body.String() != "502 nope\n" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

func TestHasToken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		values []string
		token  string
		want   bool
	}{
		{[]string{"keep-alive, Upgrade"}, "upgrade", true},
		{[]string{"keep-alive", "CLOSE"}, "Close", true},
		{[]string{"cloſe"}, "close", false},
		{[]string{"closed"}, "close", false},
		{nil, "close", false},
	} {
		if got := HasToken(c.values, c.token); got != c.want {
			t.Errorf("HasToken(%q, %q) = %v", c.values, c.token, got)
		}
	}
}

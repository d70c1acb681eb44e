package edge

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// rawEdge serves an Edge with a static route (pr-1.hello.localhost) and a
// function route (fn.localhost, everything proxied to an echo upstream)
// and returns the address to dial.
func rawEdge(t *testing.T, opts Options) (*Edge, string) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		io.WriteString(w, "echo:"+string(b))
	}))
	t.Cleanup(up.Close)
	e, srv, _ := staticEdgeWith(t, opts, fixedUpstream(upstreamAddr(up)))
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "fn.localhost", Function: "fn", FunctionPaths: []string{"/"}}); err != nil {
		t.Fatal(err)
	}
	return e, strings.TrimPrefix(srv.URL, "http://")
}

func staticEdgeWith(t *testing.T, opts Options, ups Upstreams) (*Edge, *httptest.Server, any) {
	opts.Upstreams = ups
	return staticEdge(t, opts)
}

type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (rc *rawClient) closed() bool {
	_, err := rc.br.ReadByte()
	return err != nil
}

func takenOver(e *Edge) int {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	return len(e.conns)
}

func TestTakeoverKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || body != site["/index.html"] || resp.ContentLength != int64(len(body)) {
		t.Fatalf("first request: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	if n := takenOver(e); n != 1 {
		t.Fatalf("%d connections taken over, want 1", n)
	}
	// Three pipelined requests in one write, one with a body.
	rc.send("GET /style.css HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: fn.localhost\r\nContent-Length: 5\r\n\r\nhello" +
		"HEAD /big.txt HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != site["/style.css"] || resp.Header.Get("Date") == "" {
		t.Fatalf("pipelined 1: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "echo:hello" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("pipelined 2: %d %q", resp.StatusCode, body)
	}
	if resp, body := rc.read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 {
		t.Fatalf("pipelined HEAD: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	// A chunked request body, then Connection: close.
	rc.send("PUT /y HTTP/1.1\r\nHost: fn.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != "echo:abc" {
		t.Fatalf("chunked body: %d %q", resp.StatusCode, body)
	}
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close request: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Fatal("connection open after Connection: close")
	}
}

func TestTakeoverExpectContinue(t *testing.T) {
	t.Parallel()
	_, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: fn.localhost\r\n\r\n")
	rc.read("GET")
	rc.send("POST /x HTTP/1.1\r\nHost: fn.localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := rc.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("interim response: %q %v", line, err)
	}
	rc.br.ReadString('\n')
	rc.send("data")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "echo:data" {
		t.Fatalf("after 100-continue: %d %q", resp.StatusCode, body)
	}
}

func TestTakeoverHTTP10(t *testing.T) {
	t.Parallel()
	_, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.0\r\nHost: pr-1.hello.localhost\r\nConnection: keep-alive\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || body != site["/index.html"] || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	rc.send("GET /style.css HTTP/1.0\r\nHost: pr-1.hello.localhost\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != site["/style.css"] {
		t.Fatalf("HTTP/1.0: %d %q", resp.StatusCode, body)
	}
	if !rc.closed() {
		t.Fatal("HTTP/1.0 connection without keep-alive stayed open")
	}
}

func TestTakeoverFallbackAndErrors(t *testing.T) {
	t.Parallel()
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fallback for "+r.Host)
	})
	_, addr := rawEdge(t, Options{Fallback: fallback})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
	rc.read("GET")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "fallback for localhost:8080" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("fallback: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// A header block over the limit is refused and the connection closed.
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nX-Big: " + strings.Repeat("x", maxHeaderBytes) + "\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge header: %d", resp.StatusCode)
	}
	if !rc.closed() {
		t.Fatal("connection open after a refused header")
	}

	rc = dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\nthis is not http\r\n\r\n")
	rc.read("GET")
	if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage request: %d", resp.StatusCode)
	}
}

func TestTakeoverCloseEndsIdleConnections(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	rc.read("GET")
	e.Close()
	if !rc.closed() {
		t.Fatal("idle taken-over connection survived Close")
	}
}

func TestTakeoverDisabled(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{DisableConnTakeover: true})
	rc := dialRaw(t, addr)
	for range 2 {
		rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
	}
	if n := takenOver(e); n != 0 {
		t.Fatalf("%d connections taken over with DisableConnTakeover", n)
	}
}

// Requests with a body and upgrades are not taken over at first; the
// connection is taken over at its first body-less request.
func TestTakeoverStartsAtBodylessRequest(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.send("POST /x HTTP/1.1\r\nHost: fn.localhost\r\nContent-Length: 2\r\n\r\nhi")
	if resp, body := rc.read("POST"); body != "echo:hi" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := takenOver(e); n != 0 {
		t.Fatalf("taken over at a request with a body")
	}
	rc.send("GET /z HTTP/1.1\r\nHost: fn.localhost\r\n\r\n")
	if resp, body := rc.read("GET"); body != "echo:" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := takenOver(e); n != 1 {
		t.Fatalf("%d connections taken over after a GET, want 1", n)
	}
}

func TestFastResponseFraming(t *testing.T) {
	t.Parallel()
	// Handlers run on a taken-over connection through the fallback.
	mux := http.NewServeMux()
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>short</html>") })
	mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("y", 10000))
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("/short-body", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	})
	mux.HandleFunc("/inject", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Evil", "a\r\nInjected: yes")
		io.WriteString(w, "x")
	})
	_, addr := rawEdge(t, Options{Fallback: mux})
	rc := dialRaw(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	rc.read("GET")
	for _, c := range []struct {
		path     string
		status   int
		length   int64
		chunked  bool
		ctype    string
		bodySize int
	}{
		{"/short", 200, 18, false, "text/html; charset=utf-8", 18},
		{"/long", 200, -1, true, "text/plain", 10000},
		{"/nocontent", 204, 0, false, "", 0},
	} {
		rc.send("GET " + c.path + " HTTP/1.1\r\nHost: other.localhost\r\n\r\n")
		resp, body := rc.read("GET")
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
		if resp.StatusCode != c.status || resp.ContentLength != c.length || chunked != c.chunked || resp.Header.Get("Content-Type") != c.ctype || len(body) != c.bodySize {
			t.Errorf("%s: %d len %d chunked %v type %q body %d", c.path, resp.StatusCode, resp.ContentLength, chunked, resp.Header.Get("Content-Type"), len(body))
		}
	}
	rc.send("GET /inject HTTP/1.1\r\nHost: other.localhost\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.Header.Get("Injected") != "" {
		t.Fatalf("header injection: %v", resp.Header)
	}
	// A body shorter than its Content-Length ends the connection, so the
	// client sees the truncation instead of waiting.
	rc.send("GET /short-body HTTP/1.1\r\nHost: other.localhost\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("short body read as complete")
	}
}

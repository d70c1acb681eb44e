package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/preview"
)

const fnHost = "pr-7.hello.localhost"

// proxyEdge returns an Edge routing fnHost's /graphql and /api/ to
// function hello-pr-7 at upstream, served by a real HTTP server.
func proxyEdge(t *testing.T, ups Upstreams) (*Edge, *httptest.Server) {
	t.Helper()
	e, err := New(Options{Upstreams: ups, Logger: quiet, DisableConnTakeover: netHTTPMode(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	err = preview.PutRoute(context.Background(), e, preview.Route{Host: fnHost, Function: "hello-pr-7", FunctionPaths: []string{"/graphql", "/api/"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

func upstreamAddr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// echo answers with a JSON description of the request it got.
type echoed struct {
	Method, URI, Host, Body string
	Header                  http.Header
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Set-Cookie", "a=1")
	w.Header().Add("Set-Cookie", "b=2")
	w.Header().Set("X-Upstream", "yes")
	json.NewEncoder(w).Encode(echoed{r.Method, r.RequestURI, r.Host, string(b), r.Header})
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func newReq(t *testing.T, srv *httptest.Server, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fnHost
	return req
}

func TestProxyForwarding(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyForwarding)
}

func testProxyForwarding(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(echoHandler))
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))

	req := newReq(t, srv, "POST", "/graphql?query=%7Bx%7D&b=2", strings.NewReader(`{"q":1}`))
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("X-Forwarded-Proto", "https") // not trusted by default
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	req.Header.Set("Proxy-Authorization", "secret")
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	resp, body := do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got echoed
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Method != "POST" || got.URI != "/graphql?query=%7Bx%7D&b=2" || got.Host != fnHost || got.Body != `{"q":1}` {
		t.Errorf("upstream saw %+v", got)
	}
	h := got.Header
	if h.Get("X-Forwarded-For") != "10.0.0.1, 127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != fnHost {
		t.Errorf("forwarding headers: XFF %q XFP %q XFH %q", h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
	}
	if h.Get("X-Hop") != "" || h.Get("Proxy-Authorization") != "" || h.Get("Connection") != "" {
		t.Errorf("hop-by-hop headers passed: %v", h)
	}
	if h.Get("Authorization") != "Bearer t" || strings.Join(h["X-Multi"], ",") != "1,2" {
		t.Errorf("end-to-end headers lost: %v", h)
	}
	if c := resp.Header["Set-Cookie"]; len(c) != 2 || c[0] != "a=1" || c[1] != "b=2" {
		t.Errorf("Set-Cookie = %v", c)
	}
	if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("response headers: %v", resp.Header)
	}

	// A chunked request body (unknown length) and the sub-path rules.
	for path, toFunction := range map[string]bool{"/graphql": true, "/graphql/x": true, "/api/v1": true, "/graphqlx": false, "/api": false, "/": false} {
		req := newReq(t, srv, "PUT", path, io.MultiReader(strings.NewReader("part1-"), strings.NewReader("part2")))
		req.ContentLength = -1
		resp, body := do(t, req)
		if toFunction {
			if resp.StatusCode != 200 || !strings.Contains(body, `"Body":"part1-part2"`) {
				t.Errorf("PUT %s: %d %s", path, resp.StatusCode, body)
			}
		} else if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT %s (static): %d, want 405", path, resp.StatusCode)
		}
	}
}

func TestProxyTrustForwarded(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyTrustForwarded)
}

func testProxyTrustForwarded(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(echoHandler))
	defer up.Close()
	e, err := New(Options{Upstreams: fixedUpstream(upstreamAddr(up)), TrustForwardedHeaders: true, DisableConnTakeover: netHTTPMode(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	preview.PutRoute(context.Background(), e, preview.Route{Host: fnHost, Function: "f", FunctionPaths: []string{"/"}})
	srv := httptest.NewServer(e)
	defer srv.Close()
	req := newReq(t, srv, "GET", "/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "public.example.com")
	_, body := do(t, req)
	var got echoed
	json.Unmarshal([]byte(body), &got)
	if got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Forwarded-Host") != "public.example.com" {
		t.Errorf("trusted forwarding headers replaced: %v", got.Header)
	}
}

func TestProxyStatusesAndBodies(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyStatusesAndBodies)
}

func testProxyStatusesAndBodies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/nocontent":
			w.WriteHeader(204)
		case "/api/notmodified":
			w.WriteHeader(304)
		case "/api/teapot":
			w.WriteHeader(418)
			io.WriteString(w, "short and stout")
		case "/api/big":
			w.Header().Set("Content-Length", "300000")
			io.WriteString(w, strings.Repeat("x", 300000))
		case "/api/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Sum", "42")
		case "/api/notype":
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>not sniffed</html>")
		}
	}))
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))

	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/nocontent", 204, ""},
		{"GET", "/api/notmodified", 304, ""},
		{"GET", "/api/teapot", 418, "short and stout"},
		{"HEAD", "/api/teapot", 418, ""},
		{"GET", "/api/big", 200, strings.Repeat("x", 300000)},
		{"GET", "/api/trailer", 200, "body"},
	} {
		resp, body := do(t, newReq(t, srv, c.method, c.path, nil))
		if resp.StatusCode != c.status || body != c.body {
			t.Errorf("%s %s = %d (%d bytes), want %d (%d bytes)", c.method, c.path, resp.StatusCode, len(body), c.status, len(c.body))
		}
		if c.path == "/api/trailer" && resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer lost: %v", resp.Trailer)
		}
		if c.path == "/api/big" && resp.ContentLength != 300000 {
			t.Errorf("Content-Length not passed: %d", resp.ContentLength)
		}
	}
	resp, _ := do(t, newReq(t, srv, "GET", "/api/notype", nil))
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type sniffed by the edge: %q", ct)
	}
}

// Streaming: the client must get the first part while the upstream is
// still waiting to send the second.
func TestProxyStreams(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyStreams)
}

func testProxyStreams(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := newReq(t, srv, "GET", "/api/events", nil).WithContext(ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v (the edge buffered the stream?)", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Fatalf("rest of stream: %q", rest)
	}
}

func TestProxyUpstreamErrors(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyUpstreamErrors)
}

func testProxyUpstreamErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()
	ups := upstreamMap{
		"down":   closedAddr,
		"asleep": preview.Errorf(preview.FailedPrecondition, "scaled to zero"),
		"boom":   errors.New("runtime exploded"),
	}
	e, err := New(Options{Upstreams: ups, Logger: quiet, DisableConnTakeover: netHTTPMode(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, fn := range []string{"down", "asleep", "boom", "missing"} {
		preview.PutRoute(context.Background(), e, preview.Route{Host: fn + ".localhost", Function: fn, FunctionPaths: []string{"/"}})
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	for fn, want := range map[string]int{"down": 502, "asleep": 503, "boom": 502, "missing": 502} {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		req.Host = fn + ".localhost"
		resp, body := do(t, req)
		if resp.StatusCode != want {
			t.Errorf("function %s: %d %q, want %d", fn, resp.StatusCode, body, want)
		}
		if fn == "asleep" && resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	}
}

// An upstream that closes each connection after answering (without saying
// so) makes pooled connections stale; idempotent requests are retried on a
// fresh connection and succeed.
func TestProxyRetriesStaleConnection(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyRetriesStaleConnection)
}

func testProxyRetriesStaleConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	_, srv := proxyEdge(t, fixedUpstream(l.Addr().String()))
	for i := range 3 {
		resp, body := do(t, newReq(t, srv, "GET", "/api/x", nil))
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d upstream connections for 3 requests, want 3 (one per request)", n)
	}
}

func TestProxyKeepAliveReuse(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyKeepAliveReuse)
}

func testProxyKeepAliveReuse(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))
	for range 20 {
		if resp, body := do(t, newReq(t, srv, "GET", "/graphql", nil)); body != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 20 sequential requests, want 1", n)
	}
}

// A client that goes away cancels the upstream request.
func TestProxyClientCancel(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyClientCancel)
}

func testProxyClientCancel(t *testing.T) {
	gotReq, upstreamDone := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(gotReq)
		<-r.Context().Done()
		close(upstreamDone)
	}))
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-gotReq
		cancel()
	}()
	req := newReq(t, srv, "GET", "/api/slow", nil).WithContext(ctx)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("cancelled request succeeded")
	}
	<-upstreamDone // the upstream saw its connection close
}

func TestProxyWebSocketUpgrade(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyWebSocketUpgrade)
}

func testProxyWebSocketUpgrade(t *testing.T) {
	// A minimal upgrade: after 101 the upstream echoes lines upper-cased.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !h1.HasToken(r.Header["Connection"], "upgrade") {
			http.Error(w, "upgrade headers lost", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, strings.ToUpper(line))
		}
	}))
	defer up.Close()
	_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)))

	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\nhello\n", fnHost)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "HELLO\n" {
		t.Fatalf("echo of bytes sent with the handshake: %q %v", line, err)
	}
	io.WriteString(c, "again\n")
	if line, err = br.ReadString('\n'); err != nil || line != "AGAIN\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}

// A proxied response that breaks in the middle must not look complete to
// the client.
func TestProxyTruncatedResponseAborts(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxyTruncatedResponseAborts)
}

func testProxyTruncatedResponseAborts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				c.Close()
			}()
		}
	}()
	e, srv := proxyEdge(t, fixedUpstream(l.Addr().String()))
	srv.Config.ErrorLog = nil
	_ = e
	resp, err := http.DefaultClient.Do(newReq(t, srv, "GET", "/api/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("truncated upstream body read as complete")
	}
}

// A request with a body cannot be retried, so a pooled connection the
// upstream has closed must not be used for it.
func TestProxySkipsClosedConnectionForBody(t *testing.T) {
	t.Parallel()
	bothModes(t, testProxySkipsClosedConnectionForBody)
}

func testProxySkipsClosedConnectionForBody(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed := make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					b, _ := io.ReadAll(req.Body)
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
				}
				c.Close() // without announcing it
				closed <- struct{}{}
			}()
		}
	}()
	_, srv := proxyEdge(t, fixedUpstream(l.Addr().String()))
	for i := range 3 {
		resp, body := do(t, newReq(t, srv, "POST", "/graphql", strings.NewReader("mutation")))
		if resp.StatusCode != 200 || body != "mutation" {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, body)
		}
		<-closed
	}
}

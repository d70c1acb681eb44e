package edge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/rawhttp"
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

// rawClient is one raw HTTP/1.1 connection to the edge.
type rawClient = rawhttp.Client

func dialRaw(t *testing.T, addr string) *rawClient { return rawhttp.Dial(t, addr) }

func takenOver(e *Edge) int { return e.srv.Conns() }

func TestTakeoverKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	resp, body := rc.Read("GET")
	if resp.StatusCode != 200 || body != site["/index.html"] || resp.ContentLength != int64(len(body)) {
		t.Fatalf("first request: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	if n := takenOver(e); n != 1 {
		t.Fatalf("%d connections taken over, want 1", n)
	}
	// Three pipelined requests in one write, one with a body.
	rc.Send("GET /style.css HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: fn.localhost\r\nContent-Length: 5\r\n\r\nhello" +
		"HEAD /big.txt HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || body != site["/style.css"] || resp.Header.Get("Date") == "" {
		t.Fatalf("pipelined 1: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := rc.Read("POST"); resp.StatusCode != 200 || body != "echo:hello" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("pipelined 2: %d %q", resp.StatusCode, body)
	}
	if resp, body := rc.Read("HEAD"); resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 {
		t.Fatalf("pipelined HEAD: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
	}
	// A chunked request body, then Connection: close.
	rc.Send("PUT /y HTTP/1.1\r\nHost: fn.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if resp, body := rc.Read("PUT"); resp.StatusCode != 200 || body != "echo:abc" {
		t.Fatalf("chunked body: %d %q", resp.StatusCode, body)
	}
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.Read("GET"); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close request: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !rc.Closed() {
		t.Fatal("connection open after Connection: close")
	}
}

func TestTakeoverFallbackAndErrors(t *testing.T) {
	t.Parallel()
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fallback for "+r.Host)
	})
	_, addr := rawEdge(t, Options{Fallback: fallback})
	rc := dialRaw(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
	rc.Read("GET")
	if resp, body := rc.Read("GET"); resp.StatusCode != 200 || body != "fallback for localhost:8080" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("fallback: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// A header block over the limit is refused and the connection closed.
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nX-Big: " + strings.Repeat("x", DefaultMaxHeaderBytes) + "\r\n\r\n")
	if resp, _ := rc.Read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge header: %d", resp.StatusCode)
	}
	if !rc.Closed() {
		t.Fatal("connection open after a refused header")
	}

	rc = dialRaw(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\nthis is not http\r\n\r\n")
	rc.Read("GET")
	if resp, _ := rc.Read("GET"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage request: %d", resp.StatusCode)
	}
}

func TestTakeoverCloseEndsIdleConnections(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{})
	rc := dialRaw(t, addr)
	rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
	rc.Read("GET")
	e.Close()
	if !rc.Closed() {
		t.Fatal("idle taken-over connection survived Close")
	}
}

func TestTakeoverDisabled(t *testing.T) {
	t.Parallel()
	e, addr := rawEdge(t, Options{DisableConnTakeover: true})
	rc := dialRaw(t, addr)
	for range 2 {
		rc.Send("GET / HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")
		if resp, _ := rc.Read("GET"); resp.StatusCode != 200 {
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
	rc.Send("POST /x HTTP/1.1\r\nHost: fn.localhost\r\nContent-Length: 2\r\n\r\nhi")
	if resp, body := rc.Read("POST"); body != "echo:hi" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := takenOver(e); n != 0 {
		t.Fatalf("taken over at a request with a body")
	}
	rc.Send("GET /z HTTP/1.1\r\nHost: fn.localhost\r\n\r\n")
	if resp, body := rc.Read("GET"); body != "echo:" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := takenOver(e); n != 1 {
		t.Fatalf("%d connections taken over after a GET, want 1", n)
	}
}

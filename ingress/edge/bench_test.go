package edge

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// benchWriter is a minimal reusable http.ResponseWriter, so the benchmarks
// count the edge's allocations and not a recorder's.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += len(p)
	return len(p), nil
}
func (w *benchWriter) Flush() {}
func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// answer13 is the benchmark upstreams' answer: a 13-byte body.
const answer13 = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nhello, world\n"

// BenchmarkProxy measures the proxy path (ServeHTTP to a real upstream over
// a pooled keep-alive connection) without the edge's own HTTP server, so
// allocs/op are the edge's alone.
func BenchmarkProxy(b *testing.B) {
	addr := rawUpstream(b, answer13)
	e, err := New(Options{Upstreams: fixedUpstream(addr)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", Function: "hello-pr-1", FunctionPaths: []string{"/graphql"}}); err != nil {
		b.Fatal(err)
	}
	benchServeGraphQL(b, e)
}

// benchServeGraphQL times b.N calls of e.ServeHTTP for GET /graphql?q=1
// to pr-1.hello.localhost, each answered 200 with answer13's 13 bytes,
// without an HTTP server.
func benchServeGraphQL(b *testing.B, e *Edge) {
	req := httptest.NewRequest("GET", "http://pr-1.hello.localhost:8080/graphql?q=1", nil)
	req.RequestURI = "/graphql?q=1" // as a server sets it (origin form)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.reset()
		e.ServeHTTP(w, req)
		if w.status != 200 || w.n != 13 {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}

// BenchmarkProxyConn measures whole proxied requests over one keep-alive
// client connection through a real listener, with connection takeover
// and with every request on net/http's server. ns/op is latency-bound
// (one request in flight); allocs/op include the HTTP server's.
func BenchmarkProxyConn(b *testing.B) {
	addr := rawUpstream(b, answer13)
	for _, mode := range []string{"takeover", "nethttp"} {
		b.Run(mode, func(b *testing.B) {
			e, err := New(Options{Upstreams: fixedUpstream(addr), DisableConnTakeover: mode == "nethttp"})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", Function: "f", FunctionPaths: []string{"/"}})
			benchGraphQL(b, e)
		})
	}
}

// rawUpstream answers every request on a connection with resp, without
// net/http, so that its allocations do not count in the benchmark.
func rawUpstream(tb testing.TB, response string) string {
	resp := []byte(response)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// BenchmarkStatic measures serving one small file from an fsassets store
// (manifest cached, blob opened per request) and a revalidation (304).
func BenchmarkStatic(b *testing.B) {
	st, err := fsassets.New(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	benchStatic(b, st)
}

// benchStatic serves one small file of st through an edge (200) and
// revalidates it (304), as sub-benchmarks.
func benchStatic(b *testing.B, st preview.AssetStore) {
	files := map[string]string{"/index.html": "<h1>hello</h1>", "/app.3f2a9c1b.js": "console.log(1)"}
	publish(b, st, "hello/pr-1", files)
	e, err := New(Options{Assets: st})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		inm    bool
		status int
	}{{"200", false, 200}, {"304", true, 304}} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "http://pr-1.hello.localhost/", nil)
			if c.inm {
				req.Header.Set("If-None-Match", etagOf(files["/index.html"]))
			}
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.reset()
				e.ServeHTTP(w, req)
				if w.status != c.status {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// BenchmarkLookup measures host routing alone: it must not allocate.
func BenchmarkLookup(b *testing.B) {
	e, _ := New(Options{})
	for i := range 1000 {
		preview.PutRoute(context.Background(), e, preview.Route{Host: preview.Host("app", i+1, "localhost")})
	}
	b.ReportAllocs()
	for range b.N {
		if !e.HasHost("pr-500.app.localhost:8080") {
			b.Fatal("not found")
		}
	}
}

// benchGraphQL serves e on a loopback server and times b.N keep-alive
// requests of GET /graphql to pr-1.hello.localhost over one connection,
// each answered with a 13-byte body (fixedUpstream's).
func benchGraphQL(b *testing.B, e *Edge) {
	benchConn(b, e, "/graphql", 13)
}

// benchConn serves e on a loopback server and times b.N keep-alive
// requests of GET path to pr-1.hello.localhost over one connection, each
// answer's head skipped and its body of bodyLen bytes read.
func benchConn(b *testing.B, e *Edge, path string, bodyLen int) {
	srv := httptest.NewServer(e)
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReaderSize(c, 32<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		skipAnswer(b, br, bodyLen)
	}
}

// skipAnswer reads one answer from br: its head, then a body of bodyLen
// bytes.
func skipAnswer(tb testing.TB, br *bufio.Reader, bodyLen int) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			tb.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
	}
	if _, err := br.Discard(bodyLen); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkStaticConn is whole static requests over one keep-alive
// connection the edge takes over: a 10 KB file of an in-memory store,
// served from the blob cache (warm), as compare.sh's static mode serves
// it to wrk. Its allocations are the edge's per request.
func BenchmarkStaticConn(b *testing.B) {
	st := previewtest.NewMemAssets()
	body := strings.Repeat("x", 10240)
	publish(b, st, "hello/pr-1", map[string]string{"/asset.txt": body})
	e, err := New(Options{Assets: st, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", AssetPrefix: "hello/pr-1"}); err != nil {
		b.Fatal(err)
	}
	benchConn(b, e, "/asset.txt", len(body))
}

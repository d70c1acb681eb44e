package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Request bodies through the proxy: large ones stream, an upstream may
// answer before it has read the body or while it reads it.

const bodyHost = "fn.localhost"

// bodyEdge serves an Edge (with opts; connection takeover as bothModes
// says) that proxies every path of bodyHost to an upstream running up,
// and returns the edge's server.
func bodyEdge(t testing.TB, opts Options, up http.Handler) (*Edge, *httptest.Server) {
	t.Helper()
	us := httptest.NewServer(up)
	t.Cleanup(us.Close)
	opts.Upstreams = fixedUpstream(upstreamAddr(us))
	opts.Logger = quiet
	if tt, ok := t.(*testing.T); ok && netHTTPMode(tt) {
		opts.DisableConnTakeover = true
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	setTestRoute(e, preview.Route{Host: bodyHost, Function: "fn", FunctionPaths: []string{"/"}})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

// setTestRoute puts r in e's table directly (no state file, no version
// checks), for tests that need a function route and nothing else.
func setTestRoute(e *Edge, r preview.Route) {
	t := map[string]*route{}
	for k, v := range *e.table.Load() {
		t[k] = v
	}
	t[preview.NormalizeHost(r.Host)] = newRoute(r)
	e.table.Store(&t)
}

// hashHandler reads the whole body and answers "<length> <sha256>".
func hashHandler(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d %s", len(b), hex.EncodeToString(sum[:]))
}

// bigBody is 30 MiB that do not compress or repeat in step with buffers.
var bigBody = func() []byte {
	b := make([]byte, 30<<20)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

// post sends body to path on bodyHost through srv, over a connection the
// edge has taken over when takeover mode applies (a GET goes first).
func post(t *testing.T, srv *httptest.Server, path string, body io.Reader, length int64) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := srv.Client()
	warm, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/warm", nil)
	warm.Host = bodyHost
	if resp, err := client.Do(warm); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+path, body)
	req.Host = bodyHost
	req.ContentLength = length
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// TestProxyLargeBody: 30 MiB reach the function whole, with a length and
// chunked.
func TestProxyLargeBody(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		_, srv := bodyEdge(t, Options{}, http.HandlerFunc(hashHandler))
		want := hashOf(bigBody)
		if code, got := post(t, srv, "/upload", bytes.NewReader(bigBody), int64(len(bigBody))); code != 200 || got != want {
			t.Errorf("30 MiB with Content-Length: %d %q, want 200 %q", code, got, want)
		}
		if code, got := post(t, srv, "/upload", io.MultiReader(bytes.NewReader(bigBody)), -1); code != 200 || got != want {
			t.Errorf("30 MiB chunked: %d %q, want 200 %q", code, got, want)
		}
	})
}

// TestProxyEarlyAnswer: a function that answers before it has read the
// body (a limit of its own, or no interest in it) and then closes has its
// answer relayed, as the gateway's /function/ path (net/http's Transport)
// does, not a 502.
func TestProxyEarlyAnswer(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("/limited", func(w http.ResponseWriter, r *http.Request) {
			// As examples/hello does: at most 1 MiB.
			if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
				http.Error(w, "function: body over 1 MiB", http.StatusRequestEntityTooLarge)
				return
			}
			io.WriteString(w, "read it")
		})
		mux.HandleFunc("/ignore", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		_, srv := bodyEdge(t, Options{}, mux)
		if code, got := post(t, srv, "/limited", bytes.NewReader(bigBody), int64(len(bigBody))); code != 413 || got != "function: body over 1 MiB\n" {
			t.Errorf("function limiting its body: %d %q, want its own 413", code, got)
		}
		if code, got := post(t, srv, "/ignore", bytes.NewReader(bigBody), int64(len(bigBody))); code != 200 || got != "ok" {
			t.Errorf("function ignoring the body: %d %q, want 200 ok", code, got)
		}
		// The edge still serves the next requests.
		if code, got := post(t, srv, "/limited", strings.NewReader("small"), 5); code != 200 || got != "read it" {
			t.Errorf("small body after: %d %q", code, got)
		}
	})
}

// TestProxyFullDuplexBody: a function that streams its answer while it
// reads the body (it echoes it) gets all of it; the edge reads the answer
// while it sends the body instead of deadlocking once the socket buffers
// are full.
func TestProxyFullDuplexBody(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T) {
		_, srv := bodyEdge(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			if err := rc.EnableFullDuplex(); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(200)
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Body.Read(buf)
				w.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/echo", bytes.NewReader(bigBody))
		req.Host = bodyHost
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		sum := sha256.Sum256(bigBody)
		if err != nil || n != int64(len(bigBody)) || !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Fatalf("echo: %d bytes, %v; want the %d bytes sent", n, err, len(bigBody))
		}
	})
}

// TestProxyBodyNotBuffered: a 30 MiB upload costs the process (edge,
// upstream and client together) a small fraction of its size in heap
// allocations: the body streams. Not parallel, so that other tests'
// allocations do not count.
func TestProxyBodyNotBuffered(t *testing.T) {
	for _, mode := range []string{"takeover", "nethttp"} {
		t.Run(mode, func(t *testing.T) {
			_, srv := bodyEdge(t, Options{}, http.HandlerFunc(hashHandler))
			want := hashOf(bigBody)
			post(t, srv, "/warm", strings.NewReader("x"), 1) // connections and pools in place
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code, got := post(t, srv, "/upload", bytes.NewReader(bigBody), int64(len(bigBody)))
			runtime.ReadMemStats(&after)
			if code != 200 || got != want {
				t.Fatalf("%d %q", code, got)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("a %d MiB upload allocated %d KiB (%.3f of its size)", len(bigBody)>>20, alloc>>10, float64(alloc)/float64(len(bigBody)))
			if alloc > uint64(len(bigBody))/4 {
				t.Fatalf("a %d MiB upload allocated %d KiB, more than a quarter of it: is the body buffered?", len(bigBody)>>20, alloc>>10)
			}
		})
	}
}

// BenchmarkProxyConnPost measures proxied POSTs over one keep-alive client
// connection (taken over, or on net/http's server) to an upstream that
// reads the body and answers 13 bytes: a GraphQL-sized body (sent with
// the head) and a 1 MiB one (streamed alongside the answer's read).
func BenchmarkProxyConnPost(b *testing.B) {
	addr := readingUpstream(b, answer13)
	for _, size := range []int{1 << 10, 1 << 20} {
		body := strings.Repeat("q", size)
		for _, mode := range []string{"takeover", "nethttp"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode), func(b *testing.B) {
				e, err := New(Options{Upstreams: fixedUpstream(addr), DisableConnTakeover: mode == "nethttp"})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				setTestRoute(e, preview.Route{Host: "pr-1.hello.localhost", Function: "f", FunctionPaths: []string{"/"}})
				srv := httptest.NewServer(e)
				defer srv.Close()
				c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReader(c)
				exchange := func(req []byte) {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					skipAnswer(b, br, 13)
				}
				exchange([]byte("GET /graphql HTTP/1.1\r\nHost: pr-1.hello.localhost\r\n\r\n")) // takeover
				req := []byte("POST /graphql HTTP/1.1\r\nHost: pr-1.hello.localhost\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + body)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					exchange(req)
				}
			})
		}
	}
}

// readingUpstream is rawUpstream for requests with a Content-Length body:
// it reads (and drops) the body before answering.
func readingUpstream(tb testing.TB, response string) string {
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
				br := bufio.NewReaderSize(c, 64<<10)
				for {
					var length int64
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if k, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
							length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
						}
					}
					if _, err := br.Discard(int(length)); err != nil {
						return
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

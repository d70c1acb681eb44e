package h1

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sizedBody is n bytes that differ from position to position, so a byte
// sent twice, dropped or reordered shows.
func sizedBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23 + (i/4096)%3)
	}
	return b
}

// TestBodyGatheredWithHead checks the writev path of writeBody (the
// buffered head and a body larger than the buffer sent together): bodies
// around and far beyond the 4 KB buffer, with and without a declared
// length, one or two writes, on a keep-alive connection with pipelined
// requests, and a body of several MB read slowly, so the socket fills and
// the write resumes part-way (EAGAIN).
func TestBodyGatheredWithHead(t *testing.T) {
	t.Parallel()
	srv := &Server{Logger: slog.New(slog.DiscardHandler)}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		body := sizedBody(n)
		if q.Get("declared") != "" {
			w.Header()["Content-Length"] = []string{strconv.Itoa(n)}
		}
		if q.Get("split") != "" {
			w.Write(body[:n/3])
			w.Write(body[n/3:])
			return
		}
		w.Write(body)
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.TakeOver(w, r) {
			http.Error(w, "not taken over", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	rc := dialRaw(t, strings.TrimPrefix(ts.URL, "http://"))
	check := func(path string, n int, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 200 || len(body) != n || !bytes.Equal([]byte(body), sizedBody(n)) {
			t.Errorf("%s: %d, %d bytes, equal %v", path, resp.StatusCode, len(body), bytes.Equal([]byte(body), sizedBody(n)))
		}
	}
	for _, n := range []int{100, 2047, 2049, 4000, 4096, 4200, 10240, 70000} {
		for _, opts := range []string{"declared=1", "", "declared=1&split=1", "split=1"} {
			path := fmt.Sprintf("/?n=%d&%s", n, opts)
			resp, body := rc.Get(path)
			check(path, n, resp, body)
		}
	}

	// Pipelined: both requests in one send; the responses follow in order.
	rc.Send("GET /?n=10240&declared=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /?n=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, n := range []int{10240, 5000} {
		resp, err := http.ReadResponse(rc.R, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		check("pipelined", n, resp, string(b))
	}

	// A body far larger than the socket buffers, read only after a pause.
	const big = 8 << 20
	rc.Send(fmt.Sprintf("GET /?n=%d&declared=1 HTTP/1.1\r\nHost: a\r\n\r\n", big))
	time.Sleep(200 * time.Millisecond)
	resp, err := http.ReadResponse(rc.R, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	check("big", big, resp, string(b))
	// The connection is still in step.
	resp, body := rc.Get("/?n=9000&declared=1")
	check("after big", 9000, resp, body)
}

package h1

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The fast parser agrees with http.ReadRequest wherever it accepts a
// request, and leaves the rest to it.
func TestParseSimpleRequest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		raw  string
		fast bool
	}{
		{"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n", true},
		{"GET /x/y?q=1&r=%20 HTTP/1.1\r\nHost: a.localhost:8080\r\nUser-Agent: t\r\nAccept: */*\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n", true},
		{"HEAD /a HTTP/1.0\r\nHost: a\r\n\r\n", true},
		{"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", true},
		{"DELETE /a HTTP/1.1\nHost: a\nContent-Length: 0\n\n", true},
		{"GET /a HTTP/1.1\r\nHost: a\r\nX-Spaces:   padded value \t\r\n\r\n", true},
		{"GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", false},
		{"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", false},
		{"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\n\r\n", false},              // no Host: refused by ReadRequest's checks
		{"GET /a HTTP/2.0\r\nHost: a\r\n\r\n", false},   // version
		{"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", false}, // bad host
		{"GET /a HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", false},
		{"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
	} {
		end := HeaderEnd([]byte(c.raw), 0)
		var fast = parseSimpleRequest([]byte(c.raw[:end]))
		if (fast != nil) != c.fast {
			t.Errorf("%q: fast parse = %v, want %v", c.raw, fast != nil, c.fast)
			continue
		}
		if fast == nil {
			continue
		}
		ref, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.raw)))
		if err == nil {
			err = checkRequest(ref)
		}
		if err != nil {
			t.Errorf("%q: fast parser accepted what ReadRequest refuses: %v", c.raw, err)
			continue
		}
		if fast.Method != ref.Method || fast.URL.Path != ref.URL.Path || fast.URL.RawQuery != ref.URL.RawQuery ||
			fast.Host != ref.Host || fast.RequestURI != ref.RequestURI || fast.Proto != ref.Proto ||
			fast.ProtoMinor != ref.ProtoMinor || fast.Close != ref.Close || !reflect.DeepEqual(fast.Header, ref.Header) {
			t.Errorf("%q:\nfast %s %+v %q %v %v\nstd  %s %+v %q %v %v", c.raw, fast.Method, fast.URL, fast.Host, fast.Close, fast.Header, ref.Method, ref.URL, ref.Host, ref.Close, ref.Header)
		}
	}
}

package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"reflect"
	"testing"
)

// FuzzParseRequest checks the request reader (the fast parser and
// its http.ReadRequest fallback) differentially against net/http: the same
// bytes, read as a sequence of pipelined requests, either are refused by
// h1 (which may be stricter) or are accepted by net/http too and
// parsed the same: method, request-target, protocol, host, header fields,
// connection persistence and body framing (body bytes, Content-Length,
// Transfer-Encoding, trailers, and where the next request starts). seg
// is how many bytes each read from the connection returns (0: all), so
// the header block can arrive in pieces.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, seg uint16) {
		if len(data) > 16<<10 {
			return
		}
		if seg > 0 && seg < 64 && len(data) > 1024 {
			seg = 64 // keep byte-at-a-time reads of big inputs fast
		}
		sc := &segConn{data: data, seg: int(seg)}
		fc := &conn{c: sc}
		fc.br = bufio.NewReaderSize(fc, 4096)
		off := 0
		for i := 0; i < 16 && off < len(data); i++ {
			ref, refErr := referenceRead(data[off:])
			fc.limit = http.DefaultMaxHeaderBytes
			got, err := fc.readRequest()
			fc.limit = -1
			if err != nil {
				return // refusing is always allowed
			}
			if refErr != nil {
				t.Fatalf("request %d: h1 accepted what net/http refuses (%v):\n%q", i, refErr, data[off:])
			}
			body, bodyErr := io.ReadAll(io.LimitReader(got.Body, 64<<10))
			compareRequests(t, i, data[off:], got, ref, body, bodyErr)
			used := sc.off - fc.br.Buffered()
			if used-off != ref.used {
				t.Fatalf("request %d: h1 consumed %d bytes, net/http %d:\n%q", i, used-off, ref.used, data[off:])
			}
			if bodyErr != nil || got.Close {
				return
			}
			off = used
		}
	})
}

// segConn is a connection whose reads return at most seg bytes of data.
type segConn struct {
	net.Conn
	data []byte
	off  int
	seg  int
}

func (c *segConn) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	if c.seg > 0 && len(p) > c.seg {
		p = p[:c.seg]
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}

// refRequest is what net/http makes of the first request in some bytes.
type refRequest struct {
	req     *http.Request
	body    []byte
	bodyErr error
	used    int // bytes up to the end of the body
}

// referenceRead reads the first request of b as net/http's server does:
// http.ReadRequest followed by the checks the server applies to its
// result (protocol version, Host header presence and syntax, field names
// and values), then reads its body.
func referenceRead(b []byte) (*refRequest, error) {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	if !(req.ProtoMajor == 1 || req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return nil, errBadVersion
	}
	// http.ReadRequest drops the Host field; the server checks it, so
	// read the header block again for it.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, err
	}
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	hosts, haveHost := raw["Host"]
	h2 := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && !h2 && req.Method != http.MethodConnect {
		return nil, errNoHost
	}
	if len(hosts) == 1 && !refValidHost(hosts[0]) {
		return nil, errBadHost
	}
	for k, vv := range req.Header {
		if !isToken(k) {
			return nil, errBadHeader
		}
		for _, v := range vv {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
					return nil, errBadHeader
				}
			}
		}
	}
	r := &refRequest{req: req}
	r.body, r.bodyErr = io.ReadAll(io.LimitReader(req.Body, 64<<10))
	r.used = len(b) - rd.Len() - br.Buffered()
	return r, nil
}

var errBadHeader = textproto.ProtocolError("invalid header field")

// refValidHost is golang.org/x/net/http/httpguts.ValidHostHeader's byte
// check, written out independently of validHost.
func refValidHost(h string) bool {
	const ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~"
	for i := 0; i < len(h); i++ {
		if !bytes.ContainsRune([]byte(ok), rune(h[i])) {
			return false
		}
	}
	return true
}

func compareRequests(t *testing.T, i int, raw []byte, got *http.Request, r *refRequest, body []byte, bodyErr error) {
	t.Helper()
	ref := r.req
	type view struct {
		Method, RequestURI, Proto string
		Major, Minor              int
		Host                      string
		Scheme, URLHost           string
		Path, RawQuery            string
		Header                    http.Header
		Close                     bool
		ContentLength             int64
		TransferEncoding          []string
		NoBody                    bool
		Trailer                   http.Header
		Body                      string
		BodyErr                   bool
	}
	v := func(q *http.Request, body []byte, bodyErr error) view {
		h := q.Header
		if len(h) == 0 {
			h = nil
		}
		te := q.TransferEncoding
		if len(te) == 0 {
			te = nil
		}
		tr := q.Trailer
		if len(tr) == 0 {
			tr = nil
		}
		return view{q.Method, q.RequestURI, q.Proto, q.ProtoMajor, q.ProtoMinor, q.Host,
			q.URL.Scheme, q.URL.Host, q.URL.Path, q.URL.RawQuery, h, q.Close,
			q.ContentLength, te, q.Body == http.NoBody || q.Body == nil, tr, string(body), bodyErr != nil}
	}
	a, b := v(got, body, bodyErr), v(ref, r.body, r.bodyErr)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("request %d parsed differently:\n%q\nh1:       %+v\nnet/http: %+v", i, raw, a, b)
	}
}

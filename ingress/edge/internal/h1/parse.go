package h1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// Request parsing for taken-over connections. The common request (no
// body, origin-form target without escapes, plain header fields) is parsed
// here from the buffered header block with a handful of allocations;
// anything else (a body, Expect, obsolete folding, percent-escapes, a
// header block larger than the buffer) is left to http.ReadRequest, whose
// result gets the same checks net/http's server applies.

var (
	errNoHost      = errors.New("missing required Host header")
	errBadHost     = errors.New("malformed Host header")
	errBadVersion  = errors.New("unsupported protocol version")
	errMultipleHst = errors.New("more than one Host header")
	errBadField    = errors.New("invalid header field")
)

// readRequest reads the next request from fc.br.
func (fc *conn) readRequest() (*http.Request, error) {
	br := fc.br
	if _, err := br.Peek(1); err != nil {
		return nil, err
	}
	// For a request-target that is not origin-form, net/http still checks
	// the Host field, which http.ReadRequest drops: read it here.
	var hosts []string
	hostsKnown := false
	scanned := 0 // bytes HeaderEnd has looked at: a slow sender costs O(n), not O(n²)
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := HeaderEnd(buf, scanned); end > 0 {
			if req := parseSimpleRequest(buf[:end]); req != nil {
				br.Discard(end)
				return req, nil
			}
			hosts, hostsKnown = hostFields(buf[:end])
			break
		}
		scanned = len(buf)
		if br.Buffered() >= br.Size() {
			break
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			break // let ReadRequest report it
		}
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if req.URL.Host != "" {
		// Absolute-form (or CONNECT's authority): req.Host comes from
		// the target, yet net/http requires a valid Host field too. A
		// header block too big for the buffer was not seen: refuse.
		if !hostsKnown || len(hosts) > 1 || len(hosts) == 1 && !validHost(hosts[0]) {
			return nil, errBadHost
		}
		if len(hosts) == 0 && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect {
			return nil, errNoHost
		}
	}
	return req, nil
}

// hostFields returns the Host field values of a header block whose
// request-target is not origin-form; ok is false when it could not tell.
func hostFields(block []byte) (hosts []string, ok bool) {
	line, _, _ := bytes.Cut(block, []byte("\n"))
	if _, target, found := bytes.Cut(line, []byte(" ")); found && len(target) > 0 && target[0] == '/' {
		return nil, false // origin-form: req.Host is the Host field
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(block)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, false
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, false
	}
	return h["Host"], true
}

// checkRequest applies the checks net/http's server makes after parsing.
func checkRequest(req *http.Request) error {
	if req.ProtoMajor != 1 {
		return errBadVersion
	}
	// textproto lets some invalid field names (such as "Content-Length "
	// with a space before the colon) through; the server refuses them.
	for k, vv := range req.Header {
		if !isToken(k) {
			return errBadField
		}
		for _, v := range vv {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
					return errBadField
				}
			}
		}
	}
	// http.ReadRequest has moved the Host field to req.Host.
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return errNoHost
	}
	if len(req.Header["Host"]) > 0 {
		return errMultipleHst
	}
	if !validHost(req.Host) {
		return errBadHost
	}
	delete(req.Header, "Host")
	return nil
}

// parseSimpleRequest parses a complete header block of a body-less
// request, or returns nil when the block needs http.ReadRequest.
func parseSimpleRequest(b []byte) *http.Request {
	head := string(b)
	nl := strings.IndexByte(head, '\n')
	line := trimCR(head[:nl])
	rest := head[nl+1:]

	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil
	}
	method := line[:sp1]
	line = line[sp1+1:]
	sp2 := strings.IndexByte(line, ' ')
	if sp2 <= 0 {
		return nil
	}
	uri, proto := line[:sp2], line[sp2+1:]
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil
	}
	if !isToken(method) || method == http.MethodConnect || uri[0] != '/' {
		return nil
	}
	inQuery := false
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		if c <= ' ' || c == 0x7f || c == '#' || c >= 0x80 || (c == '%' && !inQuery) {
			return nil // escapes in the path need url.ParseRequestURI
		}
		inQuery = inQuery || c == '?'
	}

	n := strings.Count(rest, "\n")
	h := make(http.Header, n)
	vals := make([]string, n)
	vi := 0
	var host string
	hasHost, closeConn, keepAlive := false, false, false
	for rest != "" {
		j := strings.IndexByte(rest, '\n')
		line := trimCR(rest[:j])
		rest = rest[j+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil
		}
		c := strings.IndexByte(line, ':')
		if c <= 0 || !isToken(line[:c]) {
			return nil
		}
		key := textproto.CanonicalMIMEHeaderKey(line[:c])
		v := strings.Trim(line[c+1:], " \t")
		for k := 0; k < len(v); k++ {
			if c := v[k]; (c < ' ' && c != '\t') || c == 0x7f {
				return nil
			}
		}
		switch key {
		case "Host":
			if hasHost || !validHost(v) {
				return nil
			}
			host, hasHost = v, true
			continue // net/http moves it to Request.Host
		case "Content-Length":
			if v != "0" || h[key] != nil {
				return nil // net/http merges repeated equal values
			}
		case "Transfer-Encoding", "Expect":
			return nil
		case "Connection":
			closeConn = closeConn || hasToken(v, "close")
			keepAlive = keepAlive || hasToken(v, "keep-alive")
		}
		vals[vi] = v
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
		} else {
			h[key] = vals[vi : vi+1 : vi+1]
		}
		vi++
	}
	if minor == 1 && !hasHost {
		return nil
	}
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"} // as net/http does
	}
	path, query, _ := strings.Cut(uri, "?")
	return &http.Request{
		Method:     method,
		URL:        &url.URL{Path: path, RawQuery: query},
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RequestURI: uri,
		Close:      closeConn || (minor == 0 && !keepAlive),
	}
}

// hasToken reports whether the comma-separated list v has token,
// compared as net/http does (ASCII case folding, only spaces and tabs
// trimmed: not strings.EqualFold, for which "cloſe" is "close").
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		t = strings.Trim(t, " \t")
		if len(t) != len(token) {
			continue
		}
		i := 0
		for ; i < len(t); i++ {
			c := t[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != token[i] {
				break
			}
		}
		if i == len(t) {
			return true
		}
	}
	return false
}

func trimCR(s string) string {
	if n := len(s); n > 0 && s[n-1] == '\r' {
		return s[:n-1]
	}
	return s
}

// isToken reports whether s is an RFC 9110 token (method, field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHost reports whether a Host header value has only the characters a
// host, port or IPv6 literal may have (as golang.org/x/net's httpguts
// checks).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// HasToken reports whether a comma-separated header lists token,
// ignoring ASCII case, without allocating for a lower-case token.
func HasToken(values []string, token string) bool {
	// hasToken compares ASCII-only (never "cloſe" for "close"), as
	// net/http does; it wants the token in lower case.
	for i := 0; i < len(token); i++ {
		if c := token[i]; 'A' <= c && c <= 'Z' {
			token = strings.ToLower(token)
			break
		}
	}
	for _, v := range values {
		if hasToken(v, token) {
			return true
		}
	}
	return false
}

// HeaderEnd returns the offset just after the empty line that ends a
// header block in buf (CRLF or bare LF line endings), or -1. from is where
// the previous scan of a growing buf stopped (0 for the first), so that a
// block arriving in pieces costs O(n), not O(n²).
func HeaderEnd(buf []byte, from int) int {
	if from > 3 {
		from -= 3
	} else {
		from = 0
	}
	for i := from; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		if i+1 < len(buf) && buf[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
	"github.com/glimpse-dev/glimpse/internal/limits"
	"github.com/glimpse-dev/glimpse/preview"
)

var (
	hdrRetryAfter = []string{"1"}

	errNoResponse    = errors.New("upstream closed the connection before responding")
	errHeaderTooBig  = errors.New("upstream response header is larger than 16 KiB")
	errBadResponse   = errors.New("malformed upstream response")
	errClientGone    = errors.New("client went away")
	errBadBody       = errors.New("malformed request body")
	errBodyStopped   = errors.New("request body no longer read")
	errUpgradeRefuse = errors.New("upstream switched to a protocol the client did not ask for")
)

// bodyBufs are the copy buffers of request bodies.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// proxy forwards r to the route's function and copies the response back.
//
// A request body streams to the function while the function's answer is
// read (it may answer before it has read the body, or while it reads it):
// nothing is buffered beyond a copy buffer, each wait for more of the body
// is bounded by Limits.BodyReadTimeout (408) and its size by
// Limits.MaxRequestBodyBytes (413).
func (e *Edge) proxy(w http.ResponseWriter, r *http.Request, rt *route) {
	if e.opts.Upstreams == nil {
		h1.TextError(w, http.StatusBadGateway, "502 this edge has no function runtime\n")
		return
	}
	noBody := r.Body == nil || r.Body == http.NoBody
	if !noBody && e.bodyTooLarge(r) {
		e.refuseBody(w)
		return
	}
	ctx := e.ctxOf(w, r)
	a, err := e.act.begin(ctx, rt.function)
	if err != nil {
		return // the client went away while the function was put to sleep
	}
	defer a.end()
	addr, err := e.opts.Upstreams.Endpoint(rt.function)
	if err != nil && preview.CodeOf(err) == preview.FailedPrecondition && e.opts.Waker != nil && e.wantsWaitingPage(r) {
		e.serveWaitingPage(w, a)
		return
	}
	if err != nil {
		addr, err = e.endpoint(ctx, a)
	}
	if err != nil {
		if errors.Is(err, errStartFailed) {
			h1.TextError(w, http.StatusBadGateway, "502 the function of this preview failed to start (glimpse status and glimpse logs show why)\n")
			return
		}
		switch preview.CodeOf(err) {
		case preview.DeadlineExceeded:
			h1.TextError(w, http.StatusGatewayTimeout, "504 the function of this preview did not wake up in time\n")
		case preview.Canceled:
			// the client went away while waiting
		case preview.FailedPrecondition, preview.Unavailable:
			w.Header()["Retry-After"] = hdrRetryAfter
			h1.TextError(w, http.StatusServiceUnavailable, "503 the function of this preview is asleep or starting; retry shortly\n")
		case preview.NotFound:
			h1.TextError(w, http.StatusBadGateway, "502 the function of this preview is not deployed\n")
		default:
			e.log.Warn("edge: resolving function", "function", rt.function, "err", err)
			h1.TextError(w, http.StatusBadGateway, "502 bad gateway\n")
		}
		return
	}
	addr, prefix := preview.SplitEndpoint(addr)
	if prefix != "" {
		// A gateway's /function/NAME: every request line below (the
		// exchange, its retries, an upgrade) reads RequestURI.
		r.RequestURI = prefix + requestURI(r)
	}
	busy := e.upstreamInFlight(addr)
	busy.Add(1)
	defer busy.Add(-1)
	if len(r.Header["Upgrade"]) > 0 && h1.HasToken(r.Header["Connection"], "upgrade") {
		e.proxyUpgrade(w, r, rt, addr)
		return
	}
	replayable := noBody && (isIdempotent(r.Method) || len(r.Header["Idempotency-Key"]) > 0)
	hw, _ := w.(*h1.ResponseWriter)
	var body *limits.Body
	if !noBody {
		body = limits.NewBody(w, r.Body, e.opts.Limits.BodyReadTimeout, e.opts.Limits.MaxRequestBodyBytes)
		defer body.Release()
	}
	for attempt := 0; ; attempt++ {
		uc, reused, err := e.tr.Get(ctx, addr, !replayable)
		if err != nil {
			e.upstreamError(w, r, rt, err)
			return
		}
		// A client that goes away aborts the upstream exchange too: on a
		// taken-over connection through its one AfterFunc, else through
		// one per request.
		var wroteHeader, keep bool
		if hw != nil {
			hw.BindUpstream(uc)
			if ctx.Err() == nil {
				wroteHeader, keep, err = e.exchange(w, r, uc, body)
			} else {
				err = ctx.Err()
			}
			if !hw.UnbindUpstream() {
				keep = false // the client went away: uc was aborted
			}
		} else {
			stop := context.AfterFunc(ctx, uc.Abort)
			wroteHeader, keep, err = e.exchange(w, r, uc, body)
			if !stop() {
				keep = false
			}
		}
		if keep {
			e.tr.Put(uc)
		} else {
			uc.Close()
		}
		if err == nil || errors.Is(err, errClientGone) {
			return
		}
		if !wroteHeader && e.clientBodyError(w, err) {
			return
		}
		if !wroteHeader && reused && replayable && attempt == 0 && errors.Is(err, errNoResponse) {
			continue // a keep-alive connection the upstream had closed
		}
		if wroteHeader {
			// The status line is out; only breaking the connection tells
			// the client that the body is incomplete.
			panic(http.ErrAbortHandler)
		}
		e.upstreamError(w, r, rt, err)
		return
	}
}

// clientBodyError answers a request whose body failed on the client's
// side (too large: 413, stalled: 408, malformed: 400) and reports whether
// it did.
func (e *Edge) clientBodyError(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, limits.ErrBodyTooLarge):
		e.refuseBody(w)
	case errors.Is(err, limits.ErrBodyTimeout):
		w.Header()["Connection"] = hdrClose
		h1.TextError(w, http.StatusRequestTimeout, limits.TimeoutText)
	case errors.Is(err, errBadBody):
		w.Header()["Connection"] = hdrClose
		h1.TextError(w, http.StatusBadRequest, "400 malformed request body\n")
	default:
		return false
	}
	return true
}

func (e *Edge) upstreamError(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	if e.ctxOf(w, r).Err() != nil {
		return // the client is gone; nobody reads an answer
	}
	e.log.Warn("edge: upstream request failed", "function", rt.function, "host", rt.spec.Host, "err", err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		h1.TextError(w, http.StatusGatewayTimeout, "504 the function of this preview did not answer in time\n")
		return
	}
	h1.TextError(w, http.StatusBadGateway, "502 the function of this preview could not be reached\n")
}

func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// exchange writes r to uc and copies the response to w. wroteHeader says
// whether the response status reached w; keep whether uc may be reused.
// body is r's body (nil for none): its first chunk is sent before the
// response is awaited, the rest, if any, by a bodySender running
// alongside, so that an upstream that answers before it has read the whole
// body (a 413 of its own, say) has its answer relayed instead of a 502, and
// one that streams its answer while reading is not deadlocked. Errors of
// the client's side of the body (limits.ErrBodyTooLarge,
// limits.ErrBodyTimeout, errClientGone) win over the upstream's.
func (e *Edge) exchange(w http.ResponseWriter, r *http.Request, uc *h1.UpConn, body *limits.Body) (wroteHeader, keep bool, err error) {
	var s *bodySender
	if body == nil {
		uc.DeferWrites(true) // sent together with the first read
		if err := e.writeHead(uc.Writer(), r, true, false); err != nil {
			return false, false, errors.Join(errNoResponse, err)
		}
	} else {
		uc.DeferWrites(false)
		if s, err = e.startBody(w, r, uc, body); err != nil {
			return false, false, err
		}
	}
	var head string
	var status int
	for {
		head, status, err = readHead(uc.Reader())
		if err != nil {
			break
		}
		if status >= 200 {
			break
		}
		if status == http.StatusSwitchingProtocols {
			err = errUpgradeRefuse
			break
		}
		// 100 Continue, 103 Early Hints: the final response follows.
	}
	if err != nil {
		if cerr := s.stop(); cerr != nil {
			return false, false, cerr
		}
		if s != nil && s.writeErr != nil && errors.Is(err, errNoResponse) {
			err = errors.Join(err, s.writeErr)
		}
		return false, false, err
	}
	if s != nil && !s.duplex {
		// The response writer cannot take the body's reads alongside
		// the response: no more of the body goes to the upstream.
		if cerr := s.stop(); cerr != nil {
			return false, false, cerr
		}
	}
	h := w.Header()
	fr, err := parseHeader(head, h, false)
	if err != nil {
		s.stop()
		return false, false, err
	}
	hasBody := r.Method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified
	if !fr.contentType && hasBody {
		h["Content-Type"] = nil // no sniffing: pass the upstream's answer as it is
	}
	w.WriteHeader(status)
	if hasBody {
		fl := flusher{w: w}
		switch {
		case fr.chunked:
			err = copyChunked(&fl, uc.Reader(), h)
		case fr.length >= 0:
			err = copyN(&fl, uc.Reader(), fr.length)
		default:
			err = copyToEOF(&fl, uc.Reader())
			fr.close = true
		}
	}
	keep = err == nil && !fr.close
	if s != nil {
		// The answer is complete: whatever of the body the upstream has
		// not taken it will not take (as net/http's Transport, which
		// stops sending too). The connection is reused only when the
		// body went out whole.
		cerr := s.stop()
		keep = keep && s.complete
		if err == nil && cerr != nil {
			// The answer is out whole; the client's body failed (it
			// stalled, say): its connection cannot be reused.
			e.closeClientAfter(w)
		}
	}
	return true, keep, err
}

// closeClientAfter makes a taken-over client connection close after the
// current response (its request body was not read to the end); net/http's
// server decides that itself.
func (e *Edge) closeClientAfter(w http.ResponseWriter) {
	if hw, ok := w.(*h1.ResponseWriter); ok {
		hw.CloseAfter()
	}
}

// bodySender copies a request body to an upstream connection (see
// exchange): the head and first chunk from the proxy's goroutine, the rest
// from a goroutine of its own. It owns uc's Writer; the proxy owns its
// Reader.
type bodySender struct {
	uc      *h1.UpConn
	body    *limits.Body
	bp      *[]byte // copy buffer, from bodyBufs
	chunked bool
	want    int64 // the Content-Length, -1 for chunked
	sent    int64
	duplex  bool // the response may be written while the body is read

	done     chan struct{} // closed when the goroutine ends; nil without one
	stopping atomic.Bool
	// Set before done is closed (or before startBody returns).
	complete  bool  // the whole body was written and flushed
	clientErr error // the body failed on the client's side
	writeErr  error // the upstream stopped taking the body
}

// startBody writes the request head and the first chunk of its body and,
// when there is more, starts a goroutine that sends the rest. An error is
// the client's (see exchange); an upstream that fails to take the body is
// recorded in writeErr, and its answer, if any, is still read.
func (e *Edge) startBody(w http.ResponseWriter, r *http.Request, uc *h1.UpConn, body *limits.Body) (*bodySender, error) {
	s := &bodySender{uc: uc, body: body, chunked: r.ContentLength < 0, want: r.ContentLength}
	if err := e.writeHead(uc.Writer(), r, false, false); err != nil {
		s.writeErr = err
		return s, nil
	}
	s.bp = bodyBufs.Get().(*[]byte)
	fin, err := s.step()
	if err != nil || fin {
		bodyBufs.Put(s.bp)
		return s, err
	}
	s.duplex = http.NewResponseController(w).EnableFullDuplex() == nil
	s.done = make(chan struct{})
	go s.run()
	return s, nil
}

func (s *bodySender) run() {
	defer close(s.done)
	defer bodyBufs.Put(s.bp)
	for {
		fin, err := s.step()
		if fin {
			return
		}
		if err != nil {
			if errors.Is(err, errBodyStopped) {
				s.clientErr = nil // stop's doing, not the client's
				return
			}
			// The client's side failed: abort the proxy's read of the
			// answer, which would otherwise wait for the rest.
			s.uc.Abort()
			return
		}
	}
}

// step reads one chunk of the body, writes and flushes it. fin reports
// the end of the body or a write error (writeErr); err is a client error,
// also stored in clientErr.
func (s *bodySender) step() (fin bool, err error) {
	buf := *s.bp
	bw := s.uc.Writer()
	n, rerr := s.body.Read(buf)
	if n > 0 {
		s.sent += int64(n)
		if s.chunked {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
		}
		bw.Write(buf[:n])
		if s.chunked {
			bw.WriteString("\r\n")
		}
	}
	switch {
	case rerr == io.EOF:
		if s.chunked {
			bw.WriteString("0\r\n\r\n")
		} else if s.sent != s.want {
			s.clientErr = errClientGone
			return false, s.clientErr
		}
		if err := bw.Flush(); err != nil {
			s.writeErr = err
			return true, nil
		}
		s.complete = true
		return true, nil
	case rerr != nil:
		s.clientErr = clientReadError(rerr)
		return false, s.clientErr
	}
	if err := bw.Flush(); err != nil {
		s.writeErr = err
		return true, nil
	}
	return false, nil
}

// clientReadError classifies an error reading a request body: the limits'
// errors as they are, bodySender.stop's interruption as errBodyStopped, a
// connection that failed or ended early as errClientGone, anything else
// (bad chunked framing) as errBadBody.
func clientReadError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, limits.ErrBodyTooLarge), errors.Is(err, limits.ErrBodyTimeout):
		return err
	case errors.Is(err, limits.ErrBodyStopped):
		return errBodyStopped
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, http.ErrBodyReadAfterClose), errors.As(err, &ne):
		return errClientGone
	}
	return errBadBody
}

// stop ends the sender: it interrupts the goroutine if it still runs (its
// write to the upstream and its read of the client) and waits for it. It
// returns the client error the body failed with before stop, if any. It
// may be called more than once, and on nil.
func (s *bodySender) stop() error {
	if s == nil {
		return nil
	}
	if s.done != nil {
		select {
		case <-s.done:
		default:
			s.stopping.Store(true)
			s.uc.AbortWrite()
			s.body.Stop()
			<-s.done
			s.complete = false // uc keeps the past deadline: never reuse it
		}
	}
	return s.clientErr
}

// writeRequest writes the request head and body to the upstream, all of
// the body before it returns (for upgrade requests; exchange streams
// bodies with a bodySender).
func (e *Edge) writeRequest(bw *bufio.Writer, r *http.Request, noBody, upgrade bool) error {
	if err := e.writeHead(bw, r, noBody, upgrade); err != nil || noBody {
		return err
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	buf := *bp
	chunked := r.ContentLength < 0
	var sent int64
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			sent += int64(n)
			if chunked {
				bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
				bw.WriteString("\r\n")
			}
			bw.Write(buf[:n])
			if chunked {
				bw.WriteString("\r\n")
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errClientGone
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	if chunked {
		bw.WriteString("0\r\n\r\n")
	} else if sent != r.ContentLength {
		return errClientGone
	}
	return bw.Flush()
}

// writeHead writes the request head to the upstream: the client's headers
// minus hop-by-hop ones, the X-Forwarded-* headers, and framing chosen by
// the edge. upgrade keeps Connection/Upgrade. Without a body the head is
// flushed; with one the body follows in the buffer.
func (e *Edge) writeHead(bw *bufio.Writer, r *http.Request, noBody, upgrade bool) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(requestURI(r))
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeader(k, e.opts.TrustForwardedHeaders) {
			continue
		}
		if len(conn) > 0 && h1.HasToken(conn, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && h1.HasToken(te, "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range r.Header["X-Forwarded-For"] {
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(remoteIP(r.RemoteAddr))
	if !e.opts.TrustForwardedHeaders || len(r.Header["X-Forwarded-Proto"]) == 0 {
		if r.TLS != nil {
			bw.WriteString("\r\nX-Forwarded-Proto: https")
		} else {
			bw.WriteString("\r\nX-Forwarded-Proto: http")
		}
	}
	if !e.opts.TrustForwardedHeaders || len(r.Header["X-Forwarded-Host"]) == 0 {
		bw.WriteString("\r\nX-Forwarded-Host: ")
		bw.WriteString(r.Host)
	}
	if upgrade {
		bw.WriteString("\r\nConnection: Upgrade\r\nUpgrade: ")
		bw.WriteString(r.Header["Upgrade"][0])
	}
	switch {
	case noBody:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			bw.WriteString("\r\nContent-Length: 0")
		}
		bw.WriteString("\r\n\r\n")
		return bw.Flush()
	case r.ContentLength >= 0:
		bw.WriteString("\r\nContent-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), r.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
	default:
		bw.WriteString("\r\nTransfer-Encoding: chunked\r\n\r\n")
	}
	return nil
}

// skipRequestHeader reports whether a client header is not forwarded as it
// is: hop-by-hop headers (RFC 9110 7.6.1), framing the edge redoes, and the
// forwarding headers it rewrites.
func skipRequestHeader(k string, trustForwarded bool) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Expect", "X-Forwarded-For", "Host":
		return true
	case "X-Forwarded-Proto", "X-Forwarded-Host":
		return !trustForwarded
	}
	return false
}

// requestURI is the origin-form request target of r: its RequestURI, or
// built from r.URL for an absolute-form request line.
func requestURI(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || (uri[0] != '/' && uri != "*") {
		uri = r.URL.RequestURI()
	}
	return uri
}

// remoteIP returns the address of "ip:port" or "[ipv6]:port" without
// allocating.
func remoteIP(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && !strings.Contains(addr[i:], "]") {
		addr = addr[:i]
	}
	if len(addr) > 1 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	return addr
}

// readHead reads one response header block (status line and fields, up to
// the empty line) as a single string, so that every header key and value
// is a substring of one allocation.
func readHead(br *bufio.Reader) (head string, status int, err error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF || errors.Is(err, net.ErrClosed) || isConnReset(err) {
			return "", 0, errNoResponse
		}
		return "", 0, err
	}
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := h1.HeaderEnd(buf, scanned); end > 0 {
			head = string(buf[:end])
			br.Discard(end)
			break
		}
		scanned = len(buf)
		if br.Buffered() >= br.Size() {
			return "", 0, errHeaderTooBig
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if err == io.EOF {
				return "", 0, errBadResponse
			}
			return "", 0, err
		}
	}
	// "HTTP/1.1 200 OK"
	if len(head) < 12 || !strings.HasPrefix(head, "HTTP/1.") || head[8] != ' ' {
		return "", 0, errBadResponse
	}
	status = int(head[9]-'0')*100 + int(head[10]-'0')*10 + int(head[11]-'0')
	if head[9] < '1' || head[9] > '5' || head[10] < '0' || head[10] > '9' || head[11] < '0' || head[11] > '9' {
		return "", 0, errBadResponse
	}
	return head, status, nil
}

func isConnReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// framing is what the response header says about the body.
type framing struct {
	length      int64 // -1: not given
	chunked     bool
	close       bool
	contentType bool
	upgrade     string
}

// parseHeader adds the fields of head (after its status line) to h,
// dropping hop-by-hop fields; upgrade keeps Connection and Upgrade (for
// 101 responses).
func parseHeader(head string, h http.Header, upgrade bool) (framing, error) {
	fr := framing{length: -1}
	if head[7] == '0' {
		fr.close = true // HTTP/1.0: no keep-alive negotiation here
	}
	i := strings.IndexByte(head, '\n')
	rest := head[i+1:]
	n := strings.Count(rest, "\n")
	vals := make([]string, n)
	vi := 0
	var connTokens string
	for rest != "" {
		j := strings.IndexByte(rest, '\n')
		if j < 0 {
			return fr, errBadResponse
		}
		line := rest[:j]
		rest = rest[j+1:]
		if l := len(line); l > 0 && line[l-1] == '\r' {
			line = line[:l-1]
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fr, errBadResponse // obsolete line folding: RFC 9112 lets a proxy refuse it
		}
		c := strings.IndexByte(line, ':')
		if c <= 0 {
			return fr, errBadResponse
		}
		key := http.CanonicalHeaderKey(line[:c])
		v := strings.Trim(line[c+1:], " \t")
		switch key {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (fr.length >= 0 && n != fr.length) {
				return fr, errBadResponse
			}
			fr.length = n
		case "Transfer-Encoding":
			if len(v) >= 7 && strings.EqualFold(v[len(v)-7:], "chunked") {
				fr.chunked = true
			}
			continue
		case "Connection":
			if h1.HasToken([]string{v}, "close") {
				fr.close = true
			}
			connTokens = v
			if !upgrade {
				continue
			}
		case "Upgrade":
			fr.upgrade = v
			if !upgrade {
				continue
			}
		case "Keep-Alive", "Proxy-Connection", "Te", "Proxy-Authenticate":
			continue
		case "Content-Type":
			fr.contentType = true
		}
		vals[vi] = v
		if old, ok := h[key]; ok {
			h[key] = append(old, v)
		} else {
			h[key] = vals[vi : vi+1 : vi+1]
		}
		vi++
	}
	if fr.chunked {
		fr.length = -1
		delete(h, "Content-Length")
	}
	if connTokens != "" && !upgrade {
		for k := range h {
			if h1.HasToken([]string{connTokens}, k) {
				delete(h, k)
			}
		}
	}
	return fr, nil
}

// flusher flushes the response when the upstream has nothing more
// buffered, so streamed responses (server-sent events, long polls) reach
// the client as they are produced, while a response that arrives at once is
// written at once.
type flusher struct {
	w       http.ResponseWriter
	pending bool
	rc      *http.ResponseController
}

func (f *flusher) write(p []byte) error {
	if _, err := f.w.Write(p); err != nil {
		return errClientGone
	}
	f.pending = true
	return nil
}

func (f *flusher) flush() error {
	if !f.pending {
		return nil
	}
	f.pending = false
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
		return nil
	}
	if f.rc == nil {
		f.rc = http.NewResponseController(f.w)
	}
	if err := f.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return errClientGone
	}
	return nil
}

// fill makes br hold at least one byte, flushing the client first when it
// would have to wait for the upstream.
func (f *flusher) fill(br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return nil
	}
	if err := f.flush(); err != nil {
		return err
	}
	_, err := br.Peek(1)
	return err
}

// copyN copies exactly n bytes of body from br to the client, straight out
// of br's buffer.
func copyN(f *flusher, br *bufio.Reader, n int64) error {
	for n > 0 {
		if err := f.fill(br); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		k := br.Buffered()
		if int64(k) > n {
			k = int(n)
		}
		buf, _ := br.Peek(k)
		err := f.write(buf)
		br.Discard(k)
		n -= int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

func copyToEOF(f *flusher, br *bufio.Reader) error {
	for {
		if err := f.fill(br); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		k := br.Buffered()
		buf, _ := br.Peek(k)
		err := f.write(buf)
		br.Discard(k)
		if err != nil {
			return err
		}
	}
}

// copyChunked decodes a chunked body from br and writes its data to the
// client (which net/http re-chunks); trailers are passed on as
// http.TrailerPrefix fields. (The upstream's Trailer header is passed on
// before the status is written, which makes net/http chunk the response
// even when it is short; undeclared trailers reach the client only when
// the response was long enough to be chunked anyway.)
func copyChunked(f *flusher, br *bufio.Reader, h http.Header) error {
	for {
		if err := f.fill(br); err != nil {
			return unexpectedEOF(err)
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			return unexpectedEOF(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return errBadResponse
		}
		if size == 0 {
			break
		}
		if err := copyN(f, br, size); err != nil {
			return err
		}
		if err := f.fill(br); err != nil {
			return unexpectedEOF(err)
		}
		crlf, err := br.ReadSlice('\n')
		if err != nil {
			return unexpectedEOF(err)
		}
		if !(len(crlf) == 2 && crlf[0] == '\r' || len(crlf) == 1) {
			return errBadResponse
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return unexpectedEOF(err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return nil
		}
		if c := strings.IndexByte(s, ':'); c > 0 {
			h.Add(http.TrailerPrefix+http.CanonicalHeaderKey(s[:c]), strings.Trim(s[c+1:], " \t"))
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == '\r' || c == '\n' || c == ' ' || c == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
		digits++
	}
	return n, digits > 0
}

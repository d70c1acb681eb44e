package edge

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/ingress/edge/internal/h1"
)

// proxyUpgrade forwards a request that asks to switch protocols (a
// WebSocket handshake) on a connection of its own. When the upstream
// answers 101, the client connection is hijacked and bytes are copied both
// ways until either side closes; any other answer is passed on like a
// normal response.
func (e *Edge) proxyUpgrade(w http.ResponseWriter, r *http.Request, rt *route, addr string) {
	uc, err := e.tr.Dial(e.ctxOf(w, r), addr)
	if err != nil {
		e.upstreamError(w, r, rt, err)
		return
	}
	defer uc.Close()
	up, br := uc.Conn(), uc.Reader()
	noBody := r.Body == nil || r.Body == http.NoBody
	if err := e.writeRequest(uc.Writer(), r, noBody, true); err != nil {
		e.upstreamError(w, r, rt, err)
		return
	}
	head, status, err := readHead(br)
	for err == nil && status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		head, status, err = readHead(br)
	}
	if err != nil {
		e.upstreamError(w, r, rt, err)
		return
	}
	if status != http.StatusSwitchingProtocols {
		h := w.Header()
		fr, err := parseHeader(head, h, false)
		if err != nil {
			e.upstreamError(w, r, rt, err)
			return
		}
		hasBody := r.Method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified
		w.WriteHeader(status)
		if hasBody {
			fl := flusher{w: w}
			switch {
			case fr.chunked:
				copyChunked(&fl, br, h)
			case fr.length >= 0:
				copyN(&fl, br, fr.length)
			default:
				copyToEOF(&fl, br)
			}
		}
		return
	}
	fr, err := parseHeader(head, http.Header{}, true)
	if err != nil || !strings.EqualFold(fr.upgrade, r.Header["Upgrade"][0]) {
		e.upstreamError(w, r, rt, errUpgradeRefuse)
		return
	}
	cc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		e.log.Warn("edge: cannot take over the client connection for an upgrade", "err", err)
		h1.TextError(w, http.StatusBadGateway, "502 protocol upgrade not supported on this connection\n")
		return
	}
	defer cc.Close()
	cc.SetDeadline(time.Time{})
	// The upstream's 101 response goes to the client as it came.
	if _, err := io.WriteString(cc, head); err != nil {
		return
	}
	// Bytes either side sent after its head are already buffered.
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, err := cc.Write(b); err != nil {
			return
		}
		br.Discard(n)
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
		brw.Reader.Discard(n)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, cc)
		closeWrite(up)
	}()
	io.Copy(cc, up)
	closeWrite(cc)
	// The upstream finished; give the client's side a moment to finish
	// its close handshake, then tear both down.
	timer := time.AfterFunc(5*time.Second, func() { cc.Close(); up.Close() })
	wg.Wait()
	timer.Stop()
}

// closeWrite half-closes a TCP connection (or closes another kind).
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

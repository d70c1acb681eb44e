// Package h1 is the edge's own HTTP/1.1 engine: a server loop for client
// connections it takes over from net/http's server (Server, ResponseWriter)
// and a pool of upstream connections a proxy writes requests to and reads
// responses from itself (Transport, UpConn). Both exist for throughput:
// net/http's server spends, per request, a goroutine and a read system
// call on watching the client (its "background read") plus wake-ups of
// idle threads, and its Transport two goroutine hand-offs; on a two-core
// machine that is most of the gap to nginx.
//
// # Taking a connection over
//
// Server.TakeOver hijacks (http.Hijacker) the connection of a request that
// net/http's server is serving and serves that request and the
// connection's following ones with Server.Handler in a loop on the
// caller's goroutine, until the connection closes. The caller decides
// which requests qualify (the edge: HTTP/1.x, no body, no Upgrade, a
// routed host); TakeOver returns false, having written nothing, when the
// connection cannot be hijacked or is already taken over, and the caller
// serves the request through net/http as usual. net/http stays the
// fallback in the parser too: a header block of the common shape (no
// body, origin-form target without percent-escapes, no Expect, no
// obsolete line folding, at most the 4 KiB read buffer) is parsed here
// with a handful of allocations; every other request is read by
// http.ReadRequest and then given the checks net/http's server applies
// (protocol version, Host presence and syntax, field names and values).
// FuzzParseRequest checks both paths differentially against net/http.
// Reads and writes use raw non-blocking socket calls where the platform
// has them (TCP on unix), else the net.Conn.
//
// # What handlers get
//
// The handler's http.ResponseWriter is a *ResponseWriter: it buffers a
// small body so that short responses carry a Content-Length and longer
// ones are chunked (HTTP/1.1) or close-delimited (HTTP/1.0), sniffs a
// missing Content-Type, adds Date, sends trailers (declared or
// http.TrailerPrefix), and strips line breaks from header values. It is an
// http.Flusher, an http.Hijacker (for upgrades: the connection then
// belongs to the handler until it returns, when the server closes it,
// unlike net/http, which leaves it open), an io.ReaderFrom that uses
// sendfile(2) for a file of known length, and it answers
// http.ResponseController's SetReadDeadline and EnableFullDuplex (a handler
// may read the request body while it writes the response). A handler
// that sends the same header fields with many responses renders them once
// (NewFields) and attaches them with SetFields. A request's
// context is not the connection's after the first request (a copy of
// each request is saved): handlers use ResponseWriter.Context, which is
// canceled when the client goes away. The client is watched for that only
// while a body-less request with nothing pipelined behind it has run for
// watchDelay (100 ms). A handler panic breaks the connection (and is
// logged unless it is http.ErrAbortHandler), as with net/http.
//
// # Keep-alive and limits
//
// A connection is kept for the next request unless the request or the
// response says close, HTTP/1.0 did not ask for keep-alive, the response
// was shorter than its Content-Length, or the handler left more than
// 256 KiB of the request body unread or did not finish it within
// BodyReadTimeout (a connection that closes with a body possibly still
// arriving half-closes and drains for half a second first, so the client
// reads the response instead of a reset). Between requests a connection
// waits at most IdleTimeout for the next first byte, then closes
// silently; from that byte the header block must arrive within
// ReadHeaderTimeout (else 408) and fit in MaxHeaderBytes (else 431); a
// malformed request is answered 400, an unsupported version 505, an
// Expect other than 100-continue 417, each with Connection: close. A
// 100 Continue is sent before the handler runs, unless the handler is a
// BodyRefuser that refuses the body. net/http's server timeouts and
// limits no longer apply to a taken-over connection.
//
// # Concurrency and shutdown
//
// Server and Transport are safe for concurrent use; each taken-over
// connection is served by one goroutine (the one that called TakeOver),
// plus a short-lived watchdog read. While a Server has connections, one
// sweeper goroutine wakes every 25 ms to start the watchdog of requests
// that have run 100 ms and to end waits past IdleTimeout: both are that
// precise, and no request sets a timer or a deadline for them. http.Server.Shutdown neither sees nor
// waits for taken-over connections (they are hijacked), and the embedding
// server's middleware sees one call per connection, not per request: call
// Server.Close after Shutdown. Close ends idle connections at once and
// busy ones after their current response; it does not wait.
//
// # Upstream connections
//
// Transport.Get hands out an idle keep-alive connection to an address
// (LIFO) or dials one; the caller writes the request to UpConn.Writer,
// reads the response from UpConn.Reader and calls Transport.Put when the
// response was read completely, else UpConn.Close. With
// UpConn.DeferWrites a body-less request goes out in the same poller call
// that waits for the response. ResponseWriter.BindUpstream lets a client
// that goes away abort the exchange running for it.
package h1

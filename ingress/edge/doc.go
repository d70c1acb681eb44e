// Package edge is Glimpse's own ingress: an HTTP handler that routes each
// request by its Host header to one preview. Paths under a route's function
// paths are reverse-proxied (HTTP/1.1 with a keep-alive connection pool,
// streaming, trailers, WebSocket upgrades) to the function's upstream
// address; everything else is served from the preview's content-addressed
// asset manifest (from any preview.AssetStore: sendfile for the file
// store, a digest-keyed memory cache for the others) with ETags,
// conditional and range requests. Edge implements preview.Router
// in-process, with compare-and-swap versions and tombstones that answer
// 404, and persists its routes through a RouteStore (JournalStore: a
// snapshot plus one journal line per change); package ingress/routeapi
// serves the same operations over HTTP, and its "edge" URL scheme
// (edge://host:port) opens a preview.Router client of that API.
//
// Request bodies stream to functions, never buffered whole, while the
// function's answer is read, so a function may answer before it has read
// the body (its own 413, say) or while it reads it. Options.Limits bound
// what a client can hold: header and body read timeouts, header and body
// sizes (see Limits); Options.IdleTimeout bounds idle keep-alive
// connections the edge has taken over.
//
// The proxy is written for throughput, to keep pace with nginx in front of
// the same upstream (bench/compare.sh measures it): it does not use
// net/http's Transport (no goroutines per upstream connection, the request
// written by the same poller call that waits for the response), looks
// routes up without allocating, and by default takes over HTTP/1.x
// keep-alive client connections of routed hosts from net/http's server
// (see Options.DisableConnTakeover), serving them with its own request
// parser and response writer and raw, non-blocking socket calls. That
// HTTP/1.1 engine (the taken-over connections, the parser, the upstream
// connection pool) is package internal/h1, whose doc comment states its
// contract; this package keeps routing, proxying (the exchange of one
// request over an h1 upstream connection, upgrades), activity counting,
// wake, static serving, limits, metrics and the route store.
//
// Files: edge.go (Edge, options, routes, ServeHTTP and the handler of
// taken-over connections), proxy.go and upgrade.go (forwarding to
// functions), activity.go and wake.go (counting, scale from zero),
// static.go and blobcache.go (assets), limits.go, metrics.go,
// routestore.go.
package edge

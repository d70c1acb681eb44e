// Package plugin runs Glimpse providers out of tree, as separate programs
// over hashicorp/go-plugin with gRPC (the contract is proto/glimpse.proto).
//
// A plugin's main is one call, plugin.Serve(plugin.Providers{DNS: d}); the
// host opens a plugin binary with Open (or by URL scheme: Lookup, and the
// Open* openers, which find glimpse-plugin-<scheme> in $GLIMPSE_HOME/plugins
// and then on PATH) and gets adapters that implement preview's interfaces,
// and the optional interfaces only when the plugin serves them.
//
// What survives the wire: preview's error code, its retryability and the
// message (a gRPC status with an ErrorInfo detail; preview.ErrStaleGeneration
// and ErrSuperseded stay reachable with errors.Is); context cancellation and
// deadlines, which reach the plugin's provider; streaming where the Go API
// streams (build progress lines, blob bodies in 64 KiB chunks in both
// directions, never whole in memory).
//
// Lifecycle: the plugin starts on first use, with a handshake that checks
// ProtocolVersion and mutual TLS (AutoMTLS); a plugin that dies mid-call
// makes that call fail with Unavailable and the next call starts it again;
// no plugin outlives its host, also when the host is killed -9 (Linux's
// parent-death signal, and the plugin watching its parent elsewhere).
// Hosts call Shutdown before exiting.
package plugin

// Package pluginpb holds the Go code generated from glimpse.proto, the wire
// contract between Glimpse and its out-of-tree provider plugins. Plugin
// authors do not use it directly: package plugin wraps it. Regenerate with
// `go generate ./plugin/proto` (it runs gen.sh; see there for the tools).
package pluginpb

//go:generate ./gen.sh

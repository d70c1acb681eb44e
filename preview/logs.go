package preview

import (
	"context"
	"time"
)

// LogOptions select the lines a LogReader returns. They mean what the
// query of OpenFaaS's GET /system/logs means (faas-provider logs.Request).
type LogOptions struct {
	// Since, when not zero, skips lines written before it.
	Since time.Time
	// Tail, when positive, returns only the last Tail lines (of those
	// Since selects) written before the call; <= 0 means all of them.
	Tail int
	// Follow keeps the call running after the existing lines, delivering
	// new ones as the function writes them, until ctx ends.
	Follow bool
}

// LogLine is one line a function wrote (stdout and stderr alike). Its JSON
// has the field names of faas-provider's logs.Message.
type LogLine struct {
	// Function is the function's name.
	Function string `json:"name"`
	// Instance names the replica (a pod, a process) that wrote the line;
	// empty when the runtime does not say.
	Instance string `json:"instance,omitempty"`
	// Time is when the line was written; zero when unknown.
	Time time.Time `json:"timestamp"`
	// Text is the line without its newline.
	Text string `json:"text"`
}

// LogReader is an optional interface of a FunctionRuntime that can read
// its functions' output: faas/localfaas's Runtime (its log files) and
// faas/openfaas's Client (the gateway's /system/logs, which OpenFaaS
// gateways serve from the provider's log system) implement it.
type LogReader interface {
	// Logs calls fn with the function's log lines that opts selects, in
	// the order they were written, and returns nil once it has delivered
	// them; with opts.Follow it keeps delivering new lines until ctx ends
	// and then returns ctx's error (or nil when the runtime ends the
	// stream, as when the function is removed). An unknown function is
	// NotFound, reported before fn is called. When fn returns an error,
	// Logs stops and returns it. fn is never called concurrently.
	Logs(ctx context.Context, name string, opts LogOptions, fn func(LogLine) error) error
}

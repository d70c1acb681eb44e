// Package testenv decides what a test does when a real server it needs is
// not provided: under CI (CI=true or CI=1, which .ci/run sets) the test
// fails, since .ci/run is responsible for providing every server; on a
// developer machine it skips with the reason.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true or CI=1).
func InCI() bool {
	ci := os.Getenv("CI")
	return ci == "true" || ci == "1"
}

// Require returns the value of the environment variable env, which names
// the server (or binary) described by what. When it is empty the test
// fails under CI and skips elsewhere.
func Require(tb testing.TB, env, what string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		Missing(tb, env+" is not set: no "+what)
	}
	return v
}

// Missing fails tb under CI and skips it elsewhere, with reason.
func Missing(tb testing.TB, reason string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("%s (CI=true: .ci/run must provide it)", reason)
	}
	tb.Skip(reason)
}

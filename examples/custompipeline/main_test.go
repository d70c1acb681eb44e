package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Bad input is a one-line error before anything is opened.
func TestBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-dir", "../hello", "-pr", "1"}, "is required"},
		{[]string{"-dir", "../hello", "-pr", "1", "-registry", "oci://registry.example.com/p", "-runtime", "openfaas://g:8080", "-assets", "fs:///tmp/x", "-router", "nope://x"}, "nope"},
		{[]string{"-pr", "x"}, "invalid value"},
	} {
		err := run(context.Background(), c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run(%v) = %v, want one line containing %q", c.args, err, c.want)
		}
	}
}

package main

import (
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: GLIMPSE_X is not set: no server\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"pass","Package":"p"}`,
	}, "\n")
	var out strings.Builder
	if code := run(strings.NewReader(in), &out); code != 0 {
		t.Fatalf("exit %d for a passing run:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "1 passed, 0 failed, 1 skipped") || !strings.Contains(out.String(), "skipped p TestB: GLIMPSE_X is not set: no server") {
		t.Fatalf("summary:\n%s", out.String())
	}

	failing := in + "\n" + `{"Action":"fail","Package":"q","Test":"TestC"}` + "\n" + `{"Action":"fail","Package":"q"}` + "\n" + "# q\nq.go:1: syntax error"
	out.Reset()
	if code := run(strings.NewReader(failing), &out); code != 1 {
		t.Fatalf("exit %d for a failing run", code)
	}
	if !strings.Contains(out.String(), "1 passed, 1 failed, 1 skipped") || !strings.Contains(out.String(), "failed packages: q") || !strings.Contains(out.String(), "q.go:1: syntax error") {
		t.Fatalf("summary:\n%s", out.String())
	}
}

// Command testsummary reads `go test -json` output on stdin, prints each
// package's result line (and build errors) as `go test` does, the whole
// output of every failed test, and ends with
// one line "N passed, N failed, N skipped" followed by every skipped test
// with its reason. It exits 1 when a test or a package failed (a build
// failure included) and 0 otherwise. .ci/run uses it so that CI says what
// it ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	var (
		passed, failed, skipped int
		pkgFailed               []string
		skips                   = map[key]string{}
		output                  = map[key][]string{}
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			fmt.Fprintln(out, string(line)) // not test2json: a build error line
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			if e.Test != "" {
				output[k] = append(output[k], e.Output)
			} else if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
				fmt.Fprint(out, e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
			}
		case "fail":
			if e.Test != "" {
				failed++
				fmt.Fprint(out, strings.Join(output[k], ""))
			} else {
				pkgFailed = append(pkgFailed, e.Package)
			}
		case "skip":
			if e.Test != "" {
				skipped++
				skips[k] = skipReason(output[k])
			}
		}
		if e.Action == "pass" || e.Action == "fail" || e.Action == "skip" {
			if e.Action != "skip" {
				delete(output, k)
			}
		}
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	ks := make([]key, 0, len(skips))
	for k := range skips {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].pkg != ks[j].pkg {
			return ks[i].pkg < ks[j].pkg
		}
		return ks[i].test < ks[j].test
	})
	for _, k := range ks {
		fmt.Fprintf(out, "skipped %s %s: %s\n", k.pkg, k.test, skips[k])
	}
	if len(pkgFailed) > 0 {
		fmt.Fprintf(out, "failed packages: %s\n", strings.Join(pkgFailed, " "))
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// skipReason is the message t.Skip printed: the last output line of the
// test that is not its "--- SKIP" or "=== RUN" line.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		if _, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(msg)], ".go:") {
			return msg
		}
		return l
	}
	return "(no reason given)"
}

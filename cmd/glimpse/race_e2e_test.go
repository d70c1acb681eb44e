package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// variant copies examples/hello with its own page and function source, so
// that an up of it must build (about a second with ko).
func variant(t *testing.T, name string) string {
	t.Helper()
	dir := testapp.Copy(t, "../../examples/hello")
	if err := os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<h1>"+name+"</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "function", "main.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// variant " + name + " " + time.Now().String() + "\n")
	f.Close()
	return dir
}

type upResult struct {
	stdout, stderr string
	err            error
}

// TestConcurrentUpsServeOneWholeCommit is reproduction 1 of issue 8 on the
// real binary: two ups of one pull request at once. Before the fix both
// said ready and every static path answered 404. Now the preview serves
// one Up's page together with the same Up's function, and an Up that lost
// says so in one line.
func TestConcurrentUpsServeOneWholeCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	s := startStack(t, buildBinary(t))
	c := s.client()
	for round := 0; round < 2; round++ {
		dirs := []string{variant(t, "first"), variant(t, "second")}
		commits := []string{strings.Repeat("a", 39) + string(rune('0'+round)), strings.Repeat("b", 39) + string(rune('0'+round))}
		res := make([]upResult, 2)
		var wg sync.WaitGroup
		for i := range dirs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				res[i].stdout, res[i].stderr, res[i].err = s.try("up", dirs[i], "--pr", "40", "--commit", commits[i])
			}(i)
		}
		wg.Wait()
		ok := 0
		for i, r := range res {
			if r.err == nil {
				ok++
				continue
			}
			if !strings.Contains(r.stderr, "a newer up or a down of this pull request came after this one") {
				t.Fatalf("round %d: up %d failed for another reason: %v\n%s", round, i, r.err, r.stderr)
			}
		}
		if ok == 0 {
			t.Fatalf("round %d: both ups failed:\n%s\n%s", round, res[0].stderr, res[1].stderr)
		}
		url := "http://pr-40.hello.localhost/"
		code, page, _ := get(t, c, "GET", url, "")
		if code != 200 {
			t.Fatalf("round %d: GET / = %d %q after two concurrent ups, want a page", round, code, page)
		}
		winner := map[string]int{"<h1>first</h1>\n": 0, "<h1>second</h1>\n": 1}[page]
		if page != "<h1>first</h1>\n" && page != "<h1>second</h1>\n" {
			t.Fatalf("round %d: GET / = %q, neither up's page", round, page)
		}
		if res[winner].err != nil {
			t.Fatalf("round %d: the page served is from the up that failed: %s", round, res[winner].stderr)
		}
		code, body, _ := get(t, c, "POST", url+"graphql", `{}`)
		if code != 200 || !strings.Contains(body, commits[winner]) {
			t.Fatalf("round %d: POST /graphql = %d %q; want the function of commit %s, which serves the page", round, code, body, commits[winner])
		}
		stdout, _ := s.run(t, "ls", "-o", "json")
		var list []map[string]any
		json.Unmarshal([]byte(stdout), &list)
		if len(list) != 1 || list[0]["commit"] != commits[winner] || list[0]["status"] != "ready" {
			t.Fatalf("round %d: ls = %s; want one ready preview at %s", round, stdout, commits[winner])
		}
	}
}

// TestUpRacingDownIsFinal is reproduction 2 of issue 8 on the real
// binary: `up & sleep 0.3; down`. Before the fix both exited 0 and the
// function and route stayed with the manifest gone. Now nothing of the
// preview is left once both have exited, whatever the up says. The down
// starts once the up is building (after its claim, the first step): an up
// that has not claimed yet when a down runs is ordered after it, as if
// started later, and rightly brings the preview back.
func TestUpRacingDownIsFinal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	s := startStack(t, buildBinary(t))
	c := s.client()
	dir := variant(t, "racing")
	cmd := exec.Command(s.bin, "up", dir, "--pr", "20")
	cmd.Env = append(os.Environ(), "GLIMPSE_HOME="+s.home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	claimed := make(chan struct{}) // closed when the up is building
	var upLog strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			upLog.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "| building") {
				once.Do(func() { close(claimed) })
			}
		}
	}()
	select {
	case <-claimed:
	case <-time.After(60 * time.Second):
		t.Fatal("the up never started building")
	}
	time.Sleep(300 * time.Millisecond)
	_, downErr := s.run(t, "down", dir, "--pr", "20")
	<-logDone
	r := upResult{stderr: upLog.String(), err: cmd.Wait()}
	if r.err != nil && !strings.Contains(r.stderr, "a newer up or a down of this pull request came after this one") {
		t.Fatalf("up racing down failed for another reason: %v\n%s", r.err, r.stderr)
	}
	if code, body, _ := get(t, c, "GET", "http://pr-20.hello.localhost/", ""); code != 404 {
		t.Fatalf("GET / after down = %d %q, want 404\nup:\n%s\ndown:\n%s", code, body, r.stderr, downErr)
	}
	if code, _, _ := get(t, c, "POST", "http://pr-20.hello.localhost/graphql", "{}"); code != 404 {
		t.Fatalf("POST /graphql after down = %d, want 404", code)
	}
	stdout, _ := s.run(t, "ls", "-o", "json")
	if strings.TrimSpace(stdout) != "[]" {
		t.Fatalf("ls after up raced down = %s, want []\nup:\n%s", stdout, r.stderr)
	}
	// A later up brings it back.
	s.run(t, "up", dir, "--pr", "20")
	if code, _, _ := get(t, c, "GET", "http://pr-20.hello.localhost/", ""); code != 200 {
		t.Fatalf("GET / after a new up = %d", code)
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

func TestLogsStatusBadInput(t *testing.T) {
	home := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"logs", "../../examples/hello"}, "--pr is required"},
		{[]string{"logs", "../../examples/hello", "--pr", "x"}, `--pr must be a positive integer, got "x"`},
		{[]string{"logs", "../../examples/hello", "--pr", "1", "--since", "yesterday"}, `--since must be a duration such as 10m, or an RFC3339 time such as 2026-01-02T15:04:05Z, got "yesterday"`},
		{[]string{"logs", "../../examples/hello", "--pr", "1", "--since", "-5m"}, "--since must be a positive duration"},
		{[]string{"logs", "../../examples/hello", "--pr", "1", "--tail", "ten"}, `--tail must be a number of lines, got "ten"`},
		{[]string{"logs", "../../examples/hello", "--pr", "1", "-o", "yaml"}, "--output must be json or table"},
		{[]string{"logs", "--app", "Bad!", "--pr", "1"}, `--app "Bad!"`},
		{[]string{"logs", t.TempDir(), "--pr", "1"}, "no glimpse.yaml in"},
		{[]string{"logs", "../../examples/hello", "--pr", "1"}, "no local stack is running"},
		{[]string{"logs", "../../examples/hello", "--pr", "1", "--follow=maybe"}, "invalid argument"},
		{[]string{"status", "../../examples/hello"}, "--pr is required"},
		{[]string{"status", "../../examples/hello", "--pr", "0"}, "--pr must be a positive integer"},
		{[]string{"status", "../../examples/hello", "--pr", "1", "-o", "yaml"}, "--output must be json or table"},
		{[]string{"status", "--app", "Bad!", "--pr", "1"}, `--app "Bad!"`},
		{[]string{"status", "a", "b", "--pr", "1"}, "accepts at most 1 arg"},
		{[]string{"status", "../../examples/hello", "--pr", "1"}, "no local stack is running"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, home, c.args...)
			if err == nil {
				t.Fatal("got nil error")
			}
			msg := oneLine(err.Error())
			if msg != err.Error() || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q: want one line containing %q", err, c.want)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"10m":                       now.Add(-10 * time.Minute),
		"1h30m":                     now.Add(-90 * time.Minute),
		"2026-11-30T08:00:00Z":      time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		"2026-11-30T09:00:00+01:00": time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// logApp writes an app whose function prints ?line= on /api/print, exits
// on /api/crash and from then on refuses to start (a crash loop).
func logApp(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"glimpse.yaml":      "app: logapp\nfunction:\n  source: function\n  routes: [/api]\nassets:\n  dir: public\n",
		"public/index.html": "<p>logs</p>\n",
		"public/a.css":      "p{}\n",
		"function/go.mod":   "module example.com/logapp\n\ngo 1.26\n",
		"function/main.go": `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	marker := os.TempDir() + "/logapp-crashed-" + os.Getenv("GLIMPSE_COMMIT")
	if _, err := os.Stat(marker); err == nil {
		fmt.Println("logapp: crashed before, refusing to start")
		os.Exit(1)
	}
	http.HandleFunc("/api/print", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.URL.Query().Get("line"))
	})
	http.HandleFunc("/api/crash", func(w http.ResponseWriter, r *http.Request) {
		os.WriteFile(marker, nil, 0o644)
		fmt.Println("logapp: crashing")
		os.Exit(3)
	})
	fmt.Println("logapp: listening")
	panic(http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil))
}
`,
	}
	for p, c := range files {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLogsAndStatusE2E runs the real binary: logs (with --tail, --since,
// -f showing a new line within a second and ending on SIGINT), status in
// both formats, and a crashing function shown failed by ls and status.
func TestLogsAndStatusE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	bin := buildBinary(t)
	s := startStack(t, bin)
	c := s.client()
	_, port, _ := net.SplitHostPort(s.addr)
	dir := logApp(t)
	commit := fmt.Sprintf("%x", time.Now().UnixNano())[:12]
	t.Cleanup(func() { os.Remove(os.TempDir() + "/logapp-crashed-" + commit) })
	s.run(t, "up", dir, "--pr", "5", "--commit", commit)
	base := "http://pr-5.logapp.localhost:" + port
	if code, body, _ := get(t, c, "GET", base+"/api/print?line=first+line", ""); code != 200 {
		t.Fatalf("print: %d %s", code, body)
	}
	get(t, c, "GET", base+"/api/print?line=second", "")

	out, _ := s.run(t, "logs", dir, "--pr", "5")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], " logapp: listening") || !strings.HasSuffix(lines[1], " first line") || !strings.HasSuffix(lines[2], " second") {
		t.Fatalf("glimpse logs:\n%s", out)
	}
	if ts, _, _ := strings.Cut(lines[1], " "); func() bool { _, err := time.Parse(time.RFC3339, ts); return err != nil }() {
		t.Fatalf("line %q does not start with an RFC3339 time", lines[1])
	}
	if out, _ := s.run(t, "logs", dir, "--pr", "5", "--tail", "1"); !strings.HasSuffix(strings.TrimSpace(out), " second") || strings.Count(out, "\n") != 1 {
		t.Fatalf("--tail 1:\n%s", out)
	}
	if out, _ := s.run(t, "logs", dir, "--pr", "5", "--since", "1h", "-o", "json"); strings.Count(out, "\n") != 3 {
		t.Fatalf("--since 1h -o json:\n%s", out)
	} else {
		var l map[string]any
		if err := json.Unmarshal([]byte(strings.Split(out, "\n")[1]), &l); err != nil || l["text"] != "first line" || l["name"] != "logapp-pr-5" {
			t.Fatalf("json line: %v %v", l, err)
		}
	}
	if out, _ := s.run(t, "logs", dir, "--pr", "5", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); out != "" {
		t.Fatalf("--since in an hour:\n%s", out)
	}
	if _, _, err := s.try("logs", dir, "--pr", "6"); err == nil {
		t.Fatal("logs of a PR without a preview succeeded")
	}
	_, stderr, _ := s.try("logs", dir, "--pr", "6")
	if !strings.Contains(stderr, "pull request #6 has no function deployed") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("logs of a PR without a preview: %q", stderr)
	}

	// -f: a line printed now shows within a second; SIGINT ends it cleanly.
	f := exec.Command(bin, "logs", dir, "--pr", "5", "-f", "--tail", "1")
	f.Env = append(os.Environ(), "GLIMPSE_HOME="+s.home)
	pipe, _ := f.StdoutPipe()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	expect := func(suffix string) {
		t.Helper()
		select {
		case l := <-got:
			if !strings.HasSuffix(l, " "+suffix) {
				t.Fatalf("logs -f printed %q, want ... %s", l, suffix)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("logs -f did not print %q", suffix)
		}
	}
	expect("second")
	start := time.Now()
	get(t, c, "GET", base+"/api/print?line=live", "")
	expect("live")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("logs -f took %v to show a line", d)
	}
	f.Process.Signal(syscall.SIGINT)
	if err := f.Wait(); err != nil {
		t.Fatalf("logs -f after SIGINT: %v", err)
	}

	// status
	out, _ = s.run(t, "status", dir, "--pr", "5", "-o", "json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	fn, _ := st["function"].(map[string]any)
	rt, _ := st["route"].(map[string]any)
	as, _ := st["assets"].(map[string]any)
	img, _ := st["image"].(map[string]any)
	ld, _ := st["lastDeploy"].(map[string]any)
	if st["status"] != "ready" || st["commit"] != commit || st["url"] != base+"/" || st["dns"] != nil ||
		ld["result"] != "live" || ld["commit"] != commit || ld["generation"] != rt["servedGeneration"] ||
		fn["name"] != "logapp-pr-5" || fn["replicas"] != float64(1) || fn["availableReplicas"] != float64(1) || fn["startedAt"] == nil ||
		rt["host"] != "pr-5.logapp.localhost" || rt["servedGeneration"] != rt["claimedGeneration"] || rt["servedGeneration"] == float64(0) ||
		as["files"] != float64(2) || as["prefix"] != rt["assetPrefix"] || !strings.Contains(fmt.Sprint(img["ref"]), "@sha256:") {
		t.Fatalf("status -o json:\n%s", out)
	}
	out, _ = s.run(t, "status", dir, "--pr", "5")
	for _, want := range []string{"status", "ready", "last deploy", "live (commit " + commit + ")", "served generation", "2 files", "dns", "not configured", "logapp-pr-5"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
	_, stderr, err := s.try("status", dir, "--pr", "6")
	if err == nil || !strings.Contains(stderr, "pull request #6 has no preview") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("status of a missing preview: %v %q", err, stderr)
	}

	// A crash loop is failed, in ls and status, never sleeping.
	get(t, c, "GET", base+"/api/crash", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ = s.run(t, "ls", "-o", "json")
		var list []map[string]any
		json.Unmarshal([]byte(out), &list)
		if len(list) == 1 && list[0]["status"] == "failed" {
			if !strings.Contains(fmt.Sprint(list[0]["lastError"]), "exit status") {
				t.Fatalf("failed without its error: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ls never showed the crashed preview failed:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ = s.run(t, "ls")
	if !strings.Contains(out, "failed") {
		t.Fatalf("ls table:\n%s", out)
	}
	out, _ = s.run(t, "status", dir, "--pr", "5", "-o", "json")
	st = nil
	json.Unmarshal([]byte(out), &st)
	fn, _ = st["function"].(map[string]any)
	if st["status"] != "failed" || fn["restarts"] == float64(0) || !strings.Contains(fmt.Sprint(fn["lastError"]), "exit") {
		t.Fatalf("status of the crashed preview:\n%s", out)
	}
	if out, _ = s.run(t, "logs", dir, "--pr", "5", "--tail", "2"); !strings.Contains(out, "logapp: crash") {
		t.Fatalf("logs after the crash:\n%s", out)
	}
}

// The last deploy's result as its route records it.
func TestLastDeployFromRoute(t *testing.T) {
	for _, c := range []struct {
		route preview.Route
		want  *deployStatus
	}{
		{preview.Route{Generation: 3, Served: 3, ClaimedCommit: "c3"}, &deployStatus{Commit: "c3", Generation: 3, Result: "live"}},
		{preview.Route{Generation: 4, Served: 3, ClaimedCommit: "c4"}, &deployStatus{Commit: "c4", Generation: 4, Result: "in progress"}},
		{preview.Route{Generation: 4, Served: 3, ClaimedCommit: "c4", Failure: "deploy: exit status 3"}, &deployStatus{Commit: "c4", Generation: 4, Result: "failed", Reason: "deploy: exit status 3"}},
		{preview.Route{Generation: 1, ClaimedCommit: "c1", Failure: "build: no main"}, &deployStatus{Commit: "c1", Generation: 1, Result: "failed", Reason: "build: no main"}},
		{preview.Route{Generation: 5, Served: 4, Deleted: true}, nil},
	} {
		got := lastDeploy(c.route)
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("lastDeploy(%+v) = %+v, want %+v", c.route, got, c.want)
		}
	}
}

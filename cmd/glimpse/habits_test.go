package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// TestUnknownCommandSuggests: cobra's "Did you mean this?" block becomes
// one line.
func TestUnknownCommandSuggests(t *testing.T) {
	for _, c := range []struct{ arg, want string }{
		{"upp", `unknown command "upp"; did you mean: up?`},
		{"stat", `unknown command "stat"; did you mean: status?`},
		{"lss", `unknown command "lss"; did you mean: ls, logs?`},
		{"frobnicate", `unknown command "frobnicate" (see 'glimpse --help')`},
	} {
		_, _, err := runCLI(t, t.TempDir(), c.arg)
		if err == nil || err.Error() != c.want {
			t.Errorf("glimpse %s: error %q, want %q", c.arg, err, c.want)
		}
	}
}

// TestOutputFlagEverywhere: every command with -o takes table and json,
// says so in the same words, and refuses anything else the same way, before
// it does anything (no local stack is running here).
func TestOutputFlagEverywhere(t *testing.T) {
	var withOutput []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.Flags().Lookup("output"); f != nil {
			withOutput = append(withOutput, c)
			if f.Shorthand != "o" || !strings.Contains(f.Usage, "table") || !strings.Contains(f.Usage, "json") {
				t.Errorf("%s: -o is %q (-%s), want -o naming table and json", c.CommandPath(), f.Usage, f.Shorthand)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot())
	if len(withOutput) < 5 {
		t.Fatalf("only %d commands have -o: the walk is broken", len(withOutput))
	}
	for _, c := range withOutput {
		args := strings.Fields(c.CommandPath())[1:]
		if c.Args == nil || c.Args(c, []string{"x"}) == nil {
			args = append(args, "../../examples/hello") // takes a DIR
		}
		if c.Flags().Lookup("pr") != nil {
			args = append(args, "--pr", "1")
		}
		args = append(args, "-o", "yaml")
		_, _, err := runCLI(t, t.TempDir(), args...)
		if err == nil || !strings.Contains(err.Error(), `--output must be json or table, got "yaml"`) {
			t.Errorf("glimpse %s: error %v, want the one -o error", strings.Join(args, " "), err)
		}
	}
}

func TestListTakesDir(t *testing.T) {
	home := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ls", "../../examples/hello", "--dir", "../../examples/hello"}, "as DIR or as --dir, not both"},
		{[]string{"ls", "../../examples/hello", "--app", "other"}, "--app other does not match app hello"},
		{[]string{"ls", filepath.Join(t.TempDir(), "nope")}, "does not exist"},
		{[]string{"ls", "a", "b"}, "accepts at most 1 arg"},
		// DIR is read, then the (absent) local stack is asked.
		{[]string{"ls", "../../examples/hello"}, "no local stack is running"},
		{[]string{"ls", "--dir", "../../examples/hello"}, "no local stack is running"},
	}
	for _, c := range cases {
		_, _, err := runCLI(t, home, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("glimpse %s: error %v, want one containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// memPipeline is a Pipeline of package previewtest's in-memory providers.
func memPipeline() *preview.Pipeline {
	return &preview.Pipeline{
		Registry: previewtest.NewMemRegistry(), Runtime: previewtest.NewMemRuntime(),
		Assets: previewtest.NewMemAssets(), Router: previewtest.NewMemRouter(),
		Owner: "test", BaseDomain: "localhost",
	}
}

// TestDownOfNoPreview: down of a preview that does not exist, or no longer
// does, succeeds, says so on stderr and prints nothing on stdout.
func TestDownOfNoPreview(t *testing.T) {
	ctx := context.Background()
	pl := memPipeline()
	var out, errb bytes.Buffer
	if err := runDown(ctx, pl, "hello", 7, &out, &errb); err != nil {
		t.Fatalf("down of a preview never deployed: %v", err)
	}
	if out.Len() != 0 || !strings.Contains(errb.String(), "hello: pull request #7 has no preview (pr-7.hello.localhost): nothing to remove") {
		t.Fatalf("down of a preview never deployed: stdout %q, stderr %q", out.String(), errb.String())
	}

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := preview.Spec{App: "hello", Assets: &preview.AssetsSpec{Dir: "public"}}
	if _, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 7, Commit: "abcdef1"}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if err := runDown(ctx, pl, "hello", 7, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "removed pr-7.hello.localhost\n" || strings.Contains(errb.String(), "no preview") {
		t.Fatalf("down of a live preview: stdout %q, stderr %q", out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if err := runDown(ctx, pl, "hello", 7, &out, &errb); err != nil {
		t.Fatalf("second down: %v", err)
	}
	if out.Len() != 0 || !strings.Contains(errb.String(), "has no preview") {
		t.Fatalf("second down: stdout %q, stderr %q", out.String(), errb.String())
	}
}

// lockedBuffer is a bytes.Buffer the ticker goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

// TestProgressTTY: on a terminal a ticker line counts the running steps'
// seconds and is erased before each finished step's line; marks are
// coloured unless NO_COLOR is set.
func TestProgressTTY(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   func(string) string
		color bool
	}{
		{"colour", env("TERM", "xterm"), true},
		{"NO_COLOR", env("TERM", "xterm", "NO_COLOR", "1"), false},
		{"dumb terminal", env("TERM", "dumb"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var w lockedBuffer
				p := newProgress(&w, true, c.env)
				defer p.Close()
				p.Event(preview.Event{Step: "build", State: preview.EventStarted})
				time.Sleep(12*time.Second + time.Millisecond)
				synctest.Wait()
				if s := w.String(); !strings.HasSuffix(s, "\r\x1b[K  build 12s...") || !strings.Contains(s, "\r\x1b[K  build 11s...") {
					t.Fatalf("after 12 s: %q, want the ticker line redrawn each second", s)
				}
				p.Event(preview.Event{Step: "assets", State: preview.EventStarted})
				time.Sleep(3 * time.Second)
				synctest.Wait()
				if s := w.String(); !strings.HasSuffix(s, "\r\x1b[K  build 15s, assets 3s...") {
					t.Fatalf("two steps: %q", s)
				}
				p.Event(preview.Event{Step: "build", State: preview.EventDone, Message: "built", Elapsed: 15 * time.Second})
				ok := "ok  "
				if c.color {
					ok = "\x1b[32mok  \x1b[0m"
				}
				if s := w.String(); !strings.HasSuffix(s, "\r\x1b[K  "+ok+" build       15s  built\n  assets 3s...") {
					t.Fatalf("after build: %q", s)
				}
				if c.color != strings.Contains(w.String(), "\x1b[3") {
					t.Fatalf("colour %v, output %q", c.color, w.String())
				}
				p.Close()
				p.Close() // idempotent
				if s := w.String(); !strings.HasSuffix(s, "\n  assets 3s...\r\x1b[K") {
					t.Fatalf("Close must erase the ticker line: %q", s)
				}
				before := w.String()
				time.Sleep(5 * time.Second)
				if w.String() != before {
					t.Fatal("the ticker runs after Close")
				}
			})
		})
	}
}

// TestProgressPlain: without a terminal (CI), plain lines only: a start
// line, one every 10 s while a step runs, the finished line.
func TestProgressPlain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w lockedBuffer
		p := newProgress(&w, false, env("TERM", "xterm"))
		defer p.Close()
		p.Event(preview.Event{Step: "build", State: preview.EventStarted})
		time.Sleep(25 * time.Second)
		synctest.Wait()
		p.Event(preview.Event{Step: "build", State: preview.EventLog, Message: "compiling"})
		p.Event(preview.Event{Step: "build", State: preview.EventFailed, Message: "go build: x.go:1: bad\nmore", Elapsed: 25 * time.Second})
		p.Close()
		want := "  ...  build\n" +
			"  ...  build       10s  still running\n" +
			"  ...  build       20s  still running\n" +
			"  build   | compiling\n" +
			"  FAIL build       25s  go build: x.go:1: bad; more\n"
		if got := w.String(); got != want {
			t.Fatalf("plain progress:\n%q\nwant\n%q", got, want)
		}
	})
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Fatal("a pipe or a buffer is not a terminal")
	}
}

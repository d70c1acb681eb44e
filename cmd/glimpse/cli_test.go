package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the glimpse command in-process and returns stdout, stderr and
// the error main would print.
func runCLI(t *testing.T, home string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot()
	root.SetArgs(append([]string{"--home", home}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := execute(context.Background(), root)
	return out.String(), errb.String(), err
}

func TestBadInputIsOneLineError(t *testing.T) {
	home := t.TempDir()
	outside := t.TempDir()
	app := func(yaml string) string {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "public"), 0o755)
		os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(dir, "glimpse.yaml"), []byte(yaml), 0o644)
		return dir
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"negative pr", []string{"up", "../../examples/hello", "--pr", "-1"}, `--pr must be a positive integer, got "-1"`},
		{"pr not a number", []string{"up", "../../examples/hello", "--pr", "abc"}, `--pr must be a positive integer, got "abc"`},
		{"pr missing", []string{"up", "../../examples/hello"}, "--pr is required"},
		{"app not a DNS label", []string{"up", app("app: My_App\nassets: {dir: public}\n"), "--pr", "1"}, `app "My_App"`},
		{"assets outside the app", []string{"up", app("app: a\nassets: {dir: ../" + filepath.Base(outside) + "}\n"), "--pr", "1"}, "outside the app directory"},
		{"missing glimpse.yaml", []string{"up", t.TempDir(), "--pr", "1"}, "no glimpse.yaml in"},
		{"missing dir", []string{"up", filepath.Join(outside, "nope"), "--pr", "1"}, "does not exist"},
		{"bad commit", []string{"up", "../../examples/hello", "--pr", "1", "--commit", "a;rm"}, "commit"},
		{"bad output", []string{"ls", "-o", "yaml"}, "--output must be json or table"},
		{"unknown key in glimpse.yaml", []string{"up", app("app: a\nfunction:\n  route: [/x]\n"), "--pr", "1"}, "glimpse.yaml: line 3: unknown key function.route (did you mean routes?)"},
		{"wrong type in glimpse.yaml", []string{"up", app("app: a\nassets: {dir: public}\nidle:\n  after: [15m]\n"), "--pr", "1"}, "line 4: idle.after: want a duration such as 15m, got a list"},
		{"unknown flag", []string{"up", "--prr", "1"}, "unknown flag: --prr"},
		{"down bad pr", []string{"down", "../../examples/hello", "--pr", "0"}, "--pr must be a positive integer"},
		{"down bad app", []string{"down", "--app", "Bad!", "--pr", "1"}, `--app "Bad!"`},
		{"no local stack", []string{"ls"}, "no local stack is running"},
		{"generation not a number", []string{"up", "../../examples/hello", "--pr", "1", "--generation", "12a"}, `--generation must be a positive integer such as a CI run number, got "12a"`},
		{"generation zero", []string{"up", "../../examples/hello", "--pr", "1", "--generation", "0"}, "--generation must be a positive integer"},
		{"gc dir twice", []string{"gc", "../../examples/hello", "--dir", "../../examples/hello"}, "give the app directory once"},
		{"gc bad output", []string{"gc", "-o", "yaml"}, "--output must be json or table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runCLI(t, home, c.args...)
			if err == nil {
				t.Fatal("got nil error")
			}
			msg := oneLine(err.Error())
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not contain %q", msg, c.want)
			}
			if strings.Contains(err.Error(), "goroutine") || strings.Contains(err.Error(), "panic") {
				t.Fatalf("error looks like a crash: %q", err)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t, t.TempDir(), "version")
	if err != nil || !strings.HasPrefix(out, "glimpse ") || !strings.Contains(out, "go1.") || strings.Count(out, "\n") != 1 {
		t.Fatalf("glimpse version = %q, %v; want one line naming the version and Go", out, err)
	}
	flag, _, err := runCLI(t, t.TempDir(), "--version")
	if err != nil || flag != out {
		t.Fatalf("glimpse --version = %q, %v; want %q", flag, err, out)
	}
}

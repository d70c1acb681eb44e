package preview

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	tg := Target{App: "hello", PR: 42, Commit: "3F2C1ABdeadbeef"}
	if err := tg.Validate(); err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		FunctionName(tg.App, tg.PR):         "hello-pr-42",
		Host(tg.App, tg.PR, "example.com."): "pr-42.hello.example.com",
		Host(tg.App, tg.PR, ""):             "pr-42.hello",
		ImageTag(tg):                        "pr-42-3f2c1ab",
		AssetPrefix(tg.App, tg.PR):          "hello/pr-42",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestShortenIsStableAndValid(t *testing.T) {
	long := strings.Repeat("a", 60) + "-x"
	name := FunctionName(long, 123456)
	if len(name) > MaxDNSLabel {
		t.Fatalf("FunctionName too long: %d", len(name))
	}
	if err := ValidateDNSLabel(name); err != nil {
		t.Fatalf("shortened name %q: %v", name, err)
	}
	if FunctionName(long, 123456) != name {
		t.Fatal("Shorten is not stable")
	}
	if FunctionName(long, 123457) == name {
		t.Fatal("distinct long names shortened to the same name")
	}
	// A cut that lands on '-' must not leave a trailing dash.
	dashy := strings.Repeat("ab-", 30)
	if s := Shorten(dashy, 20); len(s) > 20 || strings.Contains(s, "--") || ValidateDNSLabel(s) != nil {
		t.Fatalf("Shorten(%q) = %q", dashy, s)
	}
	host := Host(strings.Repeat("b", 70), 1, "localhost")
	if err := ValidateHost(host); err != nil {
		t.Fatalf("Host with a long app: %v", err)
	}
}

func TestTargetValidate(t *testing.T) {
	for _, c := range []struct {
		t    Target
		want string
	}{
		{Target{App: "Hello", PR: 1, Commit: "a"}, "app name"},
		{Target{App: "hello-", PR: 1, Commit: "a"}, "app name"},
		{Target{App: strings.Repeat("a", 64), PR: 1, Commit: "a"}, "at most 63"},
		{Target{App: "hello", PR: 0, Commit: "a"}, "positive"},
		{Target{App: "hello", PR: -1, Commit: "a"}, "positive"},
		{Target{App: "hello", PR: 1, Commit: ""}, "commit"},
		{Target{App: "hello", PR: 1, Commit: "a/b"}, "commit"},
		{Target{App: "hello", PR: 1, Commit: "-rf"}, "commit"},
	} {
		err := c.t.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || CodeOf(err) != InvalidArgument {
			t.Errorf("Validate(%+v) = %v, want InvalidArgument mentioning %q", c.t, err, c.want)
		}
	}
}

func TestSanitizeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"feature/New_Login": "feature-new-login",
		"--x--":             "x",
		"":                  "x",
		"ÄÖ":                "x",
	} {
		if got := SanitizeLabel(in); got != want {
			t.Errorf("SanitizeLabel(%q) = %q, want %q", in, got, want)
		}
	}
	if err := ValidateDNSLabel(SanitizeLabel(strings.Repeat("branch/", 20))); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	base := &os.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}
	err := fmt.Errorf("deploy: %w", WithCode(NotFound, base))
	if CodeOf(err) != NotFound || !IsNotFound(err) {
		t.Fatalf("CodeOf = %v", CodeOf(err))
	}
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatal("the underlying error is not reachable with errors.As")
	}
	if w := WithCode(NotFound, err); w != err {
		t.Fatal("WithCode wrapped an error that already had the code")
	}
	if IgnoreNotFound(err) != nil || IgnoreNotFound(errors.New("x")) == nil {
		t.Fatal("IgnoreNotFound")
	}
	if CodeOf(context.Canceled) != Canceled || CodeOf(fmt.Errorf("x: %w", context.DeadlineExceeded)) != DeadlineExceeded {
		t.Fatal("context errors not classified")
	}
	if !Unavailable.Retryable() || NotFound.Retryable() || Code(99).String() != "Code(99)" {
		t.Fatal("Code methods")
	}
}

func TestLabels(t *testing.T) {
	tg := Target{App: "hello", PR: 7, Commit: "abc1234"}
	l := OwnerLabels("", tg)
	if !l.Matches(Selector("", "hello", 7)) || !l.Matches(Selector("", "", 0)) || l.Matches(Selector("", "hello", 8)) || l.Matches(Selector("other", "", 0)) {
		t.Fatal("selector matching")
	}
	back, ok := l.Target()
	if !ok || back != tg {
		t.Fatalf("Target() = %+v, %v", back, ok)
	}
	if _, ok := (Labels{LabelApp: "x", LabelPR: "1"}).Target(); ok {
		t.Fatal("labels without managed-by read as Glimpse's")
	}
	w := l.With("k", "v")
	if _, changed := l["k"]; changed || w["k"] != "v" {
		t.Fatal("With modified the original")
	}
}

type fakeBuilder struct{ Builder }

func TestMux(t *testing.T) {
	m := NewMux[Builder]("builder")
	m.Register("ko", func(ctx context.Context, u *url.URL, o *OpenOptions) (Builder, error) {
		if _, err := QueryParams(u, "platform"); err != nil {
			return nil, err
		}
		return fakeBuilder{}, nil
	})
	if _, err := m.Open(context.Background(), "ko://", nil); err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"ko://?plat=x":        `unknown query parameter "plat" (known: platform)`,
		"docker://":           `unknown scheme "docker" (known: ko)`,
		"not a url":           "not a URL",
		"ko://user:pw@host/x": "credentials",
	} {
		_, err := m.Open(context.Background(), raw, nil)
		if err == nil || !strings.Contains(err.Error(), want) || CodeOf(err) != InvalidArgument {
			t.Errorf("Open(%q) = %v, want InvalidArgument containing %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a scheme twice did not panic")
		}
	}()
	m.Register("ko", nil)
}

func TestScanAssets(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "css"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>x</h1>"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "css", "a.css"), []byte("a{}"), 0o644))
	must(os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref"), 0o644))
	must(os.WriteFile(filepath.Join(dir, ".env"), []byte("SECRET=1"), 0o644))
	outside := filepath.Join(t.TempDir(), "secret.txt")
	must(os.WriteFile(outside, []byte("s"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "leak.txt")))
	if _, err := ScanAssets(dir); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("a symlink out of the assets dir: err = %v", err)
	}
	must(os.Remove(filepath.Join(dir, "leak.txt")))
	must(os.Symlink("index.html", filepath.Join(dir, "home.html")))
	m, err := ScanAssets(dir)
	must(err)
	if len(m.Files) != 3 {
		t.Fatalf("files = %v, want index.html, home.html, css/a.css", m.Files)
	}
	idx := m.Files["/index.html"]
	if idx.ContentType != "text/html; charset=utf-8" || idx.Size != 10 || !ValidDigest(idx.Digest) || m.Files["/home.html"].Digest != idx.Digest {
		t.Fatalf("index.html entry = %+v", idx)
	}
	if m.Files["/css/a.css"].ContentType != "text/css; charset=utf-8" {
		t.Fatal("css content type")
	}
	if p, _, ok := m.Lookup("/"); !ok || p != "/index.html" {
		t.Fatal("Lookup(/) did not find index.html")
	}
	if _, _, ok := m.Lookup("/../css/a.css"); !ok {
		t.Fatal("Lookup does not clean paths")
	}
	m2, _ := ScanAssets(dir)
	if m.Digest() != m2.Digest() || !m.Equal(m2) {
		t.Fatal("manifest digest not stable")
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"pr-7.hello.localhost:8080": "pr-7.hello.localhost",
		"PR-7.Hello.LOCALHOST.":     "pr-7.hello.localhost",
		"[::1]:80":                  "[::1]",
		"localhost":                 "localhost",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

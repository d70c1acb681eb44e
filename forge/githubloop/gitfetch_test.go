package githubloop

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
	"github.com/glimpse-dev/glimpse/preview"
)

const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// PipelineRunner fetches a PR head over HTTPS with the GitHub App's
// installation token, from a real git smart-HTTP server (git
// http-backend behind net/http/cgi, TLS) that, like GitHub, wants basic
// auth x-access-token:<installation token> and answers 401 otherwise. A
// wrong token fails with one line; the token is never in git's command
// line, the checkout's .git, the error, or what the server logged.
func TestFetchWithInstallationToken(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git binary")
	}
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		t.Skip("no git-http-backend (Debian's git package)")
	}
	// The repository, served bare.
	work := &gitRepo{t: t, dir: t.TempDir()}
	work.run("init", "--quiet", "-b", "main")
	head := work.commit(map[string]string{"glimpse.yaml": "app: hello\nassets: {dir: public}\n", "public/index.html": "hi"})
	root := t.TempDir()
	bare := &gitRepo{t: t, dir: filepath.Join(root, "app.git")}
	if out, err := exec.Command("git", "clone", "--quiet", "--bare", work.dir, bare.dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v\n%s", err, out)
	}
	bare.run("config", "uploadpack.allowAnySHA1InWant", "true") // as GitHub serves PR heads

	// GitHub: the App and its installation tokens.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	gh := githubfake.New("acme", "app", "")
	gh.AppID, gh.AppKey, gh.InstallationID = 12345, &key.PublicKey, 777
	api := httptest.NewServer(gh)
	defer api.Close()
	app := &AppAuth{AppID: "12345", InstallationID: 777, Key: key, Owner: "acme", Repo: "app", APIURL: api.URL}

	var mu sync.Mutex
	var logged []string // what the server saw: request lines, users, statuses
	backend := &cgi.Handler{Path: gitHTTPBackend, Root: "/", Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		good := ok && user == "x-access-token" && gh.ValidInstallationToken(pass)
		mu.Lock()
		logged = append(logged, r.Method+" "+r.URL.String()+" user="+user+" ok="+map[bool]string{true: "yes", false: "no"}[good])
		mu.Unlock()
		if !good {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "Invalid username or token.", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_SSL_CAINFO", ca)

	// git through a wrapper that records its command line (what ps shows).
	argsLog := filepath.Join(t.TempDir(), "args")
	wrapper := filepath.Join(t.TempDir(), "git")
	gitPath, _ := exec.LookPath("git")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$@\" >> "+argsLog+"\nexec "+gitPath+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	stop := errors.New("stop after the checkout")
	open := func(ctx context.Context, p config.Providers) (*preview.Pipeline, error) { return nil, stop }
	r := &PipelineRunner{Root: t.TempDir(), Git: wrapper, TokenFunc: app.Token, Open: open}
	pr := PullRequest{Number: 1, HeadSHA: head, HeadRepo: "acme/app", BaseRepo: "acme/app", CloneURL: srv.URL + "/app.git"}
	var events []preview.Event
	if _, err := r.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 1}, func(e preview.Event) { events = append(events, e) }); !errors.Is(err, stop) {
		t.Fatalf("up with the installation token: %v (events %v)", err, events)
	}
	if b, err := os.ReadFile(filepath.Join(r.Root, "pr-1", "public", "index.html")); err != nil || string(b) != "hi" {
		t.Fatalf("checkout: %q, %v", b, err)
	}
	token, err := app.Token(t.Context())
	if err != nil || !gh.ValidInstallationToken(token) {
		t.Fatalf("installation token: %v", err)
	}

	// A wrong token: refused with 401, one line, no token in it.
	bad := &PipelineRunner{Root: t.TempDir(), Git: wrapper, Token: "ghs_wrongtoken0123456789", Open: open}
	_, err = bad.Up(t.Context(), Job{Kind: JobUp, PR: pr, Generation: 2}, func(preview.Event) {})
	if err == nil || errors.Is(err, stop) {
		t.Fatalf("up with a wrong token: %v, want the fetch refused", err)
	}
	t.Logf("wrong token: %v", err)
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "git fetch: "+srv.URL+"/app.git refused the credentials (HTTP 401)") || preview.CodeOf(err) != preview.PermissionDenied || strings.Contains(msg, "ghs_wrongtoken") {
		t.Errorf("wrong token error %q: want one line naming git fetch, without the token", msg)
	}
	mu.Lock()
	var refused bool
	for _, l := range logged {
		refused = refused || strings.Contains(l, "ok=no")
	}
	mu.Unlock()
	if !refused {
		t.Errorf("the server never refused a request: %v", logged)
	}

	// The tokens are nowhere to be seen.
	args, _ := os.ReadFile(argsLog)
	if !strings.Contains(string(args), "fetch") {
		t.Fatalf("the wrapper recorded no fetch: %q", args)
	}
	secrets := []string{token, "ghs_wrongtoken0123456789"}
	check := func(where, s string) {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("a token in %s", where)
			}
		}
	}
	check("git's command line", string(args))
	check("the server's log", strings.Join(logged, "\n"))
	check("the error", err.Error())
	for _, dir := range []string{r.Root, bad.Root} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				check(p, string(b))
			}
			return nil
		})
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
	"github.com/glimpse-dev/glimpse/preview"
)

// staticApp writes a static-only app named name (glimpse.yaml plus
// extra lines) and returns its directory.
func staticApp(t *testing.T, name, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<p>"+name+"</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	y := "app: " + name + "\nassets: {dir: public}\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "glimpse.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func upStatic(t *testing.T, pl *preview.Pipeline, dir string, pr int) preview.Preview {
	t.Helper()
	file, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: file.Spec, PR: pr, Commit: "abcdef1"})
	if err != nil {
		t.Fatalf("up %s #%d: %v", file.App, pr, err)
	}
	return pv
}

func listed(t *testing.T, pl *preview.Pipeline) map[string]preview.Preview {
	t.Helper()
	pvs, err := pl.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]preview.Preview{}
	for _, pv := range pvs {
		out[pv.Host] = pv
	}
	return out
}

// On the local stack: a preview with ttl: 1s goes with gc --yes, one
// without a ttl stays, a dry run removes nothing and says why it would;
// with a GitHub token (the fake), the preview of a closed pull request
// goes too, that of an open one stays.
func TestGCTakesDownExpiredAndClosedPreviews(t *testing.T) {
	pl, home := inProcessStack(t)
	short := upStatic(t, pl, staticApp(t, "short", "ttl: 1s\n"), 1)
	keepDir := staticApp(t, "keep", "")
	open := upStatic(t, pl, keepDir, 2)
	closed := upStatic(t, pl, keepDir, 3)
	pvs := listed(t, pl)
	if got := pvs[short.Host]; got.TTL != "1s" || got.DeployedAt == nil || time.Since(*got.DeployedAt) > time.Minute {
		t.Fatalf("the ttl preview as listed: ttl %q, deployed at %v; want 1s and now (read from the route)", got.TTL, got.DeployedAt)
	}
	if got := pvs[open.Host]; got.TTL != "" || got.DeployedAt == nil {
		t.Fatalf("the preview without ttl as listed: ttl %q, deployed at %v", got.TTL, got.DeployedAt)
	}
	time.Sleep(2100 * time.Millisecond) // past the 1s ttl at second resolution

	gc := func(args ...string) (string, string) {
		t.Helper()
		out, stderr, err := runCLI(t, home, append([]string{"gc"}, args...)...)
		if err != nil {
			t.Fatalf("gc %v: %v\n%s", args, err, stderr)
		}
		return out, stderr
	}
	if _, _, err := runCLI(t, home, "gc", "--yes", "--dry-run"); err == nil || !strings.Contains(err.Error(), "give --yes (act) or --dry-run (the default), not both") {
		t.Errorf("gc --yes --dry-run: %v", err)
	}
	// No GitHub credentials: only the ttl, and gc says what it skipped.
	for _, k := range []string{"GITHUB_TOKEN", "GLIMPSE_GITHUB_TOKEN", "GITHUB_REPOSITORY"} {
		t.Setenv(k, "")
	}
	out, stderr := gc() // a dry run: the default
	if want := "would remove short #1 (" + short.Host + "): ttl 1s expired "; !strings.Contains(out, want) || strings.Count(out, "would remove") != 1 {
		t.Fatalf("dry run output:\n%s\nwant one line %q", out, want)
	}
	if !strings.Contains(stderr, "closed pull requests not checked") {
		t.Errorf("stderr does not say closed pull requests were not checked:\n%s", stderr)
	}
	if len(listed(t, pl)) != 3 {
		t.Fatalf("the dry run removed a preview: %v", listed(t, pl))
	}

	// With the fake GitHub: #2 open, #3 closed.
	fake := githubfake.New("acme", "app", "tok")
	fake.SetPull(fake.Pull(2, "abcdef1", "acme/app", ""))
	fake.SetPull(fake.Pull(3, "abcdef1", "acme/app", ""))
	fake.ClosePull(3)
	api := httptest.NewServer(fake)
	defer api.Close()
	t.Setenv("GITHUB_TOKEN", "tok")
	t.Setenv("GITHUB_REPOSITORY", "acme/app")
	t.Setenv("GLIMPSE_GITHUB_API_URL", api.URL)
	if _, _, err := runCLI(t, home, "gc", "--github-repo", "acme/app"); err == nil || !strings.Contains(err.Error(), "--github-repo needs the app(s) of that repository") {
		t.Errorf("gc --github-repo without an app: %v", err)
	}
	out, _ = gc("--yes", "--app", "keep")
	for _, want := range []string{"removed short #1 (" + short.Host + "): ttl 1s expired", "removed keep #3 (" + closed.Host + "): pull request closed"} {
		if !strings.Contains(out, want) {
			t.Errorf("gc --yes output:\n%s\nwant %q", out, want)
		}
	}
	pvs = listed(t, pl)
	if _, ok := pvs[short.Host]; ok {
		t.Errorf("the preview past its ttl is still listed")
	}
	if _, ok := pvs[closed.Host]; ok {
		t.Errorf("the preview of the closed pull request is still listed")
	}
	if _, ok := pvs[open.Host]; !ok || len(pvs) != 1 {
		t.Errorf("previews left: %v, want only %s (no ttl, pull request open)", pvs, open.Host)
	}
	for _, host := range []string{short.Host, closed.Host} {
		if rt, err := pl.Router.Route(context.Background(), host); err == nil && !rt.Deleted {
			t.Errorf("route %s still serves", host)
		}
	}
	// Again: nothing left to do (idempotent).
	if out, _ = gc("--yes", "--app", "keep"); strings.Contains(out, "removed") {
		t.Errorf("a second gc removed again:\n%s", out)
	}
}

// A static-only preview counts its requests as activity: requested, it
// is not stale; unrequested, it is (the rule gc and the daemon share).
func TestStaticRequestsAreActivity(t *testing.T) {
	pl, home := inProcessStack(t)
	used := upStatic(t, pl, staticApp(t, "used", ""), 1)
	unused := upStatic(t, pl, staticApp(t, "unused", ""), 1)
	info, err := findServe(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the deploys are 3s old
	req, _ := http.NewRequest("GET", "http://"+info.Addr+"/", nil)
	req.Host = used.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", used.Host, resp.Status)
	}
	pvs := listed(t, pl)
	u, n := pvs[used.Host], pvs[unused.Host]
	if u.LastRequest == nil || time.Since(*u.LastRequest) > 2*time.Second {
		t.Fatalf("the requested static preview's last request: %v, want just now", u.LastRequest)
	}
	if n.LastRequest != nil {
		t.Fatalf("the unrequested preview has a last request: %v", n.LastRequest)
	}
	const staleAfter = 2 * time.Second
	if exp, stale := u.Lifetime().Expired(time.Now(), staleAfter); stale {
		t.Errorf("the requested static preview is stale: %s", exp)
	}
	if exp, stale := n.Lifetime().Expired(time.Now(), staleAfter); !stale || exp.Kind != preview.ExpiredStale {
		t.Errorf("the unrequested static preview is not stale (%v, %v)", exp, stale)
	}
}

// A bad ttl in glimpse.yaml is one line naming the key.
func TestBadTTLIsOneLine(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct{ ttl, want string }{
		{"7 days", `glimpse.yaml: ttl: "7 days" is not a duration such as 7d, 36h or 90m (units d, h, m, s)`},
		{"0d", `glimpse.yaml: ttl: "0d" must be longer than zero`},
		{"[7d]", "line 3: ttl: want text, got a list"},
	} {
		_, _, err := runCLI(t, home, "up", staticApp(t, "a", "ttl: "+c.ttl+"\n"), "--pr", "1")
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ttl %q: %v, want one line with %q", c.ttl, err, c.want)
		}
	}
}

// gc's closed-PR check also authenticates as a GitHub App (no token):
// the fake verifies the app's JWT and issues the installation token.
func TestGCWithGitHubApp(t *testing.T) {
	pl, home := inProcessStack(t)
	dir := staticApp(t, "appauth", "")
	open := upStatic(t, pl, dir, 2)
	closed := upStatic(t, pl, dir, 3)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := githubfake.New("acme", "app", "")
	fake.AppID, fake.AppKey, fake.InstallationID = 42, &key.PublicKey, 7
	fake.SetPull(fake.Pull(2, "abcdef1", "acme/app", ""))
	fake.SetPull(fake.Pull(3, "abcdef1", "acme/app", ""))
	fake.ClosePull(3)
	api := httptest.NewServer(fake)
	defer api.Close()
	for _, k := range []string{"GITHUB_TOKEN", "GLIMPSE_GITHUB_TOKEN", "GITHUB_REPOSITORY"} {
		t.Setenv(k, "")
	}
	t.Setenv("GLIMPSE_GITHUB_API_URL", api.URL)

	if _, _, err := runCLI(t, home, "gc", "--app", "appauth", "--github-repo", "acme/app", "--github-app-id", "42"); err == nil || !strings.Contains(err.Error(), "--github-app-id needs the app's private key") {
		t.Fatalf("gc with an app and no key: %v", err)
	}
	out, stderr, err := runCLI(t, home, "gc", "--yes", "--app", "appauth", "--github-repo", "acme/app", "--github-app-id", "42", "--github-app-key-file", keyFile)
	if err != nil {
		t.Fatalf("gc --yes as a GitHub App: %v\n%s", err, stderr)
	}
	if want := "removed appauth #3 (" + closed.Host + "): pull request closed"; !strings.Contains(out, want) || strings.Contains(stderr, "not checked") {
		t.Fatalf("gc as a GitHub App:\n%s\n%s\nwant %q", out, stderr, want)
	}
	if _, ok := listed(t, pl)[open.Host]; !ok {
		t.Fatalf("the open pull request's preview was taken down")
	}
}

// A --github-repo that GitHub does not know (mistyped, or private and out
// of the credentials' reach) is an error: none of the apps' previews is
// taken for an orphan.
func TestGCWithUnknownRepositoryRemovesNothing(t *testing.T) {
	pl, home := inProcessStack(t)
	pv := upStatic(t, pl, staticApp(t, "typo", ""), 2)
	fake := githubfake.New("acme", "app", "tok")
	api := httptest.NewServer(fake)
	defer api.Close()
	t.Setenv("GITHUB_TOKEN", "tok")
	t.Setenv("GLIMPSE_GITHUB_TOKEN", "")
	t.Setenv("GLIMPSE_GITHUB_API_URL", api.URL)
	_, _, err := runCLI(t, home, "gc", "--yes", "--app", "typo", "--github-repo", "acme/ap")
	if err == nil || !strings.Contains(err.Error(), "listing the pull requests of acme/ap") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("gc with an unknown repository: %v", err)
	}
	if _, ok := listed(t, pl)[pv.Host]; !ok {
		t.Fatal("gc with an unknown repository took a preview down")
	}
}

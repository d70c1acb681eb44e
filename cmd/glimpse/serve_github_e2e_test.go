package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

const ghSecret = "e2e-webhook-secret"

// ghRemote is a real git repository standing in for GitHub's remote.
type ghRemote struct {
	t   *testing.T
	dir string
}

func (g *ghRemote) git(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", g.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+g.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRemote makes a repository holding examples/hello and returns it.
func newRemote(t *testing.T) *ghRemote {
	t.Helper()
	r := &ghRemote{t: t, dir: testapp.Copy(t, "../../examples/hello")}
	r.git("init", "--quiet", "-b", "main")
	return r
}

// commit sets the page and a comment in the function to name and
// commits on branch, returning the SHA.
func (g *ghRemote) commit(branch, name string) string {
	g.t.Helper()
	g.git("checkout", "--quiet", "-B", branch)
	if err := os.WriteFile(filepath.Join(g.dir, "public", "index.html"), []byte("<h1>"+name+"</h1>\n"), 0o644); err != nil {
		g.t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(g.dir, "function", "main.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		g.t.Fatal(err)
	}
	f.WriteString("\n// variant " + name + "\n")
	f.Close()
	g.git("add", "-A")
	g.git("commit", "--quiet", "-m", name)
	return g.git("rev-parse", "HEAD")
}

// buildGate puts a `go` first on PATH that holds every `go build` until
// the file gate exists (giving up when the daemon that started it dies),
// and leaves a file in marks per build that reached it.
type buildGate struct {
	gate, marks, path string
}

func newBuildGate(t *testing.T) *buildGate {
	t.Helper()
	realGo, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go binary")
	}
	dir := t.TempDir()
	g := &buildGate{gate: filepath.Join(dir, "open"), marks: filepath.Join(dir, "marks"), path: filepath.Join(dir, "bin")}
	os.MkdirAll(g.marks, 0o755)
	os.MkdirAll(g.path, 0o755)
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = build ]; then
	touch %[1]q/$$
	while [ ! -e %[2]q ]; do
		kill -0 $PPID 2>/dev/null || exit 1
		sleep 0.05
	done
fi
exec %[3]q "$@"
`, g.marks, g.gate, realGo)
	if err := os.WriteFile(filepath.Join(g.path, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *buildGate) open(t *testing.T) {
	if err := os.WriteFile(g.gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (g *buildGate) close(t *testing.T) {
	os.Remove(g.gate)
	ents, _ := os.ReadDir(g.marks)
	for _, e := range ents {
		os.Remove(filepath.Join(g.marks, e.Name()))
	}
}

// waitHeld waits until n builds are held at the gate.
func (g *buildGate) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ents, _ := os.ReadDir(g.marks); len(ents) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d builds did not reach the gate", n)
}

// sendWebhook posts a pull_request delivery to the daemon, signed as
// GitHub signs it.
func sendWebhook(t *testing.T, s *stack, id, action string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+githubloop.WebhookPath, strings.NewReader(string(body)))
	req.Header.Set("X-GitHub-Event", "pull_request")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", githubloop.Sign([]byte(ghSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook %s: %s", action, resp.Status)
	}
}

// waitComment waits until PR pr's preview comment contains every want.
func waitComment(t *testing.T, gh *githubfake.Server, pr int, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		cs := gh.Comments(pr)
		if len(cs) > 1 {
			t.Fatalf("PR %d has %d comments, want one edited in place: %+v", pr, len(cs), cs)
		}
		if len(cs) == 1 {
			body = cs[0].Body
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(body, w)
			}
			if ok {
				return body
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("PR %d comment %q does not say %q", pr, body, want)
	return ""
}

// deploymentStates returns the status states of PR pr's deployments,
// oldest first, with the description of error statuses.
func deploymentStates(gh *githubfake.Server, pr int) string {
	var out []string
	for _, d := range gh.Deployments() {
		if d.Environment != fmt.Sprintf("preview/pr-%d", pr) {
			continue
		}
		var ss []string
		for _, s := range d.Statuses {
			if s.State == "error" {
				ss = append(ss, s.State+"("+s.Description+")")
			} else {
				ss = append(ss, s.State)
			}
		}
		out = append(out, d.SHA[:7]+":"+strings.Join(ss, ","))
	}
	return strings.Join(out, " ")
}

// servesWhole checks that PR pr serves page name together with the
// function of commit sha.
func servesWhole(t *testing.T, s *stack, pr int, name, sha string) {
	t.Helper()
	c := s.client()
	url := fmt.Sprintf("http://pr-%d.hello.localhost/", pr)
	code, body, _ := get(t, c, "GET", url, "")
	if code != 200 || !strings.Contains(body, "<h1>"+name+"</h1>") {
		t.Fatalf("PR %d: GET / = %d %q, want page %s", pr, code, body, name)
	}
	code, body, _ = get(t, c, "POST", url+"graphql", "{}")
	if code != 200 || !strings.Contains(body, sha) {
		t.Fatalf("PR %d: POST /graphql = %d %q, want the function of %s", pr, code, body, sha)
	}
}

// TestGitHubDaemonKilledMidBuild runs `glimpse serve --github-repo`
// (the built binary, authenticated as a GitHub App installation) against
// the fake GitHub API, holds its builds at a
// gate, SIGKILLs it while PR 5 (serving v1) builds v2 and PR 6 builds its
// first commit, and restarts it on the same GLIMPSE_HOME. While the
// restarted daemon builds again, PR 5 still serves all of v1 and PR 6
// nothing; the killed builds' deployments are reported failed
// (error, "interrupted"); then both finish, the one comment per PR says
// Ready, and each PR serves its new commit whole.
func TestGitHubDaemonKilledMidBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "no git binary on PATH (the loop checks pull requests out with it)")
	}
	bin := buildBinary(t)
	gate := newBuildGate(t)
	// The daemon authenticates as a GitHub App installation: the fake
	// accepts no other token.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	gh := githubfake.New("acme", "app", "")
	gh.AppID, gh.AppKey, gh.InstallationID = 4242, &key.PublicKey, 99
	ghSrv := httptest.NewServer(gh)
	defer ghSrv.Close()
	remote := newRemote(t)
	cloneURL := "file://" + filepath.ToSlash(remote.dir)

	home := t.TempDir()
	env := []string{
		"PATH=" + gate.path + string(os.PathListSeparator) + os.Getenv("PATH"),
		githubloop.EnvWebhookSecret + "=" + ghSecret,
		githubloop.EnvAPIURL + "=" + ghSrv.URL,
	}
	args := []string{"--github-repo", "acme/app", "--github-app", "hello", "--github-settle", "100ms",
		"--github-app-id", "4242", "--github-app-key-file", keyFile}
	gate.open(t)
	s := startStackWith(t, bin, home, env, args...)

	v1 := remote.commit("pr5", "v1")
	pr5 := gh.Pull(5, v1, "acme/app", cloneURL)
	gh.SetPull(pr5)
	sendWebhook(t, s, "d1", "opened", gh.Event("opened", pr5))
	waitComment(t, gh, 5, "Ready:", v1[:7])
	servesWhole(t, s, 5, "v1", v1)

	// v2 of PR 5 and the first commit of PR 6, both held mid-build.
	gate.close(t)
	v2 := remote.commit("pr5", "v2")
	pr5 = gh.Pull(5, v2, "acme/app", cloneURL)
	gh.SetPull(pr5)
	sendWebhook(t, s, "d2", "synchronize", gh.Event("synchronize", pr5))
	c6 := remote.commit("pr6", "six")
	pr6 := gh.Pull(6, c6, "acme/app", cloneURL)
	gh.SetPull(pr6)
	sendWebhook(t, s, "d3", "opened", gh.Event("opened", pr6))
	gate.waitHeld(t, 2)
	waitComment(t, gh, 6, "Building commit", c6[:7])

	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
	if got := deploymentStates(gh, 5); got != v1[:7]+":in_progress,success "+v2[:7]+":in_progress" {
		t.Fatalf("PR 5 deployments at the kill: %s", got)
	}

	// Restarted: the builds are redone (held again), the killed ones are
	// reported failed, and nothing half-deployed serves meanwhile.
	gate.close(t)
	s = startStackWith(t, bin, home, env, args...)
	gate.waitHeld(t, 2)
	servesWhole(t, s, 5, "v1", v1)
	if code, body, _ := get(t, s.client(), "GET", "http://pr-6.hello.localhost/", ""); code != 404 {
		t.Errorf("PR 6 mid-rebuild: GET / = %d %q, want 404", code, body)
	}
	interrupted := "in_progress,error(" + githubloop.InterruptedMessage + ")"
	for pr, want := range map[int]string{
		5: v1[:7] + ":in_progress,success " + v2[:7] + ":" + interrupted + " " + v2[:7] + ":in_progress",
		6: c6[:7] + ":" + interrupted + " " + c6[:7] + ":in_progress",
	} {
		if got := deploymentStates(gh, pr); got != want {
			t.Errorf("PR %d deployments while rebuilding: %s, want %s", pr, got, want)
		}
	}
	waitComment(t, gh, 5, "Building commit", v2[:7], "daemon restarted")

	gate.open(t)
	waitComment(t, gh, 5, "Ready:", v2[:7])
	waitComment(t, gh, 6, "Ready:", c6[:7])
	servesWhole(t, s, 5, "v2", v2)
	servesWhole(t, s, 6, "six", c6)
	if got, want := deploymentStates(gh, 6), c6[:7]+":"+interrupted+" "+c6[:7]+":in_progress,success"; got != want {
		t.Errorf("PR 6 deployments at the end: %s, want %s", got, want)
	}
	// One installation token per daemon, cached (an hour's validity).
	if n := gh.Issued(); n != 2 {
		t.Errorf("%d installation tokens issued, want 2 (one per daemon)", n)
	}
	// The restarted daemon's two builds are in its step metrics.
	if n := s.metric(t, `glimpse_deploy_step_seconds_count{result="done",step="build"}`); n < 2 {
		t.Errorf("glimpse_deploy_step_seconds_count of done builds = %v, want at least 2", n)
	}
}

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/internal/testapp"
)

// gatewayStatus reads a function's status from the stack's OpenFaaS
// gateway API, as `faas-cli describe` does.
func (s *stack) gatewayStatus(t *testing.T, name string) (int, types.FunctionStatus) {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(s.home, "gateway-password"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/system/function/"+name+"?namespace=openfaas-fn", nil)
	req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st types.FunctionStatus
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, st
}

// TestUpThroughOpenFaaSRuntime is issue 4's acceptance test on the real
// binary: glimpse.yaml selects the runtime openfaas://127.0.0.1:PORT (the
// running stack's gateway API), so `glimpse up` deploys examples/hello
// through the OpenFaaS REST client, and the preview works. A second app
// takes its function from an OpenFaaS stack.yml.
func TestUpThroughOpenFaaSRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	bin := buildBinary(t)
	s := startStack(t, bin)
	c := s.client()
	runtimeURL := "openfaas://" + s.addr + "?namespace=openfaas-fn"

	// examples/hello with the runtime named in glimpse.yaml.
	app := testapp.Copy(t, "../../examples/hello")
	yml := "app: hello\nfunction:\n  source: function\n  routes: [/graphql]\nassets:\n  dir: public\n" +
		"providers:\n  runtime: " + runtimeURL + "\n"
	if err := os.WriteFile(filepath.Join(app, "glimpse.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	const commit = "4444444ddddddd"
	stdout, stderr := s.run(t, "up", app, "--pr", "41", "--commit", commit)
	url := lastLine(stdout)
	if !strings.HasPrefix(url, "http://pr-41.hello.localhost:") || !strings.Contains(stderr, "deployed hello-pr-41") {
		t.Fatalf("up: %q\nstderr:\n%s", url, stderr)
	}
	code, body, _ := get(t, c, "GET", url, "")
	if index, _ := os.ReadFile(filepath.Join(app, "public", "index.html")); code != 200 || body != string(index) {
		t.Fatalf("GET / = %d %q", code, body)
	}
	code, body, _ = get(t, c, "POST", url+"graphql", `{"query":"{ preview { pr commit } }"}`)
	if code != 200 || !strings.Contains(body, `"pr":41`) || !strings.Contains(body, commit) {
		t.Fatalf("POST /graphql = %d %q", code, body)
	}
	// The function is an OpenFaaS function with Glimpse's ownership labels.
	code, st := s.gatewayStatus(t, "hello-pr-41")
	if code != 200 || st.Labels == nil || (*st.Labels)["glimpse.dev/pr"] != "41" || st.Replicas != 1 || st.EnvVars["GLIMPSE_PR"] != "41" {
		t.Fatalf("gateway status = %d %+v", code, st)
	}
	// Unchanged: the client sends no update.
	_, stderr = s.run(t, "up", app, "--pr", "41", "--commit", commit)
	if !strings.Contains(stderr, "nothing deployed") {
		t.Fatalf("second up deployed again:\n%s", stderr)
	}

	// The same app described by an OpenFaaS stack.yml.
	stackApp := testapp.Copy(t, "../../examples/hello")
	stackYML := "version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://" + s.addr + "\n" +
		"functions:\n  hello:\n    lang: golang-middleware\n    handler: ./function\n    image: ghcr.io/acme/hello:latest\n" +
		"    environment:\n      GREETING: ${GREETING_FROM_CI:-hello from stack.yml}\n    labels:\n      team: web\n"
	files := map[string]string{
		"stack.yml":    stackYML,
		"glimpse.yaml": "app: hello\nfunction:\n  stack: stack.yml\n  routes: [/graphql]\nassets: {dir: public}\nproviders:\n  runtime: " + runtimeURL + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(stackApp, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr = s.run(t, "up", stackApp, "--pr", "42", "--commit", commit)
	url = lastLine(stdout)
	code, body, _ = get(t, c, "POST", url+"graphql", `{}`)
	if code != 200 || !strings.Contains(body, `"pr":42`) {
		t.Fatalf("stack.yml app: POST /graphql = %d %q\nstderr:\n%s", code, body, stderr)
	}
	if code, st := s.gatewayStatus(t, "hello-pr-42"); code != 200 || st.EnvVars["GREETING"] != "hello from stack.yml" {
		t.Fatalf("stack.yml environment not deployed: %d %+v", code, st)
	}

	s.run(t, "down", app, "--pr", "41")
	s.run(t, "down", stackApp, "--pr", "42")
	for _, name := range []string{"hello-pr-41", "hello-pr-42"} {
		if code, _ := s.gatewayStatus(t, name); code != 404 {
			t.Errorf("%s after down: %d; want 404", name, code)
		}
	}
	if code, _, _ := get(t, c, "GET", url, ""); code != 404 {
		t.Errorf("GET / after down = %d, want 404", code)
	}
}

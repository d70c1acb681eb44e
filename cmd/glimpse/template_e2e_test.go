package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An OpenFaaS golang-middleware handler (faas-cli new --lang
// golang-middleware: package function, Handle(w, r), its own go.mod
// "handler/function", no main) described by a stack.yml deploys unchanged
// on the local stack and answers on its route, through the real binary.
func TestGolangMiddlewareStackDeploys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	s := startStack(t, buildBinary(t))
	dir := t.TempDir()
	write := func(p, c string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("glimpse.yaml", "app: mw\nfunction: {stack: stack.yml, stackFunction: mw, routes: [/api/]}\nassets: {dir: public}\n")
	write("stack.yml", "version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n  mw:\n    lang: golang-middleware\n    handler: ./mw\n    image: mw:latest\n    environment:\n      GREETING: hi\n")
	write("public/index.html", "<h1>mw</h1>")
	src, err := os.ReadFile("../../builder/kobuild/testdata/middleware/handler.go")
	if err != nil {
		t.Fatal(err)
	}
	write("mw/handler.go", string(src))
	write("mw/go.mod", "module handler/function\n\ngo 1.21\n")
	_, stderr := s.run(t, "up", dir, "--pr", "3")
	c := s.client()
	code, body, hdr := get(t, c, "POST", "http://pr-3.mw.localhost/api/echo", `{"q":1}`)
	if code != 200 || hdr.Get("X-Function") != "middleware" || !strings.Contains(body, `POST /api/echo body="{\"q\":1}" greeting=hi`) {
		t.Fatalf("POST /api/echo = %d %q (%v)\nup:\n%s", code, body, hdr, stderr)
	}
	if code, body, _ := get(t, c, "GET", "http://pr-3.mw.localhost/", ""); code != 200 || body != "<h1>mw</h1>" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	// A stack lang Glimpse cannot build is one line before anything runs.
	write("stack.yml", "version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  mw:\n    lang: python3\n    handler: ./mw\n")
	_, stderr, err = s.try("up", dir, "--pr", "3")
	if err == nil || !strings.Contains(stderr, "lang: python3 is not a template Glimpse can build") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("up with lang python3: %v\n%s", err, stderr)
	}
}

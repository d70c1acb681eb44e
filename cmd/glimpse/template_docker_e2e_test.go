package main

import (
	"strings"
	"testing"
)

// TestUpWithStackTemplate runs `glimpse up` on an app whose stack.yml
// names a lang that a template/<lang>/ directory provides (what faas-cli
// template pull leaves, in the layout of openfaas/templates): the docker://
// builder builds the template's FROM scratch Dockerfile around the handler
// on a real engine ($GLIMPSE_DOCKER_HOST), the preview answers on its
// route, and an unsupported template.yml key is one error line.
func TestUpWithStackTemplate(t *testing.T) {
	t.Parallel()
	a := newDockerApp(t)
	a.buildFunction("hello-fn/hello")
	a.write("template/static-bin/Dockerfile", "FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY function/hello /home/app/hello\nENTRYPOINT [\"/home/app/hello\"]\n")
	a.write("template/static-bin/template.yml", "language: static-bin\nfprocess: /home/app/hello\nwelcome_message: a static binary\n")
	a.write("stack.yml", "version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n  hello:\n    lang: static-bin\n    handler: ./hello-fn\n    image: hello:latest\n    build_args:\n      GREETING: hi\n")
	a.write("glimpse.yaml", "app: hello\nfunction: {stack: stack.yml, routes: [/graphql]}\nassets: {dir: public}\nproviders:\n  builder: docker://"+a.host+"?network=none\n")

	up := func(commit string) (string, string, error) { return a.up("6", commit) }
	_, first, err := up("7e3a1a1")
	stderr := first
	if err != nil {
		t.Fatalf("up: %v\n%s", err, stderr)
	}
	for _, want := range []string{"  build   | Step 1/5 : FROM scratch", "  build   | Step 4/5 : COPY function/hello /home/app/hello", "ok   build"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("up's progress lacks %q:\n%s", want, stderr)
		}
	}
	a.graphql("6", `"pr":6`)

	a.write("template/static-bin/template.yml", "language: static-bin\nmount_ssh: false\nbuild_secrets: {a: b}\n")
	_, stderr, err = up("7e3a1a2")
	if err == nil || oneLine(err.Error()) != err.Error() || !strings.Contains(err.Error(), `line 3: key "build_secrets" is not one Glimpse builds with`) {
		t.Fatalf("up with an unsupported template.yml key: %v\n%s", err, stderr)
	}
	if !strings.Contains(first, "pushed") || strings.Contains(stderr, "pushed") || !strings.Contains(stderr, "FAIL build") {
		t.Fatalf("something was pushed before the template error:\n%s", stderr)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/glimpse-dev/glimpse/builder/dockerbuild" // docker:// (also wired in stack.go)
)

// TestUpWithDockerBuilder runs `glimpse up` on examples/hello with the
// docker:// builder on a real engine ($GLIMPSE_DOCKER_HOST): the function
// binary is built first and put in a FROM scratch image (nothing can be
// pulled here). The build log shows in up's progress, the preview answers,
// and a failing Dockerfile is one error line naming the step.
func TestUpWithDockerBuilder(t *testing.T) {
	t.Parallel()
	a := newDockerApp(t)
	a.buildFunction("function/hello")
	fn := filepath.Join(a.dir, "function")
	dockerfile := filepath.Join(fn, "Dockerfile")
	a.write("function/Dockerfile", "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n")
	// Go sources stay out of the image and out of the source hash.
	a.write("function/.dockerignore", "*.go\ngo.mod\n")
	y, _ := os.ReadFile(filepath.Join(a.dir, "glimpse.yaml"))
	a.write("glimpse.yaml", string(y)+"providers:\n  builder: docker://"+a.host+"?network=none\n")

	up := func(commit string) (string, string, error) { return a.up("5", commit) }
	stdout, stderr, err := up("d0c4e51")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, stderr)
	}
	t.Logf("glimpse up output:\n%s", stderr)
	for _, want := range []string{"  build   | Step 1/3 : FROM scratch", "  build   | Step 2/3 : COPY hello /hello", "  build   | Successfully built", "ok   build"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("up's progress lacks %q:\n%s", want, stderr)
		}
	}
	if url := strings.TrimSpace(stdout); url != "http://pr-5.hello.localhost:"+a.port()+"/" {
		t.Fatalf("up printed %q", url)
	}
	a.graphql("5", `"pr":5`, "d0c4e51")

	// A Go source change alone is ignored by .dockerignore: nothing built.
	os.WriteFile(filepath.Join(fn, "main.go"), append([]byte("// changed\n"), must(os.ReadFile(filepath.Join(fn, "main.go")))...), 0o644)
	if _, stderr, err = up("d0c4e52"); err != nil || !strings.Contains(stderr, "nothing built") {
		t.Fatalf("up after an ignored change: %v\n%s", err, stderr)
	}

	os.WriteFile(dockerfile, []byte("FROM scratch\nCOPY hello /hello\nCOPY config.json /config.json\n"), 0o644)
	_, stderr, err = up("d0c4e53")
	if err == nil {
		t.Fatalf("up with a failing Dockerfile succeeded:\n%s", stderr)
	}
	t.Logf("glimpse up with a failing Dockerfile: %v\n%s", err, stderr)
	msg := oneLine(err.Error())
	if msg != err.Error() || !strings.Contains(msg, "Step 3/3 : COPY config.json /config.json") || !strings.Contains(msg, "config.json") {
		t.Fatalf("error %q: want one line naming step 3/3 and the missing file", err)
	}
	if !strings.Contains(stderr, "FAIL build") {
		t.Fatalf("progress does not show the failed build:\n%s", stderr)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

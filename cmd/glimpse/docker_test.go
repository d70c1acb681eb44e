package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/glimpse-dev/glimpse/builder/dockerbuild" // docker:// (also wired in stack.go)
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// TestUpWithDockerBuilder runs `glimpse up` on examples/hello with the
// docker:// builder on a real engine ($GLIMPSE_DOCKER_HOST): the function
// binary is built first and put in a FROM scratch image (nothing can be
// pulled here). The build log shows in up's progress, the preview answers,
// and a failing Dockerfile is one error line naming the step.
func TestUpWithDockerBuilder(t *testing.T) {
	t.Parallel()
	host := testenv.Require(t, "GLIMPSE_DOCKER_HOST", "Docker engine to build on")
	_, home := inProcessStack(t)
	info, err := findServe(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	dir := testapp.Copy(t, "../../examples/hello")
	fn := filepath.Join(dir, "function")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "hello", ".")
	build.Dir = fn
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dockerfile := filepath.Join(fn, "Dockerfile")
	if err := os.WriteFile(dockerfile, []byte("FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Go sources stay out of the image and out of the source hash.
	if err := os.WriteFile(filepath.Join(fn, ".dockerignore"), []byte("*.go\ngo.mod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := filepath.Join(dir, "glimpse.yaml")
	y, _ := os.ReadFile(yaml)
	y = append(y, "providers:\n  builder: docker://"+host+"?network=none\n"...)
	if err := os.WriteFile(yaml, y, 0o644); err != nil {
		t.Fatal(err)
	}

	up := func(commit string) (string, string, error) {
		var out, errb bytes.Buffer
		err := runUp(context.Background(), &globalFlags{home: home}, &upFlags{pr: "5", commit: commit}, dir, &out, &errb)
		return out.String(), errb.String(), err
	}
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
	url := strings.TrimSpace(stdout)
	_, port, _ := net.SplitHostPort(info.Addr)
	if url != "http://pr-5.hello.localhost:"+port+"/" {
		t.Fatalf("up printed %q", url)
	}
	req, _ := http.NewRequest("POST", "http://"+info.Addr+"/graphql", strings.NewReader(`{}`))
	req.Host = "pr-5.hello.localhost:" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"pr":5`) || !strings.Contains(string(body), "d0c4e51") {
		t.Fatalf("POST /graphql = %d %s", resp.StatusCode, body)
	}

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

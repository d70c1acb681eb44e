package dockerbuild_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"

	"github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// BenchmarkBuildUnchanged measures Build when the context's source hash is
// already in the registry: walking and hashing the context (the webfn
// binary, about 5 MB), one manifest GET and one manifest PUT. The engine is
// not called (the platform is set).
func BenchmarkBuildUnchanged(b *testing.B) {
	host := engine(b)
	regHost, _ := registrytest.Embedded(b)
	reg := openRegistry(b, regHost)
	bld := newBuilder(b, host, "network=none&platform=linux/amd64")
	dir := source(b)
	ctx := context.Background()
	if _, err := bld.Build(ctx, request(reg, "bench", dir, 1, "aaaaaaa", nil)); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		res, err := bld.Build(ctx, request(reg, "bench", dir, 2+i%50, "bbbbbbb", nil))
		if err != nil || !res.Reused {
			b.Fatalf("Build = %+v, %v; want reuse", res, err)
		}
	}
}

// helloContext copies examples/hello and returns its function directory
// and a Docker context dir: the function built the way kobuild builds it,
// in a FROM scratch image.
func helloContext(b *testing.B) (fnDir, ctxDir string) {
	app := testapp.Copy(b, "../../examples/hello")
	fnDir = filepath.Join(app, "function")
	ctxDir = b.TempDir()
	write(b, ctxDir, "Dockerfile", "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n", 0o644)
	return fnDir, ctxDir
}

// changeHello makes the function's source differ, as a new commit does.
func changeHello(b *testing.B, fnDir string, i int) {
	main := filepath.Join(fnDir, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		b.Fatal(err)
	}
	src = append(src, fmt.Sprintf("\nvar benchRun%d = %d\n", i, counter.Add(1))...)
	if err := os.WriteFile(main, src, 0o644); err != nil {
		b.Fatal(err)
	}
}

// goBuild builds the function as kobuild does (static, stripped).
func goBuild(b *testing.B, fnDir, out string) {
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = fnDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, o)
	}
}

// BenchmarkColdHello compares a cold build of examples/hello's function
// (its source changed, Go's build cache warm for everything else), pushed
// to an embedded registry on loopback:
//   - ko: kobuild (go build, image assembled in process, push);
//   - docker: go build, then dockerbuild (context to the engine, classic
//     build FROM scratch, export, push by the client);
//   - docker-engine-push: the same build, pushed by the engine itself
//     (ImagePush) instead of exported, to weigh the choice dockerbuild made.
func BenchmarkColdHello(b *testing.B) {
	host := engine(b)
	regHost, _ := registrytest.Embedded(b)
	reg := openRegistry(b, regHost)
	ctx := context.Background()

	b.Run("ko", func(b *testing.B) {
		kb, err := kobuild.New(nil)
		if err != nil {
			b.Fatal(err)
		}
		fnDir, _ := helloContext(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			changeHello(b, fnDir, i)
			b.StartTimer()
			res, err := kb.Build(ctx, request(reg, "hello-ko", fnDir, 1, "aaaaaaa", nil))
			if err != nil || res.Reused {
				b.Fatalf("Build = %+v, %v; want a fresh build", res, err)
			}
		}
	})
	b.Run("docker", func(b *testing.B) {
		bld := newBuilder(b, host, "network=none&platform=linux/amd64")
		fnDir, ctxDir := helloContext(b)
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			changeHello(b, fnDir, i)
			b.StartTimer()
			goBuild(b, fnDir, filepath.Join(ctxDir, "hello"))
			res, err := bld.Build(ctx, request(reg, "hello-docker", ctxDir, 1, "aaaaaaa", nil))
			if err != nil || res.Reused {
				b.Fatalf("Build = %+v, %v; want a fresh build", res, err)
			}
		}
	})
	b.Run("docker-engine-push", func(b *testing.B) {
		cli, err := client.New(client.WithHost(host))
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
		fnDir, ctxDir := helloContext(b)
		auth := base64.URLEncoding.EncodeToString([]byte("{}"))
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			changeHello(b, fnDir, i)
			b.StartTimer()
			goBuild(b, fnDir, filepath.Join(ctxDir, "hello"))
			pr, pw := io.Pipe()
			cmd := exec.Command("tar", "-C", ctxDir, "-cf", "-", ".")
			cmd.Stdout = pw
			ref := fmt.Sprintf("%s/hello-engine:src-bench%d", regHost, counter.Add(1)) // removed by TestMain
			go func() { pw.CloseWithError(cmd.Run()) }()
			resp, err := cli.ImageBuild(ctx, pr, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, NetworkMode: "none", Version: "1"})
			if err != nil {
				b.Fatal(err)
			}
			drain(b, resp.Body)
			push, err := cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
			if err != nil {
				b.Fatal(err)
			}
			drain(b, push)
		}
	})
}

// drain reads an engine JSON stream to its end, failing on an error message.
func drain(b *testing.B, r io.ReadCloser) {
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var m struct{ Error string }
		if err := dec.Decode(&m); err == io.EOF {
			return
		} else if err != nil {
			b.Fatal(err)
		}
		if m.Error != "" {
			b.Fatal(m.Error)
		}
	}
}

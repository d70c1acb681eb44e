package pluginpb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// protocLine is the header line naming protoc's version, which depends on
// the machine rather than on glimpse.proto.
var protocLine = regexp.MustCompile(`(?m)^//\s+protoc\s+v.*$`)

// TestGeneratedCodeIsCurrent regenerates the Go code from glimpse.proto
// with gen.sh into a temporary directory and compares it with the committed
// files. protoc is a developer tool, not a server: without it the test
// skips, also under CI.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc is not installed (apt-get install protobuf-compiler); cannot check the generated code")
	}
	out := t.TempDir()
	cmd := exec.Command("./gen.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	for _, name := range []string{"glimpse.pb.go", "glimpse_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(protocLine.ReplaceAll(got, nil), protocLine.ReplaceAll(want, nil)) {
			t.Errorf("%s is not what glimpse.proto generates: run go generate ./plugin/proto", name)
		}
	}
}

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "state.json")
	if err := Write(p, []byte("one"), &Options{MkdirAll: true, Perm: 0o644, SyncDir: true}); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content = %q, %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (no temporaries)", len(ents))
	}
	// A target that cannot be replaced (a directory) leaves it and no
	// temporary file.
	if err := Write(filepath.Join(dir, "sub"), []byte("x"), nil); err == nil {
		t.Fatal("replacing a directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("a failed write left %d entries", len(ents))
	}
}

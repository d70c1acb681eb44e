// Package atomicfile replaces files so that readers, and a crash, see the
// old content or the new, never a part: the data goes to a temporary file
// (in the target's directory, or a given directory on the same file
// system), is synced, and is renamed over the target. The one home of the
// "write a temporary file and rename it" step that the state files of the
// edge, the local runtime, the embedded registry and the file asset store
// share.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Options tune Write; the zero value is the safe default.
type Options struct {
	// TempDir holds the temporary file; "" means the target's directory.
	// It must be on the target's file system for the rename to be atomic.
	TempDir string
	// Perm is the file's mode; 0 means 0o600 (os.CreateTemp's).
	Perm os.FileMode
	// MkdirAll creates the target's directory (mode 0o755) first.
	MkdirAll bool
	// NoSync skips the fsync of the data (tests and caches that a crash
	// may lose); SyncDir also syncs the directory after the rename, so
	// the rename itself survives a crash.
	NoSync, SyncDir bool
}

// Write replaces path with data. On failure the target is unchanged and
// no temporary file is left; the error is the file system's, unwrapped.
func Write(path string, data []byte, o *Options) error {
	if o == nil {
		o = &Options{}
	}
	dir := filepath.Dir(path)
	if o.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmpDir := o.TempDir
	if tmpDir == "" {
		tmpDir = dir
	}
	f, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && o.Perm != 0 {
		err = f.Chmod(o.Perm)
	}
	if err == nil && !o.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if o.SyncDir {
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

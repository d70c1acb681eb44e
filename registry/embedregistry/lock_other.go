//go:build !unix

package embedregistry

import "os"

// lockDir opens the lock file; platforms without flock get no protection
// against two processes serving one directory.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}

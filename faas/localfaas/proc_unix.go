//go:build unix

package localfaas

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// signalGroup sends sig to the process group led by pid. A group that is
// already gone is not an error.
func signalGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// lockHome takes an exclusive lock on p (created if missing) so that two
// runtimes never run the same home's functions. unlockHome releases it.
func lockHome(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, errors.New("another localfaas runtime uses this home")
		}
		return nil, err
	}
	return f, nil
}

func isTextBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }

// unlockHome releases the lock explicitly before closing: a child forked
// elsewhere in the process may briefly share the open file description,
// and closing alone would leave the lock held until that child execs.
func unlockHome(f *os.File) error {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}

// chownLike gives p (not following a symbolic link) the owner and group of
// fi, when the process may (as root); otherwise it leaves them.
func chownLike(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(p, int(st.Uid), int(st.Gid))
}

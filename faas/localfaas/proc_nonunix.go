//go:build !unix

package localfaas

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// Outside Unix there are no process groups or death signals: stopping kills
// the process itself, and only Close stops functions. There is no sandbox.
func sysProcAttr(sb *sandboxConfig, chroot string) *syscall.SysProcAttr { return nil }

func probeSandbox(dir string, sb *sandboxConfig) error {
	return errors.New("sandboxing needs Linux")
}

func signalGroup(pid int, sig syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func awaitExit(pid int) {}

func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

// lockHome opens p; outside Unix the home is not locked.
func lockHome(p string) (*os.File, error) { return os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600) }

func isTextBusy(err error) bool { return false }

func unlockHome(f *os.File) error { return f.Close() }

// addDevices does nothing outside Linux, where nothing runs sandboxed.
func addDevices(root *os.Root) {}

// handlesSignal: without /proc, every process counts as handling sig.
func handlesSignal(pid int, sig syscall.Signal) bool { return true }

// chownLike does nothing outside Unix.
func chownLike(p string, fi fs.FileInfo) error { return nil }

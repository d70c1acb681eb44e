//go:build unix && !linux

package localfaas

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// sysProcAttr puts the function in its own process group. Only Linux can
// have the kernel kill it when the daemon dies; elsewhere Close must run.
// There is no sandbox outside Linux, so sb is always nil.
func sysProcAttr(sb *sandboxConfig, chroot string) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func probeSandbox(dir string, sb *sandboxConfig) error {
	return errors.New("sandboxing needs Linux")
}

// awaitExit returns at once where waitid with WNOWAIT is not available; the
// group is then signalled after the leader is reaped.
func awaitExit(pid int) {}

func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

// addDevices does nothing outside Linux, where nothing runs sandboxed.
func addDevices(root *os.Root) {}

// handlesSignal: without /proc, every process counts as handling sig.
func handlesSignal(pid int, sig syscall.Signal) bool { return true }

//go:build unix && !linux

package localfaas

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the function in its own process group. Only Linux can
// have the kernel kill it when the daemon dies; elsewhere Close must run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// awaitExit returns at once where waitid with WNOWAIT is not available; the
// group is then signalled after the leader is reaped.
func awaitExit(pid int) {}

func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

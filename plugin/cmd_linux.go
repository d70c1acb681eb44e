package plugin

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks Linux to SIGKILL the plugin when the host dies, also
// when the host is killed -9 and cannot stop its plugins itself.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

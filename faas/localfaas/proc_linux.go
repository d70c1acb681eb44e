//go:build linux

package localfaas

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts the function in its own process group (so stopping it
// stops its children too) and has the kernel kill it when the daemon dies.
// With sb, the process also gets its own PID namespace (it is PID 1 there,
// and when it exits the kernel kills everything else in the namespace, so
// no descendant outlives it, even one that left the process group) and IPC
// namespace, is chrooted into chroot, and runs as sb's user and group with
// no supplementary groups (and so without capabilities).
func sysProcAttr(sb *sandboxConfig, chroot string) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if sb != nil {
		a.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC
		a.Chroot = chroot
		a.Credential = &syscall.Credential{Uid: sb.uid, Gid: sb.gid, Groups: []uint32{}}
	}
	return a
}

// probeSandbox checks that processes can start sandboxed: it starts one
// with the sandbox's attributes, chrooted into an empty directory under
// dir, for an executable that does not exist there. ENOENT means every
// step before the exec (namespaces, chroot, setgid, setuid) succeeded.
func probeSandbox(dir string, sb *sandboxConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("the daemon does not run as root")
	}
	empty, err := os.MkdirTemp(dir, pullTempPrefix+"sandbox-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(empty)
	if err := os.Chmod(empty, 0o755); err != nil {
		return err
	}
	cmd := &exec.Cmd{Path: "/glimpse-sandbox-probe", Args: []string{"probe"}, SysProcAttr: sysProcAttr(sb, empty)}
	err = cmd.Start()
	if err == nil { // cannot happen: nothing is there to run
		cmd.Process.Kill()
		cmd.Wait()
		return nil
	}
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// awaitExit blocks until pid has exited without reaping it, so that its
// process group ID cannot be reused while the caller kills what is left of
// the group.
func awaitExit(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != syscall.EINTR {
			return
		}
	}
}

// The kernel sends Pdeathsig when the thread that forked the child exits,
// not the process, and Go may end threads (one whose goroutine exits while
// locked to it). So every function is started from one goroutine locked to
// its thread for the life of the daemon.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives on
			for req := range spawnCh {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- spawnReq{cmd, done}
	return <-done
}

// devices are the character devices a sandboxed process finds in its
// image's /dev, as a container runtime would provide them.
var devices = []struct {
	name         string
	major, minor uint32
}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}}

// addDevices creates root/dev (when missing) and in it the devices the
// image lacks, mode 0666. It is best effort: without CAP_MKNOD, or on a
// file system mounted nodev, sandboxed processes do without. The nodes are
// made through a descriptor of dev opened inside root, so an image whose
// dev is a symbolic link cannot direct them elsewhere.
func addDevices(root *os.Root) {
	if err := root.Mkdir("dev", 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return
	}
	fi, err := root.Lstat("dev")
	if err != nil || !fi.IsDir() {
		return
	}
	d, err := root.Open("dev")
	if err != nil {
		return
	}
	defer d.Close()
	for _, dev := range devices {
		if _, err := root.Lstat("dev/" + dev.name); err == nil {
			continue
		}
		if unix.Mknodat(int(d.Fd()), dev.name, unix.S_IFCHR|0o666, int(unix.Mkdev(dev.major, dev.minor))) == nil {
			unix.Fchmodat(int(d.Fd()), dev.name, 0o666, 0) // whatever the umask
		}
	}
}

// handlesSignal reports whether process pid catches or ignores sig, read
// from /proc/PID/status (SigCgt, SigIgn). A process that does neither
// would die of sig, except as the init of a PID namespace, which the
// kernel shields from signals it has no handler for; stop then kills it at
// once instead of waiting out the grace period. Unknown (no /proc entry)
// counts as handling it.
func handlesSignal(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return true
	}
	bit := uint64(1) << (uint(sig) - 1)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "SigCgt" && k != "SigIgn") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil || mask&bit != 0 {
			return true
		}
	}
	return false
}

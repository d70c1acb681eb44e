package localfaas

import (
	"fmt"
	"os"

	"github.com/glimpse-dev/glimpse/preview"
)

// Sandbox says whether the runtime sandboxes function processes. A
// sandboxed process runs in its own PID and IPC namespaces, chrooted into
// its image's extracted file tree, as an unprivileged user (see the package
// documentation for what that isolates and what it does not).
type Sandbox int

const (
	// SandboxAuto (the zero value) sandboxes functions where the machine
	// allows it: on Linux, with the daemon running as root and the kernel
	// granting the namespaces (a container without CAP_SYS_ADMIN does
	// not). Elsewhere functions run unsandboxed, as the daemon's user, and
	// New logs one warning saying why.
	SandboxAuto Sandbox = iota
	// SandboxRequired makes New fail with FailedPrecondition when
	// functions cannot be sandboxed.
	SandboxRequired
	// SandboxOff runs functions unsandboxed, as the daemon's user and in
	// its PID namespace (for development and for measuring the sandbox's
	// cost).
	SandboxOff
)

func (s Sandbox) String() string {
	switch s {
	case SandboxAuto:
		return "auto"
	case SandboxRequired:
		return "required"
	case SandboxOff:
		return "off"
	}
	return fmt.Sprintf("Sandbox(%d)", int(s))
}

// DefaultSandboxID is the user and group ID sandboxed processes run as
// unless Options say otherwise: 65534, "nobody" and "nogroup" (or
// "nobody") on most Linux systems.
const DefaultSandboxID = 65534

// sandboxConfig is how sandboxed processes start; the runtime holds nil
// when functions run unsandboxed.
type sandboxConfig struct {
	uid, gid uint32
}

// setupSandbox decides, once in New, whether functions run sandboxed, and
// logs the decision: one Info line when they do, one Warn line when
// SandboxAuto falls back.
func (r *Runtime) setupSandbox() (*sandboxConfig, error) {
	if r.opts.Sandbox == SandboxOff {
		return nil, nil
	}
	sb := &sandboxConfig{uid: r.opts.SandboxUID, gid: r.opts.SandboxGID}
	if sb.uid == 0 {
		sb.uid = DefaultSandboxID
	}
	if sb.gid == 0 {
		sb.gid = DefaultSandboxID
	}
	err := probeSandbox(r.imagesDir, sb) // its directory is a pull leftover if the daemon dies meanwhile
	if err == nil {
		r.log.Info("localfaas: functions run sandboxed: own PID namespace, chroot into their image, unprivileged user", "uid", sb.uid, "gid", sb.gid)
		return sb, nil
	}
	if r.opts.Sandbox == SandboxRequired {
		return nil, preview.Errorf(preview.FailedPrecondition, "localfaas: cannot sandbox functions: %v", err)
	}
	r.log.Warn("localfaas: functions run unsandboxed, as the daemon's user and in its PID namespace (they can read what it can read)", "reason", err.Error())
	return nil, nil
}

// Sandboxed reports whether the runtime sandboxes its function processes
// (decided once, by New).
func (r *Runtime) Sandboxed() bool { return r.sandbox != nil }

// tightenHome makes dir (created if missing) accessible to its owner only:
// mode 0700, also when it existed with a wider mode.
func tightenHome(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

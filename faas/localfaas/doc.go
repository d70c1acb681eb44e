// Package localfaas is a preview.FunctionRuntime that runs functions as
// local processes on the machine of the Glimpse daemon. Apply pulls the
// function's OCI image, extracts its layers once per image digest into the
// daemon's home, and starts the image's entrypoint from the extracted tree
// with PORT set to a loopback port the runtime chose. The runtime
// supervises the processes (restart with backoff, no-downtime updates,
// scale between zero and one, a trial start when a function at zero is
// updated), persists its desired state so a restarted daemon brings the
// functions back, and serves the OpenFaaS gateway API (GatewayHandler) so
// that the openfaas client and faas-cli can drive it.
//
// # The sandbox
//
// Function code comes from pull requests and is not trusted. On Linux with
// the daemon running as root (and the kernel granting namespaces, which a
// container without CAP_SYS_ADMIN does not) every function process is
// sandboxed by default (Options.Sandbox):
//
//   - PID namespace: the entrypoint is PID 1 of a namespace of its own
//     (and of its own IPC namespace). It cannot see or signal the daemon,
//     other functions or any other process of the host. When it exits, or
//     is killed (on stop, or by the kernel's parent-death signal when the
//     daemon dies, even by SIGKILL), the kernel kills everything else in
//     its namespace: no descendant outlives its function, even one that
//     left the process group or the session.
//   - User: it runs as Options.SandboxUID/SandboxGID (default 65534,
//     nobody) with no supplementary groups, so with no capabilities: it
//     cannot escape the chroot, create devices or bind ports below
//     net.ipv4.ip_unprivileged_port_start (1024 by default).
//   - File system: it is chrooted into its image's extracted tree and sees
//     nothing else of the host: not GLIMPSE_HOME, not /proc (there is
//     none), not the host's /etc. The tree is the daemon's (root-owned) and
//     readable by everyone (images are not secret: the registry serves
//     them), so the function can read its image but not change it, except
//     what the image made world-writable (a /tmp with mode 1777), which is
//     shared by every function of the same image digest and kept across
//     restarts. The runtime adds what a container runtime
//     would provide: the host's /etc/hosts and /etc/resolv.conf where the
//     image has none, and /dev/null, zero, full, random and urandom (where
//     the file system allows device nodes). Besides, the home and
//     home/functions are mode 0700 and the runtime's files in them 0600
//     (gateway-password included), so neither functions nor other users of
//     the machine could read them even without the chroot.
//   - Secrets: a function with secrets (Function.Secrets, SecretNames, the
//     gateway's /system/secrets) is chrooted into a private copy of its
//     image's tree (hard links, no data copied) that alone holds them, as
//     files /var/openfaas/secrets/<name> readable by the sandbox user;
//     other functions, in their own trees, cannot reach them (see
//     secrets.go).
//   - Environment: exactly the image's variables, then the function's env
//     from its spec, then the runtime's, which win: HOST=127.0.0.1, PORT
//     and, for a function with secrets, GLIMPSE_SECRETS_DIR. PATH is the image's (a default when it sets none). Nothing
//     comes from the daemon's environment, so no password, token or cloud
//     key of the daemon reaches a function.
//
// What the sandbox does not isolate: the network. A function shares the
// host's network stack: it can connect to anything the host can reach,
// including every other function's loopback port, the daemon's API (whose
// registry writes, gateway and route APIs demand the daemon's credentials,
// which it does not have) and other services listening on the host; and
// although it is told HOST=127.0.0.1, nothing stops it from binding
// 0.0.0.0 or another free port itself, and so from being reachable from
// the network where the firewall allows. It is not a container: there are
// no cgroup limits on CPU, memory, processes or disk (a function can fill
// the disk under GLIMPSE_HOME through its world-writable directories and
// its log), no seccomp filter and no user namespace; it shares the host's
// kernel.
//
// Resources (preview.Function.Resources, glimpse.yaml's function.resources)
// are ignored by this runtime: it applies no CPU or memory limit and
// reserves nothing. A cheap limit would be a wrong one: RLIMIT_AS caps
// address space, not memory, and kills a Go program (which reserves far
// more address space than it uses) long before its heap is near the
// limit; RLIMIT_DATA likewise. A real limit needs a cgroup per function,
// which the one-machine daemon does not manage. The kubefaas and openfaas
// runtimes apply them.
//
// Without root, outside Linux, or where the kernel refuses the namespaces,
// SandboxAuto falls back: functions run unsandboxed, as the daemon's user,
// in its PID namespace (in their own process group, which the runtime
// kills on stop, and on Linux with a parent-death signal; a descendant
// that leaves the group can outlive them), with their working directory
// in the extracted tree but the host's file system visible; New logs one
// warning saying so. Their environment is composed the same way. Set
// SandboxRequired to make New fail instead.
//
// The sandbox adds nothing measurable to a wake from zero (see
// BenchmarkScaleUpSandboxCost).
package localfaas

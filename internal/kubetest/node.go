package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PauseImage is the sandbox image of the node's containerd: a static Go
// binary, FROM scratch, that waits for SIGTERM (nothing can be pulled
// here, so the node cannot fetch registry.k8s.io/pause).
const PauseImage = "glimpse.test/kubetest/pause:1"

// startNode starts, as ../shared/TESTBED.md's "real kubelet" recipe says,
// kube-controller-manager, kube-scheduler, a containerd of the cluster's
// own (config, root, state and socket under Dir) on a bridge CNI network,
// imports the pause image, and starts a kubelet; it returns once the node
// is Ready.
func (c *Cluster) startNode(ctx context.Context) error {
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	if err := c.startControllers(ctx, ports[0], ports[1]); err != nil {
		return err
	}

	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	suffix := hex.EncodeToString(id)
	c.NodeName = "kubetest-" + suffix
	c.ctrBin = os.Getenv(EnvCtr)
	cd := filepath.Join(c.Dir, "containerd")
	cniConf := filepath.Join(c.Dir, "cni")
	c.ContainerdAddress = filepath.Join(cd, "containerd.sock")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	c.bridge = "gk" + suffix
	// A /24 in 10.224.0.0/11, drawn at random so that two packages' nodes
	// running at once do not collide; the pods' addresses are reached only
	// from this machine's own bridge.
	n := binary.BigEndian.Uint16(id[:2]) % 8192
	subnet := fmt.Sprintf("10.%d.%d.0/24", 224+n/256, n%256)
	if err := os.WriteFile(filepath.Join(cniConf, "10-kubetest.conflist"), []byte(fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "kubetest",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, c.bridge, filepath.Join(c.Dir, "cni-ipam"), subnet)), 0o644); err != nil {
		return err
	}
	// restrict_oom_score_adj: without it every sandbox fails here with
	// "can't get final child's PID from pipe: EOF" (TESTBED.md).
	cfg := filepath.Join(cd, "config.toml")
	if err := os.MkdirAll(cd, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(cd, "root"), filepath.Join(cd, "state"), c.ContainerdAddress, c.ContainerdAddress+".ttrpc",
		filepath.Join(cd, "opt"), PauseImage, os.Getenv(EnvCNIBinDir), cniConf)), 0o644); err != nil {
		return err
	}
	containerd, err := c.run(ctx, "containerd", os.Getenv(EnvContainerd), "--config", cfg)
	if err != nil {
		return err
	}
	for {
		if err := exec.CommandContext(ctx, c.ctrBin, "--address", c.ContainerdAddress, "version").Run(); err == nil {
			break
		}
		if err := c.wait(ctx, containerd, 50*time.Millisecond); err != nil {
			return fmt.Errorf("containerd not ready: %w", err)
		}
	}
	pause, err := buildStatic(ctx, "", filepath.Join(c.Dir, "pause"), "github.com/glimpse-dev/glimpse/internal/kubetest/pause")
	if err != nil {
		return err
	}
	if err := c.ImportBinary(ctx, PauseImage, pause); err != nil {
		return err
	}

	kubeletDir := filepath.Join(c.Dir, "kubelet")
	kcfg := filepath.Join(c.Dir, "kubelet.yaml")
	// failCgroupV1: this machine has cgroup v1, which the kubelet refuses
	// otherwise. Image garbage collection is off (threshold 100%) so that
	// imported images, which cannot be pulled again, stay.
	// makeIPTablesUtilChains is off so that the kubelet leaves this
	// machine's iptables alone (otherwise it adds KUBE-FIREWALL, which
	// drops non-loopback traffic to 127.0.0.0/8, and keeps it after it
	// stops).
	if err := os.WriteFile(kcfg, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
resolvConf: ""
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: %s
makeIPTablesUtilChains: false
`, c.ContainerdAddress, ports[2], ports[3], filepath.Join(c.Dir, "pod-logs"))), 0o644); err != nil {
		return err
	}
	kubelet, err := c.run(ctx, "kubelet", os.Getenv(EnvKubelet),
		"--config", kcfg,
		"--kubeconfig", c.Kubeconfig,
		"--hostname-override", c.NodeName,
		"--root-dir", kubeletDir,
		"--cert-dir", filepath.Join(kubeletDir, "pki"),
	)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	for {
		if n, err := cs.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{}); err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if err := c.wait(ctx, kubelet, 100*time.Millisecond); err != nil {
			return fmt.Errorf("node %s not Ready: %w", c.NodeName, err)
		}
	}
}

// startControllers starts kube-controller-manager and kube-scheduler on
// the given loopback ports, with the admin kubeconfig; extra are more
// flags for both.
func (c *Cluster) startControllers(ctx context.Context, cmPort, schedPort int, extra ...string) error {
	saKey := filepath.Join(c.Dir, "sa.key")
	if _, err := c.run(ctx, "kube-controller-manager", os.Getenv(EnvControllerManager), append([]string{
		"--kubeconfig", c.Kubeconfig,
		"--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig,
		"--service-account-private-key-file", saKey,
		// The API server's CA, which the root-ca-cert-publisher puts in
		// every namespace's kube-root-ca.crt (a pod's ca.crt); without it
		// that ConfigMap is empty and in-cluster clients cannot verify
		// the API server.
		"--root-ca-file", c.CAFile,
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(cmPort),
		"--controllers", "*,-serviceaccount-token",
		"--leader-elect=false",
	}, extra...)...); err != nil {
		return err
	}
	_, err := c.run(ctx, "kube-scheduler", os.Getenv(EnvScheduler), append([]string{
		"--kubeconfig", c.Kubeconfig,
		"--authentication-kubeconfig", c.Kubeconfig,
		"--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(schedPort),
		"--leader-elect=false",
	}, extra...)...)
	return err
}

// ImportBinary imports into the node's containerd (namespace k8s.io) an
// image named ref holding only the static binary bin, as /bin/app, its
// entrypoint, run as user 65532. Pods use it with imagePullPolicy: Never.
// Importing the same ref again replaces it.
func (c *Cluster) ImportBinary(ctx context.Context, ref, bin string) error {
	if c.ContainerdAddress == "" {
		return errNoNode
	}
	tarPath := filepath.Join(c.Dir, "image-"+strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	if err := writeImageTar(tarPath, ref, bin); err != nil {
		return err
	}
	defer os.Remove(tarPath)
	out, err := exec.CommandContext(ctx, c.ctrBin, "--address", c.ContainerdAddress, "-n", "k8s.io", "images", "import", tarPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ImportGo builds the Go main package pkg of directory dir (relative to
// the test's working directory) static and imports it as the image ref
// (ImportBinary), once per cluster and ref however many tests ask: a
// package's tests share one cluster (Shared). It fails tb when the build
// or the import fails, every time it is asked after such a failure too.
func (c *Cluster) ImportGo(tb testing.TB, ref, dir, pkg string) {
	tb.Helper()
	c.importMu.Lock()
	if c.imports == nil {
		c.imports = map[string]*imported{}
	}
	im := c.imports[ref]
	if im == nil {
		im = &imported{}
		c.imports[ref] = im
	}
	c.importMu.Unlock()
	im.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		abs, err := filepath.Abs(dir)
		if err != nil {
			im.err = err
			return
		}
		name := strings.NewReplacer("/", "_", ":", "_").Replace(ref)
		bin, err := buildStatic(ctx, abs, filepath.Join(c.Dir, "bin-"+name), pkg)
		if err != nil {
			im.err = err
			return
		}
		im.err = c.ImportBinary(ctx, ref, bin)
	})
	if im.err != nil {
		tb.Fatalf("image %s: %v", ref, im.err)
	}
}

// imported is one ImportGo, done once.
type imported struct {
	once sync.Once
	err  error
}

// BuildStatic builds the Go main package pkg, as seen from directory dir
// ("" for the current one, such as "." in an example's own module), into
// a static binary at out (CGO_ENABLED=0) and returns out, for ImportBinary.
func BuildStatic(ctx context.Context, dir, out, pkg string) (string, error) {
	return buildStatic(ctx, dir, out, pkg)
}

func buildStatic(ctx context.Context, dir, out, pkg string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// drainNode, before the cluster's processes stop, deletes every pod and
// waits (at most 20 s) until the kubelet has stopped their containers
// and sandboxes and detached them from the bridge, so that their network namespaces and addresses are
// released the normal way. It does nothing without a node.
func (c *Cluster) drainNode() {
	if c.NodeName == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return
	}
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	zero := int64(0)
	for _, ns := range nss.Items {
		cs.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	}
	for ctx.Err() == nil {
		out, err := exec.CommandContext(ctx, c.ctrBin, "--address", c.ContainerdAddress, "-n", "k8s.io", "tasks", "ls", "-q").Output()
		if err != nil || (strings.TrimSpace(string(out)) == "" && len(bridgePorts(c.bridge)) == 0) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bridgePorts returns the interface indexes of the links attached to
// bridge (the host ends of the pods' veth pairs).
func bridgePorts(bridge string) map[string]bool {
	ports := map[string]bool{}
	if bridge == "" {
		return ports
	}
	out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.IndexByte(line, ':'); i > 0 {
			ports[line[:i]] = true
		}
	}
	return ports
}

// removePodNetns deletes the network namespaces (/run/netns/cni-*) whose
// eth0 is the peer of one of ports: those of this node's pods that the
// kubelet did not tear down in time. Other namespaces are left alone.
func removePodNetns(ports map[string]bool) {
	if len(ports) == 0 {
		return
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		out, err := exec.Command("ip", "-n", e.Name(), "-o", "link", "show", "eth0").Output()
		if err != nil {
			continue
		}
		// "3: eth0@if12: <...": 12 is the peer's index on the host.
		f := strings.Fields(string(out))
		if len(f) > 1 {
			if _, peer, ok := strings.Cut(strings.TrimSuffix(f[1], ":"), "@if"); ok && ports[peer] {
				exec.Command("ip", "netns", "delete", e.Name()).Run()
			}
		}
	}
}

// cleanupNode runs after every process of the cluster was stopped: it
// ends the containerd shims the node's containerd started (they outlive
// it by design) with their containers, unmounts what the node mounted
// under Dir, deletes the network namespaces of its pods that are still
// attached to its bridge, and deletes the bridge.
func (c *Cluster) cleanupNode() {
	if c.ContainerdAddress == "" {
		return
	}
	for _, pid := range shimsOf(c.ContainerdAddress) {
		killTree(pid)
	}
	unmountUnder(c.Dir)
	if c.bridge != "" {
		removePodNetns(bridgePorts(c.bridge))
		exec.Command("ip", "link", "delete", c.bridge).Run()
	}
}

// shimsOf returns the pids of the processes whose command line names
// address (containerd-shim-runc-v2 -address ADDRESS ...).
func shimsOf(address string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == address {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killTree kills pid and its descendants with SIGKILL, children first.
func killTree(pid int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fourth field, after "pid (comm) state", is the parent pid.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				killTree(child)
			}
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// unmountUnder detaches every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

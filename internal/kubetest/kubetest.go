// Package kubetest starts a real Kubernetes control plane for a test
// package: etcd and kube-apiserver on free loopback ports over a temporary
// directory, with token authentication (one admin token in group
// system:masters) and AlwaysAllow authorization (RBAC with
// Options.Authorization). With Options.FakeNode it adds kwok's fake node
// (kwok.go); with Options.Node it also
// starts kube-controller-manager, kube-scheduler, a private containerd with
// a bridge CNI network, and a real kubelet, so Deployments produce pods
// whose containers really run (see node.go).
//
// It needs the binaries .ci/steps/50-kubernetes.sh builds, named by
// environment variables: GLIMPSE_ETCD_BIN and GLIMPSE_KUBE_APISERVER_BIN
// always; for a node also GLIMPSE_KUBE_CONTROLLER_MANAGER_BIN,
// GLIMPSE_KUBE_SCHEDULER_BIN, GLIMPSE_KUBELET_BIN, GLIMPSE_CONTAINERD_BIN,
// GLIMPSE_CTR_BIN and GLIMPSE_CNI_BIN_DIR, and a node must run as root.
// When one is missing, Shared skips the test (fails it under CI=true, see
// internal/testenv).
//
// One cluster per test package: a control plane takes a few seconds to
// start, so a package's tests share one through Shared, and its TestMain
// calls StopShared after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		kubetest.StopShared()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		c := kubetest.Shared(t, kubetest.Options{})
//		client := c.Client(t)
//		...
//	}
//
// Tests sharing a cluster keep apart by namespace (Cluster.Namespace).
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// Environment variables naming the binaries a cluster runs.
const (
	EnvEtcd              = "GLIMPSE_ETCD_BIN"
	EnvAPIServer         = "GLIMPSE_KUBE_APISERVER_BIN"
	EnvControllerManager = "GLIMPSE_KUBE_CONTROLLER_MANAGER_BIN"
	EnvScheduler         = "GLIMPSE_KUBE_SCHEDULER_BIN"
	EnvKubelet           = "GLIMPSE_KUBELET_BIN"
	EnvContainerd        = "GLIMPSE_CONTAINERD_BIN"
	EnvCtr               = "GLIMPSE_CTR_BIN"
	EnvCNIBinDir         = "GLIMPSE_CNI_BIN_DIR"
	EnvKwok              = "GLIMPSE_KWOK_BIN"
	EnvKwokStages        = "GLIMPSE_KWOK_STAGES"
)

// Options say what to start.
type Options struct {
	// Node adds kube-controller-manager, kube-scheduler, containerd and a
	// kubelet: one schedulable node on which pods really run.
	Node bool
	// Timeout bounds the start-up; zero means 90s.
	Timeout time.Duration
	// FakeNode adds kube-controller-manager, kube-scheduler and kwok with
	// one fake node (Cluster.FakeNodeName) that takes up to FakeNodePods
	// pods: pods are scheduled and turn Running and Ready without a
	// kubelet (nothing runs in them), for figures at a scale real pods
	// would not fit (see kwok.go). It excludes Node.
	FakeNode bool
	// Authorization is the API server's --authorization-mode: empty means
	// AlwaysAllow; "RBAC" checks every request against Roles and
	// bindings, to test what a service account may do (the admin token's
	// group, system:masters, may still do anything).
	Authorization string
}

// Cluster is a running control plane (and node, with Options.Node). Its
// methods are safe for concurrent use.
type Cluster struct {
	// Dir holds every file of the cluster: data, configuration, logs
	// (NAME.log for each process). It is removed by Stop.
	Dir string
	// Kubeconfig is the path of a kubeconfig file for the admin user.
	Kubeconfig string
	// Host is the API server's URL, https://127.0.0.1:PORT.
	Host string
	// Token is the admin user's bearer token (group system:masters).
	Token string
	// CAFile verifies the API server's self-signed certificate.
	CAFile string

	// NodeName is the kubelet's node, with Options.Node.
	NodeName string
	// ContainerdAddress is the node's containerd socket, with Options.Node.
	ContainerdAddress string
	// FakeNodeName is kwok's node, with Options.FakeNode.
	FakeNodeName string

	ctrBin   string
	bridge   string
	importMu sync.Mutex
	imports  map[string]*imported // ImportGo, by image
	procs    []*process           // in start order; stopped in reverse
	stop     sync.Once
}

// process is one started server.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// required lists the environment variables opts needs.
func required(opts Options) map[string]string {
	r := map[string]string{
		EnvEtcd:      "etcd binary (.ci/steps/50-kubernetes.sh builds it)",
		EnvAPIServer: "kube-apiserver binary (.ci/steps/50-kubernetes.sh builds it)",
	}
	if opts.Node {
		r[EnvControllerManager] = "kube-controller-manager binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvScheduler] = "kube-scheduler binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvKubelet] = "kubelet binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvContainerd] = "containerd binary (apt-get install docker.io)"
		r[EnvCtr] = "ctr binary (apt-get install docker.io)"
		r[EnvCNIBinDir] = "CNI plugins directory (apt-get install containernetworking-plugins)"
	}
	if opts.FakeNode {
		r[EnvControllerManager] = "kube-controller-manager binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvScheduler] = "kube-scheduler binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvKwok] = "kwok binary (.ci/steps/50-kubernetes.sh builds it)"
		r[EnvKwokStages] = "kwok stages file (.ci/steps/50-kubernetes.sh writes it)"
	}
	return r
}

// Start starts a cluster as opts say and waits until its API server is
// ready (and, with Options.Node, its node is Ready). On failure it stops
// whatever it started and returns an error that quotes the failing
// process's log tail. The caller stops the cluster with Stop.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	for env, what := range required(opts) {
		if os.Getenv(env) == "" {
			return nil, fmt.Errorf("%s is not set: no %s", env, what)
		}
	}
	if opts.Node && opts.FakeNode {
		return nil, errors.New("kubetest: Options.Node and Options.FakeNode exclude each other")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "glimpse-kubetest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.startControlPlane(ctx, opts); err != nil {
		return nil, err
	}
	if opts.Node {
		if err := c.startNode(ctx); err != nil {
			return nil, err
		}
	}
	if opts.FakeNode {
		if err := c.startFakeNode(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) startControlPlane(ctx context.Context, opts Options) error {
	authz := opts.Authorization
	if authz == "" {
		authz = "AlwaysAllow"
	}
	etcdPort, etcdPeerPort, apiPort, err := freePort3()
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	if _, err := c.run(ctx, "etcd", os.Getenv(EnvEtcd),
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--unsafe-no-fsync",
		"--log-level", "warn",
	); err != nil {
		return err
	}

	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	c.Token = hex.EncodeToString(token)
	tokens := filepath.Join(c.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	saKey, saPub, err := c.serviceAccountKeys()
	if err != nil {
		return err
	}
	certDir := filepath.Join(c.Dir, "apiserver-certs")
	c.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.CAFile = filepath.Join(certDir, "apiserver.crt")
	api, err := c.run(ctx, "kube-apiserver", os.Getenv(EnvAPIServer),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--token-auth-file", tokens,
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--authorization-mode", authz,
		"--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--cert-dir", certDir,
	)
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, api); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return os.WriteFile(c.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, c.Host, c.CAFile, c.Token)), 0o600)
}

// serviceAccountKeys writes the key pair the API server signs and checks
// service-account tokens with.
func (c *Cluster) serviceAccountKeys() (keyFile, pubFile string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyFile, pubFile = filepath.Join(c.Dir, "sa.key"), filepath.Join(c.Dir, "sa.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return keyFile, pubFile, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// waitReady polls the API server's /readyz until every check passes.
func (c *Cluster) waitReady(ctx context.Context, api *process) error {
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // only until the cert is written; the clients verify it
	}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if _, err := os.Stat(c.CAFile); err == nil {
					return nil
				}
			}
		}
		if err := c.wait(ctx, api, 50*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver not ready: %w", err)
		}
	}
}

// wait sleeps for d, or returns an error when ctx ends or p exits first.
func (c *Cluster) wait(ctx context.Context, p *process, d time.Duration) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w; %s", ctx.Err(), tail(p.log))
	case <-p.done:
		return fmt.Errorf("%s exited: %s", p.name, tail(p.log))
	case <-time.After(d):
		return nil
	}
}

// run starts bin with args, its output in Dir/NAME.log; the process is
// stopped (SIGTERM, then SIGKILL after 10s) by Stop.
func (c *Cluster) run(ctx context.Context, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	return p, nil
}

// Stop stops every process of the cluster, last started first, and
// removes Dir. It is idempotent.
func (c *Cluster) Stop() {
	c.stop.Do(func() {
		c.drainNode()
		for i := len(c.procs) - 1; i >= 0; i-- {
			p := c.procs[i]
			// The process group, so that shims and plugins a process
			// started end with it.
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
		c.cleanupNode()
		os.RemoveAll(c.Dir)
	})
}

// Config returns a client configuration for the admin user. The rate
// limits are raised so that tests are not throttled by client-go.
func (c *Cluster) Config() *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             1000,
		Burst:           2000,
	}
}

// ServiceAccountConfig returns a client configuration that authenticates
// as the service account namespace/name with a token from the API server's
// TokenRequest API (what a pod's projected token is), valid for an hour:
// with Options.Authorization "RBAC", its requests get exactly what the
// service account's bindings allow. The service account must exist.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return nil, err
	}
	hour := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for service account %s/%s: %w", namespace, name, err)
	}
	cfg := c.Config()
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// RoleClient creates, in namespace, the service account name, a Role
// name with rules and the RoleBinding name between them, and returns a
// clientset that authenticates as that service account (see
// ServiceAccountConfig): with Options.Authorization "RBAC" it can do
// exactly what rules allow. It fails tb on error.
func (c *Cluster) RoleClient(ctx context.Context, tb testing.TB, namespace, name string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	tb.Helper()
	admin := c.Client(tb)
	if _, err := admin.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: service account %s: %v", name, err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if _, err := admin.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: role %s: %v", name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
	}
	if _, err := admin.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: role binding %s: %v", name, err)
	}
	cfg, err := c.ServiceAccountConfig(ctx, namespace, name)
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatalf("kubetest: client: %v", err)
	}
	return cs
}

// Client returns a clientset for the admin user, failing tb on error.
func (c *Cluster) Client(tb testing.TB) kubernetes.Interface {
	tb.Helper()
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		tb.Fatalf("kubetest: client: %v", err)
	}
	return cs
}

// Namespace creates a namespace unique to tb, deleted when tb ends, and
// returns its name.
func (c *Cluster) Namespace(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "t-" + hex.EncodeToString(b)
	cs := c.Client(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: create namespace: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// The cluster shared by a test package.
var shared struct {
	mu   sync.Mutex
	opts Options
	c    *Cluster
	err  error
	done bool
}

// Shared returns the test package's cluster, starting it on the first
// call; later calls return the same cluster (or the same start error).
// Every call in a package must pass the same opts. When a binary is not
// named by its environment variable, tb skips (fails under CI); when the
// cluster fails to start, tb fails. TestMain stops it with StopShared.
func Shared(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	for env, what := range required(opts) {
		testenv.Require(tb, env, what)
	}
	if opts.Node && os.Geteuid() != 0 {
		testenv.Missing(tb, "a kubelet and containerd need root")
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.done {
		shared.opts = opts
		shared.c, shared.err = Start(context.Background(), opts)
		shared.done = true
	}
	if shared.opts != opts {
		tb.Fatalf("kubetest: Shared called with %+v after %+v: one cluster per package", opts, shared.opts)
	}
	if shared.err != nil {
		tb.Fatalf("kubetest: start cluster: %v", shared.err)
	}
	return shared.c
}

// StopShared stops the cluster Shared started, if any.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		shared.c.Stop()
	}
}

// freePort3 returns three distinct free loopback TCP ports.
func freePort3() (a, b, c int, err error) {
	ports, err := freePorts(3)
	if err != nil {
		return 0, 0, 0, err
	}
	return ports[0], ports[1], ports[2], nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago (each listener is held until all are picked).
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last lines of a log file, for error messages, on one
// line.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return fmt.Sprintf("last lines of %s: %s", path, strings.Join(lines, " | "))
}

var errNoNode = errors.New("kubetest: the cluster has no node (Options.Node)")

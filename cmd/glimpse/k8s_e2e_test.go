package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/cdn/s3assets/s3test"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/deploy"
	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
	"github.com/glimpse-dev/glimpse/ingress/k8singress"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/leader"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/registrytest"
)

// glimpseImage is the daemon's image in the test: the glimpse binary
// built static, FROM scratch, imported into the node (kubetest.ImportBinary).
const glimpseImage = "glimpse.test/glimpse:e2e"

// TestKubernetesEndToEnd is issue 16's end-to-end run against a real
// single-node cluster (etcd, kube-apiserver with RBAC, controller-manager,
// scheduler, a real kubelet on containerd with a bridge CNI):
//
//   - deploy/'s namespaces and least-privilege RBAC are installed, and
//     `glimpse serve` runs in the cluster as a pod built from deploy/'s
//     Deployment template (the glimpse binary in a FROM-scratch image,
//     imported into the node), as service account glimpse/glimpse with the
//     token the kubelet projects, with runtime kubefaas://glimpse-functions,
//     routes k8s-ingress://glimpse, assets in S3 (versitygw) and no
//     registry. Two deviations, both for the test cluster only: the pod
//     uses the host's network, because the API server listens on loopback
//     and there is no kube-proxy (so KUBERNETES_SERVICE_HOST/PORT name
//     127.0.0.1 and the API server's port), and namespace glimpse is
//     therefore relabelled from the restricted Pod Security Standard to
//     privileged;
//   - `glimpse up` from the CLI (admin kubeconfig): ko:// build, push to
//     the CNCF distribution registry on 127.0.0.1, kubefaas:// deploy (the
//     kubelet pulls the image from that registry itself: containerd talks
//     plain HTTP to a registry on localhost; a real cluster pulls from the
//     team's registry the same way), upload to S3, k8s-ingress:// route;
//   - the in-cluster daemon's edge serves the preview's static files from
//     S3 and forwards /graphql to the pod; it leads (/healthz) and its log
//     says it used the in-cluster service account; the idle controller
//     scales the function to zero replicas, and the next request through
//     the edge wakes it and gets the answer;
//   - an `up` killed right after its Deployment appeared leaves labelled
//     objects that `glimpse gc` (GitHub fake: that pull request does not
//     exist) finds and removes (the route's tombstone aside), leaving the
//     live preview alone;
//   - `glimpse down` leaves no labelled Deployment, Service or Secret, and
//     no Ingress but the route's tombstone, which Down keeps by design.
//   - a second daemon pod serves without leading; killing the leader's pod
//     hands the Lease (and the idle controller) over within the lease
//     duration.
func TestKubernetesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with a real kubelet and runs the daemon in it")
	}
	for _, env := range []string{kubetest.EnvEtcd, kubetest.EnvAPIServer, kubetest.EnvControllerManager, kubetest.EnvScheduler,
		kubetest.EnvKubelet, kubetest.EnvContainerd, kubetest.EnvCtr, kubetest.EnvCNIBinDir} {
		testenv.Require(t, env, "Kubernetes binaries (.ci/steps/50-kubernetes.sh)")
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "a kubelet and containerd need root")
	}
	// The daemon's binary first: a static build of everything takes
	// minutes on a loaded machine, which the cluster's deadline must not
	// include.
	bctx, bcancel := context.WithTimeout(context.Background(), 15*time.Minute)
	bin, err := kubetest.BuildStatic(bctx, "", filepath.Join(t.TempDir(), "glimpse"), ".")
	bcancel()
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Distribution(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "previews")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c, err := kubetest.Start(ctx, kubetest.Options{Node: true, Authorization: "RBAC"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	cs := c.Client(t)
	tmpl := installDeploy(t, c)

	if err := c.ImportBinary(ctx, glimpseImage, bin); err != nil {
		t.Fatal(err)
	}
	apiPort := strings.TrimPrefix(c.Host, "https://127.0.0.1:")
	assetsURL := s3.URL("previews", "")
	// startDaemon runs `glimpse serve` as pod name, listening on a free
	// port of the host, and returns its address once the pod is Ready.
	startDaemon := func(name string) string {
		t.Helper()
		port := freePort(t)
		pod := daemonPod(tmpl, name, port, map[string]string{
			"GLIMPSE_SERVE_LISTEN":    "0.0.0.0:" + strconv.Itoa(port),
			"GLIMPSE_SERVE_ASSETS":    assetsURL,
			"KUBERNETES_SERVICE_HOST": "127.0.0.1",
			"KUBERNETES_SERVICE_PORT": apiPort,
			"AWS_ACCESS_KEY_ID":       s3.AccessKey,
			"AWS_SECRET_ACCESS_KEY":   s3.SecretKey,
		})
		if _, err := cs.CoreV1().Pods(deploy.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the daemon's pod: %v", err)
		}
		waitFor(t, ctx, "the daemon's pod "+name+" Ready", func() (bool, string) {
			p, err := cs.CoreV1().Pods(deploy.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					return true, ""
				}
			}
			return false, fmt.Sprintf("phase %s, %+v; log: %s", p.Status.Phase, p.Status.ContainerStatuses, podLog(c, p))
		})
		p, _ := cs.CoreV1().Pods(deploy.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if log := podLog(c, p); !strings.Contains(log, `"kubernetes credentials" from="in-cluster service account"`) {
			t.Errorf("the log of %s does not say it used the in-cluster service account:\n%s", name, log)
		}
		return "127.0.0.1:" + strconv.Itoa(port)
	}
	leading := func(addr string) (bool, string) {
		var h daemon.Health
		getJSON(t, "http://"+addr+"/healthz", &h)
		b, _ := json.Marshal(h.Leader)
		return h.Leader != nil && h.Leader.Leading && h.Leader.Lease == deploy.Namespace+"/"+DefaultLeaseName, string(b)
	}
	addr := startDaemon("glimpse-0")
	waitFor(t, ctx, "the only replica leading", func() (bool, string) { return leading(addr) })

	// The CLI: every provider named, so it needs no local daemon.
	app := testapp.Copy(t, "../../examples/hello")
	y, err := os.ReadFile(filepath.Join(app, "glimpse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(string(y), "after: 15m", "after: 3s", 1) + "providers:\n" +
		"  builder: ko://\n" +
		"  registry: oci://" + reg + "\n" +
		"  runtime: kubefaas://" + deploy.FunctionsNamespace + "\n" +
		"  assets: " + assetsURL + "\n" +
		"  router: k8s-ingress://" + deploy.Namespace + "\n"
	if err := os.WriteFile(filepath.Join(app, "glimpse.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := githubfake.New("acme", "hello", "tok")
	fake.SetPull(fake.Pull(5, "5555555", "acme/hello", ""))
	gh := httptest.NewServer(fake)
	defer gh.Close()
	cli := &stack{bin: bin, home: t.TempDir(), env: []string{
		"KUBECONFIG=" + c.Kubeconfig, "AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
		"GITHUB_TOKEN=tok", "GITHUB_REPOSITORY=acme/hello", "GLIMPSE_GITHUB_API_URL=" + gh.URL,
	}}
	cli.addr = addr
	cli.run(t, "up", app, "--pr", "5", "--commit", "5555555")
	const fn, host = "hello-pr-5", "pr-5.hello.localhost"
	dep, err := cs.AppsV1().Deployments(deploy.FunctionsNamespace).Get(ctx, fn, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, reg+"/") {
		t.Errorf("the function's image %s is not from the registry %s", img, reg)
	}
	if _, err := cs.NetworkingV1().Ingresses(deploy.Namespace).Get(ctx, host, metav1.GetOptions{}); err != nil {
		t.Fatalf("the preview's Ingress: %v", err)
	}

	hc := cli.client()
	index, _ := os.ReadFile(filepath.Join(app, "public", "index.html"))
	url := "http://" + host + "/"
	waitFor(t, ctx, "the edge serving the preview's index.html", func() (bool, string) {
		code, body, _ := get(t, hc, "GET", url, "")
		return code == 200 && body == string(index), fmt.Sprintf("%d %.80q", code, body)
	})
	if code, body, _ := get(t, hc, "POST", url+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":5`) {
		t.Fatalf("POST /graphql through the in-cluster edge = %d %q", code, body)
	}

	// Idle: the leader's idle controller scales the function to zero.
	waitFor(t, ctx, "the idle controller scaling the function to zero", func() (bool, string) {
		d, err := cs.AppsV1().Deployments(deploy.FunctionsNamespace).Get(ctx, fn, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods, _ := cs.CoreV1().Pods(deploy.FunctionsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "glimpse.dev/function=" + fn})
		return *d.Spec.Replicas == 0 && len(pods.Items) == 0, fmt.Sprintf("replicas %d, %d pods", *d.Spec.Replicas, len(pods.Items))
	})
	if code, body, _ := get(t, hc, "GET", url, ""); code != 200 || body != string(index) {
		t.Errorf("GET / while the function sleeps = %d; want the static page", code)
	}
	start := time.Now()
	if code, body, _ := get(t, hc, "POST", url+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":5`) {
		t.Fatalf("the first request after idle = %d %q; want the woken pod's answer", code, body)
	}
	t.Logf("wake from zero through the in-cluster edge: %v", time.Since(start).Round(time.Millisecond))
	if d, _ := cs.AppsV1().Deployments(deploy.FunctionsNamespace).Get(ctx, fn, metav1.GetOptions{}); *d.Spec.Replicas != 1 {
		t.Errorf("replicas after the wake: %d, want 1", *d.Spec.Replicas)
	}
	if wakes := (&stack{addr: addr}).metric(t, "glimpse_edge_wakes_total"); wakes != 1 {
		t.Errorf("glimpse_edge_wakes_total = %v, want 1", wakes)
	}

	// A crash mid-up: kill `up --pr 6` once its Deployment exists.
	up := exec.Command(bin, "up", app, "--pr", "6", "--commit", "6666666")
	up.Env = append(append(os.Environ(), "GLIMPSE_HOME="+cli.home), cli.env...)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the second up's Deployment", func() (bool, string) {
		_, err := cs.AppsV1().Deployments(deploy.FunctionsNamespace).Get(ctx, "hello-pr-6", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	up.Process.Signal(syscall.SIGKILL)
	up.Wait()
	left := labelled(t, ctx, cs, "glimpse.dev/pr=6")
	if len(left) == 0 {
		t.Fatal("the killed up left no labelled object")
	}
	t.Logf("the killed up left %v", left)
	out, _ := cli.run(t, "gc", app, "--yes")
	if !strings.Contains(out, "#6") {
		t.Errorf("gc output does not name pull request 6:\n%s", out)
	}
	waitFor(t, ctx, "gc removing what the killed up left", func() (bool, string) {
		left := labelled(t, ctx, cs, "glimpse.dev/pr=6")
		return len(left) == 0, fmt.Sprintf("left %v after gc:\n%s", left, out)
	})
	if code, body, _ := get(t, hc, "POST", url+"graphql", "{}"); code != 200 || !strings.Contains(body, `"pr":5`) {
		t.Fatalf("the live preview after gc = %d %q", code, body)
	}

	cli.run(t, "down", app, "--pr", "5")
	waitFor(t, ctx, "down removing every labelled object", func() (bool, string) {
		left := labelled(t, ctx, cs, preview.LabelManagedBy+"="+preview.ManagedByValue)
		return len(left) == 0, fmt.Sprintf("left %v", left)
	})
	if code, _, _ := get(t, hc, "GET", url, ""); code == 200 {
		t.Errorf("GET / after down = 200; want the preview gone")
	}

	// A second replica serves but does not lead; once the leader's pod
	// is killed (deleted with no grace), it leads within the lease
	// duration (leader.DefaultLeaseDuration) plus a retry period of the
	// old leader's last renewal. That is measured from the Lease itself:
	// the kubelet stops the container some time after the delete (seconds
	// on a loaded machine), and the old leader renews until then.
	addr1 := startDaemon("glimpse-1")
	if ok, st := leading(addr1); ok {
		t.Fatalf("the second replica leads too: %s", st)
	}
	if ok, st := leading(addr); !ok {
		t.Fatalf("the first replica stopped leading: %s", st)
	}
	lease := func() (holder string, renewed time.Time) {
		l, err := cs.CoordinationV1().Leases(deploy.Namespace).Get(ctx, DefaultLeaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil {
			return "", time.Time{}
		}
		return *l.Spec.HolderIdentity, l.Spec.RenewTime.Time
	}
	oldHolder, lastRenew := lease()
	if oldHolder == "" {
		t.Fatal("no holder on the Lease " + DefaultLeaseName)
	}
	zero := int64(0)
	killed := time.Now()
	if err := cs.CoreV1().Pods(deploy.Namespace).Delete(ctx, "glimpse-0", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the second replica taking the lease over", func() (bool, string) {
		if h, r := lease(); h == oldHolder && r.After(lastRenew) {
			lastRenew = r // the old leader, still running, renewed
		}
		return leading(addr1)
	})
	took := time.Since(lastRenew)
	t.Logf("handover: %v after the old leader's last renewal, %v after its pod was deleted", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	// The candidate retries every RetryPeriod with client-go's jitter
	// factor 1.2 (wait.JitterUntil: up to 2.2 periods apart), so it may
	// try last just before the Lease expires and next 2.2 periods later;
	// 5s is for the API server and the /healthz poll on a loaded machine
	// (CI measured 15.2-21.4s).
	if max := leader.DefaultLeaseDuration + leader.DefaultRetryPeriod*22/10 + 5*time.Second; took > max {
		t.Errorf("handover took %v after the old leader's last renewal, want at most %v", took, max)
	}
}

// installDeploy applies deploy/'s objects except the daemon's Deployment,
// whose pod template it returns: the namespaces (glimpse relabelled
// privileged, for the host network), the service account, Roles and
// bindings, the edge Service and the wildcard Ingress.
func installDeploy(t *testing.T, c *kubetest.Cluster) corev1.PodTemplateSpec {
	t.Helper()
	objs, err := deploy.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var tmpl *corev1.PodTemplateSpec
	var rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace":
			if o.GetName() == deploy.Namespace {
				labels := o.GetLabels()
				labels["pod-security.kubernetes.io/enforce"] = "privileged"
				o.SetLabels(labels)
			}
		case "Deployment":
			var d appsv1.Deployment
			convert(t, o.Object, &d)
			tmpl = &d.Spec.Template
			continue
		}
		rest = append(rest, o)
	}
	if tmpl == nil {
		t.Fatal("deploy/ has no Deployment")
	}
	c.Apply(t, rest...)
	return *tmpl
}

func convert(t *testing.T, obj map[string]any, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, into); err != nil {
		t.Fatal(err)
	}
}

// daemonPod is deploy/'s daemon pod template as one pod on the host's
// network (see TestKubernetesEndToEnd), running glimpseImage, listening
// on port, with env set over the template's.
func daemonPod(tmpl corev1.PodTemplateSpec, name string, port int, env map[string]string) *corev1.Pod {
	spec := tmpl.Spec.DeepCopy()
	spec.HostNetwork = true
	spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	ctr := &spec.Containers[0]
	ctr.Image = glimpseImage
	ctr.ImagePullPolicy = corev1.PullNever
	for i := range ctr.Ports {
		if ctr.Ports[i].Name == "http" {
			ctr.Ports[i].ContainerPort = int32(port)
		}
	}
	for k, v := range env {
		found := false
		for i := range ctr.Env {
			if ctr.Env[i].Name == k {
				ctr.Env[i] = corev1.EnvVar{Name: k, Value: v}
				found = true
			}
		}
		if !found {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, Value: v})
		}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: deploy.Namespace, Labels: tmpl.Labels}, Spec: *spec}
}

// podLog returns the log of p's first container, read from the node's
// pod log directory.
func podLog(c *kubetest.Cluster, p *corev1.Pod) string {
	files, _ := filepath.Glob(filepath.Join(c.Dir, "pod-logs", p.Namespace+"_"+p.Name+"_"+string(p.UID), "*", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// labelled returns the Deployments, Services, Secrets (functions
// namespace) and Ingresses (glimpse namespace) matching selector, as
// KIND/NAME, leaving out the Ingresses that are tombstones: Down and gc
// keep the tombstone of a route by design (preview/down.go: it serves
// nothing, has no paths, and makes the Down final for an Up in flight).
func labelled(t *testing.T, ctx context.Context, cs kubernetes.Interface, selector string) []string {
	t.Helper()
	o := metav1.ListOptions{LabelSelector: selector}
	d, err1 := cs.AppsV1().Deployments(deploy.FunctionsNamespace).List(ctx, o)
	s, err2 := cs.CoreV1().Services(deploy.FunctionsNamespace).List(ctx, o)
	sec, err3 := cs.CoreV1().Secrets(deploy.FunctionsNamespace).List(ctx, o)
	i, err4 := cs.NetworkingV1().Ingresses(deploy.Namespace).List(ctx, o)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for _, x := range d.Items {
		out = append(out, "deployment/"+x.Name)
	}
	for _, x := range s.Items {
		out = append(out, "service/"+x.Name)
	}
	for _, x := range sec.Items {
		out = append(out, "secret/"+x.Name)
	}
	router, err := k8singress.New(cs, deploy.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range i.Items {
		if rt, err := router.Route(ctx, x.Name); err == nil && rt.Deleted {
			continue
		}
		out = append(out, "ingress/"+x.Name)
	}
	return out
}

// waitFor polls cond every 100ms until it holds, failing t with what it
// last said when ctx ends or two minutes pass.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

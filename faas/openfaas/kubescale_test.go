package openfaas

import (
	"context"
	"errors"
	"maps"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
)

// The Deployment-scaling tests share one cluster with a real node.
func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

const helloImage = "glimpse.test/hello:1"

// nodeCluster returns the package's cluster, with examples/hello's
// function imported into the node as helloImage.
func nodeCluster(tb testing.TB) *kubetest.Cluster {
	c := kubetest.Shared(tb, kubetest.Options{Node: true})
	c.ImportGo(tb, helloImage, "../../examples/hello/function", ".")
	return c
}

// netesDeployment is the Deployment faas-netes creates for d, after
// pkg/handlers/deploy.go makeDeploymentSpec: the Deployment labelled
// faas_function only, the request's labels on the pod template, one
// replica, a surge-only rolling update, the request's annotations plus
// prometheus.io.scrape. Two changes for this node: the image is never
// pulled (faas-netes' image_pull_policy: Never), the readiness probe is
// a TCP check (faas-netes' default probes ask the watchdog's /_/health,
// which examples/hello does not serve), and the grace period is 1 s
// rather than Kubernetes' default 30 s (as PID 1 the function ignores
// SIGTERM), so that a scale to zero ends its pod at once.
func netesDeployment(d types.FunctionDeployment) *appsv1.Deployment {
	labels := map[string]string{LabelFaasFunction: d.Service}
	if d.Labels != nil {
		maps.Copy(labels, *d.Labels)
	}
	ann := map[string]string{"prometheus.io.scrape": "false"}
	if d.Annotations != nil {
		maps.Copy(ann, *d.Annotations)
	}
	var env []corev1.EnvVar
	for k, v := range d.EnvVars {
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	one, ten, no, grace := int32(1), int32(10), false, int64(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: d.Service, Annotations: ann, Labels: map[string]string{LabelFaasFunction: d.Service}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelFaasFunction: d.Service}},
			Replicas: &one,
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 0},
					MaxSurge:       &intstr.IntOrString{Type: intstr.Int, IntVal: 1},
				},
			},
			RevisionHistoryLimit: &ten,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Name: d.Service, Labels: labels, Annotations: ann},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:            d.Service,
						Image:           d.Image,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						Env:             env,
						ImagePullPolicy: corev1.PullNever,
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
						SecurityContext: &corev1.SecurityContext{ReadOnlyRootFilesystem: &d.ReadOnlyRootFilesystem, AllowPrivilegeEscalation: &no},
					}},
					TerminationGracePeriodSeconds: &grace,
					RestartPolicy:                 corev1.RestartPolicyAlways,
					DNSPolicy:                     corev1.DNSClusterFirst,
					EnableServiceLinks:            &no,
				},
			},
		},
	}
}

// netesFixture is a CE gateway emulation (faas-netes behind the OpenFaaS
// gateway) over namespace ns of a real cluster, in which the test plays
// faas-netes' part by creating the Deployments.
type netesFixture struct {
	cs  kubernetes.Interface
	ns  string
	srv *openfaastest.Server
	c   *Client // with ScaleDeployments
}

func newNetesFixture(t testing.TB) *netesFixture {
	kc := nodeCluster(t)
	f := &netesFixture{cs: kc.Client(t), ns: kc.Namespace(t)}
	f.srv = openfaastest.NewServer(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Namespaces: []string{f.ns}})
	c, err := New(f.srv.URL, &Options{Namespace: f.ns, ScaleDeployments: f.cs, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

// deploy applies fn through the gateway and creates its Deployment as
// faas-netes would, returning it.
func (f *netesFixture) deploy(t testing.TB, fn preview.Function) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	if err := f.c.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	d, err := f.cs.AppsV1().Deployments(f.ns).Create(ctx, netesDeployment(f.c.deployment(fn, specHash(fn))), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *netesFixture) replicas(t *testing.T, name string) int32 {
	t.Helper()
	s, err := f.cs.AppsV1().Deployments(f.ns).GetScale(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.Replicas
}

func (f *netesFixture) available(t testing.TB, name string) int32 {
	t.Helper()
	d, err := f.cs.AppsV1().Deployments(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Status.AvailableReplicas
}

func helloFunction(pr int) preview.Function {
	return preview.Function{
		Name:   preview.FunctionName("hello", pr),
		Image:  helloImage,
		Env:    map[string]string{"PORT": "8080"},
		Labels: preview.OwnerLabels("", preview.Target{App: "hello", PR: pr, Commit: "c0ffee1"}),
	}
}

// TestScaleDeploymentsCE checks scale to zero on OpenFaaS CE through
// faas-netes' Deployment: the CE gateway alone keeps one replica; with
// ScaleDeployments, Scale(0) sets the Deployment to zero (no scale request
// reaches the gateway), Endpoint reports the function asleep so the edge
// wakes it, and Scale(1) returns only once a replica is available.
func TestScaleDeploymentsCE(t *testing.T) {
	f := newNetesFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fn := helloFunction(1)
	f.deploy(t, fn)

	gatewayOnly, err := New(f.srv.URL, &Options{Namespace: f.ns, ScaleSettle: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := gatewayOnly.ScaleExact(ctx, fn.Name, 0); n != 1 || !errors.Is(err, ErrZeroRefused) {
		t.Fatalf("ScaleExact(0) through the CE gateway = %d, %v; want 1 and ErrZeroRefused", n, err)
	}
	before := len(f.srv.Calls())

	if err := f.c.waitForScale(ctx, fn.Name, 1); err != nil {
		t.Fatal(err)
	}
	var wakes []time.Duration
	for i := 0; i < 2; i++ {
		if n, err := f.c.ScaleExact(ctx, fn.Name, 0); n != 0 || err != nil {
			t.Fatalf("ScaleExact(0) = %d, %v; want 0", n, err)
		}
		if got := f.replicas(t, fn.Name); got != 0 {
			t.Fatalf("deployment replicas after Scale(0) = %d, want 0", got)
		}
		if _, err := f.c.Endpoint(fn.Name); preview.CodeOf(err) != preview.FailedPrecondition {
			t.Fatalf("Endpoint of a function at zero = %v, want FailedPrecondition (asleep)", err)
		}
		f.waitNoPods(t, fn.Name)
		start := time.Now()
		if n, err := f.c.Scale(ctx, fn.Name, 1); n != 1 || err != nil {
			t.Fatalf("Scale(1) = %d, %v; want 1", n, err)
		}
		wakes = append(wakes, time.Since(start))
		if got := f.available(t, fn.Name); got < 1 {
			t.Fatalf("Scale(1) returned with %d available replicas, want 1", got)
		}
		if ep, err := f.c.Endpoint(fn.Name); err != nil || !strings.HasSuffix(ep, "/function/"+fn.Name+"."+f.ns) {
			t.Fatalf("Endpoint after the wake = %q, %v", ep, err)
		}
	}
	for _, call := range f.srv.Calls()[before:] {
		if strings.HasPrefix(call.Path, "/system/scale-function") {
			t.Errorf("a scale request reached the gateway: %+v", call)
		}
	}
	t.Logf("Scale(1) from zero until a replica is available (real container start), 2 runs: %v", wakes)
}

// waitNoPods waits until the function has no pod left, so that a wake
// starts a container.
func (f *netesFixture) waitNoPods(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		pods, err := f.cs.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{LabelSelector: LabelFaasFunction + "=" + name})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkWakeCE times a wake from zero of an OpenFaaS CE function
// through faas-netes' Deployment: Client.Scale(1) with ScaleDeployments,
// which returns once the Deployment reports an available replica (pod
// scheduled, container started, readiness probe passed).
// BenchmarkWakeCERaw is the cluster's own floor measured the same way in
// the same run: client-go's UpdateScale, then reading the Deployment
// every 5 ms until a replica is available. Run both together:
//
//	go test -run '^$' -bench WakeCE -benchtime 5x ./faas/openfaas/
func BenchmarkWakeCE(b *testing.B) {
	benchWakeCE(b, func(ctx context.Context, f *netesFixture, name string) error {
		_, err := f.c.Scale(ctx, name, 1)
		return err
	})
}

func BenchmarkWakeCERaw(b *testing.B) {
	benchWakeCE(b, func(ctx context.Context, f *netesFixture, name string) error {
		api := f.cs.AppsV1().Deployments(f.ns)
		_, err := api.UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
			Spec:       autoscalingv1.ScaleSpec{Replicas: 1},
		}, metav1.UpdateOptions{})
		for err == nil {
			var d *appsv1.Deployment
			if d, err = api.Get(ctx, name, metav1.GetOptions{}); err == nil && d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas > 0 {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		return err
	})
}

func benchWakeCE(b *testing.B, wake func(ctx context.Context, f *netesFixture, name string) error) {
	f := newNetesFixture(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fn := helloFunction(9)
	f.deploy(b, fn)
	if err := f.c.waitForScale(ctx, fn.Name, 1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := f.c.Scale(ctx, fn.Name, 0); err != nil {
			b.Fatal(err)
		}
		f.waitNoPods(b, fn.Name)
		b.StartTimer()
		if err := wake(ctx, f, fn.Name); err != nil {
			b.Fatal(err)
		}
	}
}

// waitForScale waits until the function's Deployment has want available
// replicas (the first start of a fresh Deployment).
func (c *Client) waitForScale(ctx context.Context, name string, want int32) error {
	for {
		d, err := c.scaler.client.AppsV1().Deployments(c.scaler.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestScaleDeploymentsRefuses checks that only a Glimpse function's
// faas-netes Deployment is scaled: one without faas_function=NAME or
// whose pod template lacks Glimpse's labels is left as it is
// (FailedPrecondition), a missing one is NotFound, and a bad
// scaleDeployments value in the URL is refused.
func TestScaleDeploymentsRefuses(t *testing.T) {
	f := newNetesFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	theirs := netesDeployment(types.FunctionDeployment{Service: "theirs", Image: helloImage})
	unlabelled := netesDeployment(f.c.deployment(helloFunction(2), ""))
	unlabelled.Name = "unlabelled"
	delete(unlabelled.Labels, LabelFaasFunction)
	for _, d := range []*appsv1.Deployment{theirs, unlabelled} {
		zero := int32(0)
		d.Spec.Replicas = &zero
		if _, err := f.cs.AppsV1().Deployments(f.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.srv.Put(types.FunctionDeployment{Service: d.Name, Image: helloImage, Namespace: f.ns})
		if _, err := f.c.Scale(ctx, d.Name, 1); preview.CodeOf(err) != preview.FailedPrecondition {
			t.Errorf("Scale of deployment %s = %v, want FailedPrecondition", d.Name, err)
		}
		if got := f.replicas(t, d.Name); got != 0 {
			t.Errorf("deployment %s scaled to %d; want it left at 0", d.Name, got)
		}
	}

	f.srv.Put(types.FunctionDeployment{Service: "ghost", Image: helloImage, Namespace: f.ns})
	if _, err := f.c.Scale(ctx, "ghost", 0); preview.CodeOf(err) != preview.NotFound {
		t.Errorf("Scale of a function without a deployment = %v, want NotFound", err)
	}

	o := &preview.OpenOptions{Getenv: func(k string) string {
		if k == "KUBECONFIG" {
			return nodeCluster(t).Kubeconfig
		}
		return ""
	}}
	if _, err := preview.Runtimes.Open(ctx, "openfaas://127.0.0.1:8080?scaleDeployments=maybe", o); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("scaleDeployments=maybe: %v, want InvalidArgument", err)
	}
	rt, err := preview.Runtimes.Open(ctx, "openfaas://127.0.0.1:8080?scaleDeployments=true", o)
	if err != nil {
		t.Fatal(err)
	}
	if s := rt.(*Client).scaler; s == nil || s.namespace != DefaultFunctionNamespace {
		t.Errorf("scaleDeployments=true without a namespace: scaler %+v, want one in %s", s, DefaultFunctionNamespace)
	}
	rt, err = preview.Runtimes.Open(ctx, "openfaas://127.0.0.1:8080", o)
	if err != nil || rt.(*Client).scaler != nil {
		t.Errorf("without scaleDeployments: %v, %v; want the gateway to scale", rt, err)
	}
}

// TestScaleDeploymentsRBAC checks that the access the README names is
// enough: get and watch on deployments, get and update on
// deployments/scale in the functions namespace. A control plane of its
// own with RBAC and no node: Scale(0) sticks; Scale(1) is accepted and,
// with no node to run the pod, ends Unavailable after the client's
// timeout (a watch it may not make would end PermissionDenied at once).
func TestScaleDeploymentsRBAC(t *testing.T) {
	for env, what := range map[string]string{kubetest.EnvEtcd: "etcd", kubetest.EnvAPIServer: "kube-apiserver"} {
		testenv.Require(t, env, what)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc, err := kubetest.Start(ctx, kubetest.Options{Authorization: "RBAC"})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Stop()
	admin := kc.Client(t)
	ns := kc.Namespace(t)
	restricted := kc.RoleClient(ctx, t, ns, "glimpse", []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
	})
	srv := openfaastest.NewServer(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Namespaces: []string{ns}})
	c, err := New(srv.URL, &Options{Namespace: ns, ScaleDeployments: restricted, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fn := helloFunction(3)
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, netesDeployment(c.deployment(fn, specHash(fn))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Scale(ctx, fn.Name, 0); n != 0 || err != nil {
		t.Fatalf("Scale(0) with the named access = %d, %v; want 0", n, err)
	}
	n, err := c.Scale(ctx, fn.Name, 1)
	if n != 1 || preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Scale(1) with no node = %d, %v; want 1 and Unavailable (no replica available)", n, err)
	}
	if _, err := c.Endpoint(fn.Name); err != nil {
		t.Errorf("Endpoint after a scale up that is still starting: %v, want the gateway (it holds the request)", err)
	}
	if _, err := restricted.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing deployments with the named access: %v, want Forbidden (the test's role is that narrow)", err)
	}
}

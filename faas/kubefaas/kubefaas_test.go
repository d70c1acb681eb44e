package kubefaas_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// One cluster with a real node (kubelet on containerd) for the package.
func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	os.Exit(code)
}

const helloImage = "glimpse.test/hello:1"

var imported struct {
	once sync.Once
	err  error
}

// cluster returns the package's cluster, with examples/hello's function
// built static and imported into the node's containerd as helloImage
// (nothing can be pulled here; a real cluster pulls from the registry).
func cluster(t *testing.T) *kubetest.Cluster { return clusterTB(t) }

func clusterTB(t testing.TB) *kubetest.Cluster {
	c := kubetest.Shared(t, kubetest.Options{Node: true})
	imported.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		dir, err := filepath.Abs("../../examples/hello/function")
		if err != nil {
			imported.err = err
			return
		}
		bin, err := kubetest.BuildStatic(ctx, dir, filepath.Join(c.Dir, "hello"), ".")
		if err != nil {
			imported.err = err
			return
		}
		imported.err = c.ImportBinary(ctx, helloImage, bin)
	})
	if imported.err != nil {
		t.Fatal(imported.err)
	}
	return c
}

func newRuntime(t *testing.T) (*kubefaas.Runtime, *kubetest.Cluster, string) {
	c := cluster(t)
	ns := c.Namespace(t)
	r, err := kubefaas.New(c.Client(t), ns, &kubefaas.Options{PullPolicy: corev1.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	return r, c, ns
}

func TestConformance(t *testing.T) {
	previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
		New: func(t *testing.T) preview.FunctionRuntime {
			r, _, _ := newRuntime(t)
			return r
		},
		Image: func(t *testing.T) string { return helloImage },
	})
}

// waitAvailable waits until the function reports want available replicas
// and returns how long that took.
func waitAvailable(t *testing.T, r *kubefaas.Runtime, name string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for {
		st, err := r.Get(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if st.AvailableReplicas == want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d available replicas after 60s, want %d", name, st.AvailableReplicas, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPodRuns checks that the function really runs in a hardened pod and
// answers on its pod IP, and that scale to zero and back works, timing
// the wakes.
func TestPodRuns(t *testing.T) {
	r, c, ns := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fn := preview.Function{
		Name:   "hello-pr-1",
		Image:  helloImage,
		Env:    map[string]string{"GLIMPSE_APP": "hello", "GLIMPSE_PR": "1"},
		Labels: preview.OwnerLabels("", preview.Target{App: "hello", PR: 1, Commit: "c0ffee1"}),
	}
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	t.Logf("first start (pod scheduled, container started, ready): %v", waitAvailable(t, r, fn.Name, 1).Round(time.Millisecond))

	cs := c.Client(t)
	// Once the Deployment controller annotated its revision, an unchanged
	// Apply writes nothing.
	before, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil || before.Annotations["deployment.kubernetes.io/revision"] == "" {
		t.Fatalf("deployment %v, %v; want the controller's revision annotation", before, err)
	}
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	after, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil || after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("unchanged Apply moved resourceVersion %s -> %s (%v); want no write", before.ResourceVersion, after.ResourceVersion, err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubefaas.LabelFunction + "=" + fn.Name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods = %v, %v; want one", pods, err)
	}
	pod := pods.Items[0]
	sc, psc := pod.Spec.Containers[0].SecurityContext, pod.Spec.SecurityContext
	if *pod.Spec.AutomountServiceAccountToken || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
		t.Errorf("pod security: %+v / %+v", psc, sc)
	}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount" {
			t.Errorf("service-account token mounted: %+v", m)
		}
	}
	if pod.Labels[preview.LabelManagedBy] != "glimpse" || pod.Labels[preview.LabelApp] != "hello" {
		t.Errorf("pod labels %v lack the ownership labels", pod.Labels)
	}
	// One request to the pod on this machine's own bridge, made by this
	// test's own node.
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(kubefaas.Port)) + "/healthz")
	if err != nil {
		t.Fatalf("GET the pod: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("GET /healthz on the pod = %d %q", resp.StatusCode, body)
	}

	var wakes []time.Duration
	for i := 0; i < 3; i++ {
		if _, err := r.Scale(ctx, fn.Name, 0); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, r, fn.Name, 0)
		for {
			p, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubefaas.LabelFunction + "=" + fn.Name})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, err := r.Scale(ctx, fn.Name, 1); err != nil || got != 1 {
			t.Fatalf("Scale(1) = %d, %v", got, err)
		}
		wakes = append(wakes, waitAvailable(t, r, fn.Name, 1))
	}
	sort.Slice(wakes, func(i, j int) bool { return wakes[i] < wakes[j] })
	t.Logf("scale 0 -> 1 until available (real container start), 3 runs: %v", wakes)
}

// TestForeignDeployment checks that objects without Glimpse's labels in
// a function's way are never changed or removed, and that a foreign
// Deployment is neither read, scaled nor removed.
func TestForeignDeployment(t *testing.T) {
	r, c, ns := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := c.Client(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "handmade"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fn := preview.Function{Name: "handmade", Image: helloImage, Labels: preview.OwnerLabels("", preview.Target{App: "x", PR: 1})}
	if err := r.Apply(ctx, fn); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Apply over a foreign service: %v, want FailedPrecondition", err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after the refused Apply: %v; want none written", err)
	}
	if err := r.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, "handmade", metav1.GetOptions{}); err != nil {
		t.Fatalf("foreign service after Remove: %v, want it kept", err)
	}

	zero := int32(0)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Labels: map[string]string{"app": "theirs"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "theirs"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "theirs"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: helloImage}}},
			},
		},
	}
	created, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	theirs := preview.Function{Name: "theirs", Image: helloImage, Labels: fn.Labels}
	if err := r.Apply(ctx, theirs); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("Apply over a foreign deployment: %v, want FailedPrecondition", err)
	}
	if _, err := r.Scale(ctx, "theirs", 1); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("Scale of a foreign deployment: %v, want FailedPrecondition", err)
	}
	if err := r.Remove(ctx, "theirs"); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("Remove of a foreign deployment: %v, want FailedPrecondition", err)
	}
	if list, err := r.List(ctx, nil); err != nil || len(list) != 0 {
		t.Errorf("List = %+v, %v; want no function", list, err)
	}
	got, err := cs.AppsV1().Deployments(ns).Get(ctx, "theirs", metav1.GetOptions{})
	// The Deployment controller writes its status; its spec (generation)
	// and labels must be as created.
	if err != nil || got.Generation != created.Generation || *got.Spec.Replicas != 0 || len(got.Labels) != 1 {
		t.Fatalf("foreign deployment after the refused calls: %+v, %v; want it unchanged", got, err)
	}
}

// TestLastError checks that a function whose container cannot start says
// why: an image the node does not have, with pulls disabled.
func TestLastError(t *testing.T) {
	r, _, _ := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fn := preview.Function{Name: "missing-pr-1", Image: "glimpse.test/missing:1", Labels: preview.OwnerLabels("", preview.Target{App: "missing", PR: 1})}
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := r.Get(ctx, fn.Name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(st.LastError, "ErrImageNeverPull") && st.AvailableReplicas == 0 {
			list, err := r.List(ctx, preview.Selector("", "missing", 1))
			if err != nil || len(list) != 1 || list[0].LastError != st.LastError {
				t.Fatalf("List = %+v, %v; want the same LastError as Get (%q)", list, err, st.LastError)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("LastError = %q after 60s, want ErrImageNeverPull", st.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

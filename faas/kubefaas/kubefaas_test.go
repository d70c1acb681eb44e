package kubefaas_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/testenv"
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

// echoImage is faas/localfaas's test function (testdata/echofn): it
// answers GET /read?path=P with P's content (403 when it cannot read it)
// and GET / with its environment, so a test sees what the pod sees.
const echoImage = "glimpse.test/echofn:1"

// cluster returns the package's cluster, with examples/hello's function
// built static and imported into the node's containerd as helloImage,
// and localfaas's echo function as echoImage (nothing can be pulled
// here; a real cluster pulls from the registry).
func cluster(t *testing.T) *kubetest.Cluster { return clusterTB(t) }

func clusterTB(t testing.TB) *kubetest.Cluster {
	c := kubetest.Shared(t, kubetest.Options{Node: true})
	c.ImportGo(t, helloImage, "../../examples/hello/function", ".")
	c.ImportGo(t, echoImage, "../localfaas", "./testdata/echofn")
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

// namespaces remembers each Runtime's namespace, for the harness.
var namespaces sync.Map // *kubefaas.Runtime -> string

func TestConformance(t *testing.T) {
	previewtest.RunFunctionRuntimeTests(t, previewtest.RuntimeHarness{
		New: func(t *testing.T) preview.FunctionRuntime {
			r, _, ns := newRuntime(t)
			namespaces.Store(r, ns)
			return r
		},
		Image: func(t *testing.T) string { return echoImage },
		Secret: func(t *testing.T, rt preview.FunctionRuntime, fn, name string) (string, bool) {
			ns, _ := namespaces.Load(rt)
			return readFile(t, cluster(t).Client(t), ns.(string), fn, preview.SecretsDir+"/"+name)
		},
		CreateSecret: func(t *testing.T, rt preview.FunctionRuntime, name, value string) {
			ns, _ := namespaces.Load(rt)
			createSecret(t, cluster(t).Client(t), ns.(string), name, value)
		},
	})
}

// createSecret stores a Secret the way faas-cli secret create does on
// faas-netes: one key, named like the Secret, and none of Glimpse's
// labels.
func createSecret(t *testing.T, cs kubernetes.Interface, ns, name, value string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{name: []byte(value)}}
	if _, err := cs.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// servingPod waits until the function's rollout is complete (every replica
// of the newest pod template available, no older pod left) and returns
// its one live pod.
func servingPod(t *testing.T, cs kubernetes.Interface, ns, fn string) corev1.Pod {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, fn, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := *d.Spec.Replicas
		st := d.Status
		if st.ObservedGeneration >= d.Generation && want == 1 && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubefaas.LabelFunction + "=" + fn})
			if err != nil {
				t.Fatal(err)
			}
			var live []corev1.Pod
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
					live = append(live, p)
				}
			}
			if len(live) == 1 {
				return live[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s/%s: rollout not complete after 90s (status %+v)", ns, fn, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readFile asks the function's serving pod (echoImage) for the file at
// path, as the function itself sees it: its content and true, or false
// when the function cannot read it.
func readFile(t *testing.T, cs kubernetes.Interface, ns, fn, path string) (string, bool) {
	t.Helper()
	pod := servingPod(t, cs, ns, fn)
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(kubefaas.Port)) + "/read?path=" + url.QueryEscape(path))
	if err != nil {
		t.Fatalf("GET the pod: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return string(b), true
	case http.StatusForbidden:
		return "", false
	}
	t.Fatalf("GET /read on the pod = %d %q", resp.StatusCode, b)
	return "", false
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

// TestSecretsDelivery checks how a function's own values are stored and
// delivered: one Secret with the ownership labels, owned by the
// Deployment, mounted read-only at /var/openfaas/secrets, only the hash
// on the pod template, never a value in the Deployment or the pod's
// environment; an unchanged Apply writes nothing, dropping the values
// deletes the Secret, Remove deletes it, and a foreign Secret of that
// name is left alone.
func TestSecretsDelivery(t *testing.T) {
	r, c, ns := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := c.Client(t)
	const value = "delivery-secret-51e2"
	fn := preview.Function{
		Name:    "sec-pr-1",
		Image:   echoImage,
		Labels:  preview.OwnerLabels("", preview.Target{App: "sec", PR: 1, Commit: "c0ffee1"}),
		Secrets: map[string]string{"sec-pr-1-token": value},
	}
	fn.Annotations = map[string]string{preview.AnnotationSecretsHash: preview.SecretsHash(fn)}
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if got, ok := readFile(t, cs, ns, fn.Name, preview.SecretsDir+"/sec-pr-1-token"); !ok || got != value {
		t.Fatalf("the function reads %q (%v), want %q", got, ok, value)
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, kubefaas.SecretName(fn.Name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Labels[preview.LabelManagedBy] != "glimpse" || sec.Labels[preview.LabelApp] != "sec" || sec.Labels[kubefaas.LabelFunction] != fn.Name {
		t.Errorf("secret labels %v lack the ownership labels", sec.Labels)
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != dep.UID {
		t.Errorf("secret owners %+v, want the deployment %s", sec.OwnerReferences, dep.UID)
	}
	js, _ := json.Marshal(dep)
	if strings.Contains(string(js), value) {
		t.Errorf("the deployment carries the secret's value: %s", js)
	}
	if got := dep.Spec.Template.Annotations[preview.AnnotationSecretsHash]; got != preview.SecretsHash(fn) {
		t.Errorf("pod template hash annotation = %q, want %q", got, preview.SecretsHash(fn))
	}
	var mounted bool
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == preview.SecretsDir {
			mounted = m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("no read-only mount at %s: %+v", preview.SecretsDir, dep.Spec.Template.Spec.Containers[0].VolumeMounts)
	}
	if env, _ := readFile(t, cs, ns, fn.Name, "/proc/self/environ"); env == "" || strings.Contains(env, value) {
		t.Errorf("the function's environment %q is unreadable or carries the secret's value", env)
	}

	// Unchanged: nothing written.
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	again, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{})
	if err != nil || again.ResourceVersion != sec.ResourceVersion {
		t.Fatalf("unchanged Apply moved the secret's resourceVersion %s -> %v (%v)", sec.ResourceVersion, again.ResourceVersion, err)
	}

	// Without values of its own the function's Secret goes.
	plain := fn
	plain.Secrets, plain.Annotations = nil, nil
	if err := r.Apply(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("secret after an Apply without secrets: %v, want it deleted", err)
	}
	if _, ok := readFile(t, cs, ns, fn.Name, preview.SecretsDir+"/sec-pr-1-token"); ok {
		t.Fatal("the function still reads its secret after an Apply without secrets")
	}

	// Remove takes the Secret with the function.
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("secret after Remove: %v, want it deleted", err)
	}

	// A Secret of that name that is not Glimpse's refuses the Apply and
	// survives Remove.
	createSecret(t, cs, ns, kubefaas.SecretName(fn.Name), "theirs")
	if err := r.Apply(ctx, fn); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Apply over a foreign secret: %v, want FailedPrecondition", err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after the refused Apply: %v; want none written", err)
	}
	if err := r.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if s, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{}); err != nil || string(s.Data[sec.Name]) != "theirs" {
		t.Fatalf("foreign secret after Remove: %v, %v; want it kept", s, err)
	}
}

// TestRemoveWithoutSecretAccess checks that credentials that may not
// touch Secrets (the in-cluster daemon's gc) still remove a function with
// secrets: Remove succeeds and leaves the Secret, owned by the Deployment,
// to the garbage collector. A control plane of its own, with RBAC (no
// controller-manager runs there, so the Secret stays for the check).
func TestRemoveWithoutSecretAccess(t *testing.T) {
	for env, what := range map[string]string{kubetest.EnvEtcd: "etcd", kubetest.EnvAPIServer: "kube-apiserver"} {
		testenv.Require(t, env, what)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := kubetest.Start(ctx, kubetest.Options{Authorization: "RBAC"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	admin := c.Client(t)
	ns := c.Namespace(t)
	gcClient := c.RoleClient(ctx, t, ns, "gc", []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "delete"}},
	})
	deployer, err := kubefaas.New(admin, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	fn := preview.Function{Name: "sec-pr-2", Image: echoImage, Labels: preview.OwnerLabels("", preview.Target{App: "sec", PR: 2}),
		Secrets: map[string]string{"sec-pr-2-token": "v"}}
	if err := deployer.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	dep, err := admin.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gcClient.CoreV1().Secrets(ns).Get(ctx, kubefaas.SecretName(fn.Name), metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reading the secret as gc: %v, want Forbidden", err)
	}
	gc, err := kubefaas.New(gcClient, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.Remove(ctx, fn.Name); err != nil {
		t.Fatalf("Remove without access to secrets: %v", err)
	}
	if _, err := admin.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after Remove: %v, want it deleted", err)
	}
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, kubefaas.SecretName(fn.Name), metav1.GetOptions{})
	if err != nil || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != dep.UID {
		t.Fatalf("secret left to the garbage collector: %+v, %v; want it owned by the deleted deployment %s", sec, err, dep.UID)
	}
}

package kubefaas_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestNetworkPolicy checks the NetworkPolicy option against the real API
// server: the policy is accepted, carries the ownership labels and an
// owner reference to the Deployment, selects the function's pods, admits
// only the daemon's pods on the function's port and lets out only DNS
// (or, with egress=internet, non-private addresses too); the pod still
// runs; an unchanged Apply writes nothing; an Apply without the option
// deletes it; Remove deletes it; a foreign policy of that name refuses
// the Apply and survives Remove. The bridge CNI here enforces no policy,
// so what traffic it stops is not checked (see the package comment).
func TestNetworkPolicy(t *testing.T) {
	c := cluster(t)
	ns := c.Namespace(t)
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fenced, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: corev1.PullNever, NetworkPolicy: &kubefaas.NetworkPolicyOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: corev1.PullNever})
	if err != nil {
		t.Fatal(err)
	}
	fn := preview.Function{Name: "np-pr-1", Image: helloImage, Labels: preview.OwnerLabels("", preview.Target{App: "np", PR: 1, Commit: "c0ffee1"})}
	if err := fenced.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, fenced, fn.Name, 1)
	api := cs.NetworkingV1().NetworkPolicies(ns)
	p, err := api.Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Labels[preview.LabelManagedBy] != "glimpse" || p.Labels[preview.LabelApp] != "np" || p.Labels[preview.LabelPR] != "1" || p.Labels[kubefaas.LabelFunction] != fn.Name {
		t.Errorf("policy labels %v lack the ownership labels", p.Labels)
	}
	if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != dep.UID || p.OwnerReferences[0].Kind != "Deployment" {
		t.Errorf("policy owners %+v, want the deployment %s", p.OwnerReferences, dep.UID)
	}
	spec := p.Spec
	if len(spec.PodSelector.MatchLabels) != 1 || spec.PodSelector.MatchLabels[kubefaas.LabelFunction] != fn.Name ||
		dep.Spec.Template.Labels[kubefaas.LabelFunction] != fn.Name {
		t.Errorf("pod selector %+v does not select the function's pods (template labels %v)", spec.PodSelector, dep.Spec.Template.Labels)
	}
	if len(spec.PolicyTypes) != 2 {
		t.Errorf("policy types %v, want Ingress and Egress", spec.PolicyTypes)
	}
	if len(spec.Ingress) != 1 || len(spec.Ingress[0].From) != 1 || len(spec.Ingress[0].Ports) != 1 {
		t.Fatalf("ingress %+v, want one rule: the daemon's pods on the function's port", spec.Ingress)
	}
	from, port := spec.Ingress[0].From[0], spec.Ingress[0].Ports[0]
	if from.PodSelector == nil || from.PodSelector.MatchLabels["app.kubernetes.io/name"] != "glimpse" ||
		from.NamespaceSelector == nil || from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "glimpse" || from.IPBlock != nil {
		t.Errorf("ingress from %+v, want the daemon's pods in namespace glimpse", from)
	}
	if port.Port == nil || port.Port.IntValue() != kubefaas.Port || port.Protocol == nil || *port.Protocol != corev1.ProtocolTCP {
		t.Errorf("ingress port %+v, want TCP %d", port, kubefaas.Port)
	}
	if len(spec.Egress) != 1 || len(spec.Egress[0].To) != 1 || spec.Egress[0].To[0].NamespaceSelector == nil ||
		spec.Egress[0].To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" || len(spec.Egress[0].Ports) != 2 {
		t.Errorf("egress %+v, want DNS to kube-system only", spec.Egress)
	}
	for _, pp := range spec.Egress[0].Ports {
		if pp.Port == nil || pp.Port.IntValue() != 53 {
			t.Errorf("egress port %+v, want 53", pp)
		}
	}

	// Unchanged: nothing written.
	if err := fenced.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if again, err := api.Get(ctx, fn.Name, metav1.GetOptions{}); err != nil || again.ResourceVersion != p.ResourceVersion {
		t.Fatalf("unchanged Apply moved the policy's resourceVersion %s -> %v (%v)", p.ResourceVersion, again.ResourceVersion, err)
	}

	// egress=internet: DNS, and everything but the private ranges and
	// the addresses excepted.
	open, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: corev1.PullNever, NetworkPolicy: &kubefaas.NetworkPolicyOptions{
		From: map[string]string{"app": "edge"}, FromNamespace: "ops", Egress: kubefaas.EgressInternet, ExceptCIDRs: []string{"203.0.113.7/32"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := open.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	p, err = api.Get(ctx, fn.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f := p.Spec.Ingress[0].From[0]; f.PodSelector.MatchLabels["app"] != "edge" || f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ops" {
		t.Errorf("ingress from %+v, want app=edge in ops", f)
	}
	if len(p.Spec.Egress) != 2 || len(p.Spec.Egress[1].To) != 2 {
		t.Fatalf("egress %+v, want DNS and the internet (IPv4 and IPv6)", p.Spec.Egress)
	}
	v4 := p.Spec.Egress[1].To[0].IPBlock
	if v4 == nil || v4.CIDR != "0.0.0.0/0" || !strings.Contains(strings.Join(v4.Except, ","), "10.0.0.0/8") ||
		!strings.Contains(strings.Join(v4.Except, ","), "169.254.0.0/16") || !strings.Contains(strings.Join(v4.Except, ","), "203.0.113.7/32") {
		t.Errorf("internet egress %+v, want 0.0.0.0/0 except the private, link-local and excepted ranges", v4)
	}

	// Without the option the policy goes; with it again it comes back,
	// and Remove takes it.
	if err := plain.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("policy after an Apply without the option: %v, want it deleted", err)
	}
	if err := fenced.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if err := plain.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("policy after Remove: %v, want it deleted", err)
	}

	// A policy of that name that is not Glimpse's refuses the Apply
	// before the Deployment is written, and survives Remove.
	theirs := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fn.Name}, Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}}}
	if _, err := api.Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fenced.Apply(ctx, fn); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Apply over a foreign policy: %v, want FailedPrecondition", err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, fn.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after the refused Apply: %v; want none written", err)
	}
	if err := plain.Remove(ctx, fn.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctx, fn.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("foreign policy after Remove: %v, want it kept", err)
	}
}

// TestResources checks that a function's resources reach its container:
// the Deployment's requests and limits, what Get reports, the memory
// limit the pod's cgroup has (as the function itself reads it), and that
// changing them rolls the pods; a bad quantity is refused before anything
// is written.
func TestResources(t *testing.T) {
	r, c, ns := newRuntime(t)
	cs := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fn := preview.Function{Name: "res-pr-1", Image: echoImage, Labels: preview.OwnerLabels("", preview.Target{App: "res", PR: 1}),
		Resources: preview.Resources{Requests: preview.ResourceList{CPU: "10m", Memory: "16Mi"}, Limits: preview.ResourceList{CPU: "0.5", Memory: "64Mi"}}}
	if err := r.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	pod := servingPod(t, cs, ns, fn.Name)
	got := pod.Spec.Containers[0].Resources
	if got.Requests.Cpu().String() != "10m" || got.Requests.Memory().String() != "16Mi" || got.Limits.Cpu().String() != "500m" || got.Limits.Memory().String() != "64Mi" {
		t.Errorf("pod resources %+v", got)
	}
	st, err := r.Get(ctx, fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	if want := (preview.Resources{Requests: preview.ResourceList{CPU: "10m", Memory: "16Mi"}, Limits: preview.ResourceList{CPU: "500m", Memory: "64Mi"}}); st.Resources != want {
		t.Errorf("Get resources %+v, want %+v", st.Resources, want)
	}
	limit, ok := readFile(t, cs, ns, fn.Name, "/sys/fs/cgroup/memory.max") // cgroup v2
	if !ok {
		limit, ok = readFile(t, cs, ns, fn.Name, "/sys/fs/cgroup/memory/memory.limit_in_bytes") // v1
	}
	if ok && strings.TrimSpace(limit) != "67108864" {
		t.Errorf("the function's cgroup memory limit is %q, want 67108864 (64Mi)", limit)
	}
	t.Logf("memory limit as the function reads it: %q (readable %v)", strings.TrimSpace(limit), ok)

	bigger := fn
	bigger.Resources.Limits.Memory = "96Mi"
	if err := r.Apply(ctx, bigger); err != nil {
		t.Fatal(err)
	}
	pod2 := servingPod(t, cs, ns, fn.Name)
	if pod2.Name == pod.Name || pod2.Spec.Containers[0].Resources.Limits.Memory().String() != "96Mi" {
		t.Errorf("after changing the memory limit: pod %s (was %s) limits %v; want a new pod with 96Mi", pod2.Name, pod.Name, pod2.Spec.Containers[0].Resources.Limits)
	}

	bad := fn
	bad.Name = "res-pr-2"
	bad.Resources.Limits.Memory = "64MB"
	if err := r.Apply(ctx, bad); preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "resources.limits.memory") {
		t.Fatalf("Apply with a bad quantity: %v, want InvalidArgument naming resources.limits.memory", err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, bad.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment after the refused Apply: %v; want none written", err)
	}
}

package kubetest_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/internal/kubetest"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// TestFakeNode starts a control plane with kwok's fake node: a
// Deployment's pods are scheduled on it and turn Ready without a kubelet,
// and its Service's EndpointSlice lists them ready.
func TestFakeNode(t *testing.T) {
	for _, env := range []string{kubetest.EnvEtcd, kubetest.EnvAPIServer, kubetest.EnvControllerManager, kubetest.EnvScheduler, kubetest.EnvKwok, kubetest.EnvKwokStages} {
		testenv.Require(t, env, "a control plane with kwok (.ci/steps/50-kubernetes.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := kubetest.Start(ctx, kubetest.Options{FakeNode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Logf("control plane and fake node %s ready in %v", c.FakeNodeName, time.Since(start).Round(time.Millisecond))
	cs := c.Client(t)
	ns := c.Namespace(t)
	labels := map[string]string{"app": "probe"}
	two := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "glimpse.test/none:1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "probe", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.ReadyReplicas == 2 && readyEndpoints(t, ctx, c, ns) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment %d of 2 ready, endpoints %d: %v", d.Status.ReadyReplicas, readyEndpoints(t, ctx, c, ns), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("2 pods Ready and in the EndpointSlice %v after the Deployment was created", time.Since(created).Round(time.Millisecond))
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != c.FakeNodeName || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s on %q, %s; want Running on %s", p.Name, p.Spec.NodeName, p.Status.Phase, c.FakeNodeName)
		}
	}
}

func readyEndpoints(t *testing.T, ctx context.Context, c *kubetest.Cluster, ns string) int {
	l, err := c.Client(t).DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=probe"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

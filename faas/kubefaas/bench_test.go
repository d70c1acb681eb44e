package kubefaas_test

import (
	"context"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/preview"
)

// BenchmarkWake times a wake from zero on the real node: Scale(1) of a
// function at zero replicas until its Service's EndpointSlice lists a
// ready endpoint (pod scheduled, container started, readiness probe
// passed). BenchmarkWakeRaw is the cluster's own floor measured the same
// way in the same run: the same Deployment scaled through client-go's
// UpdateScale directly. Run both together:
//
//	go test -run '^$' -bench Wake -benchtime 3x ./faas/kubefaas/
func BenchmarkWake(b *testing.B) {
	benchWake(b, func(ctx context.Context, r *kubefaas.Runtime, _ kubernetes.Interface, _, name string, n int) error {
		_, err := r.Scale(ctx, name, n)
		return err
	})
}

func BenchmarkWakeRaw(b *testing.B) {
	benchWake(b, func(ctx context.Context, _ *kubefaas.Runtime, cs kubernetes.Interface, ns, name string, n int) error {
		_, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       autoscalingv1.ScaleSpec{Replicas: int32(n)},
		}, metav1.UpdateOptions{})
		return err
	})
}

func benchWake(b *testing.B, scale func(ctx context.Context, r *kubefaas.Runtime, cs kubernetes.Interface, ns, name string, n int) error) {
	c := clusterTB(b)
	ns := c.Namespace(b)
	cs := c.Client(b)
	r, err := kubefaas.New(cs, ns, &kubefaas.Options{PullPolicy: "Never"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fn := preview.Function{Name: "wake", Image: helloImage, Labels: preview.OwnerLabels("", preview.Target{App: "wake", PR: 1})}
	if err := r.Apply(ctx, fn); err != nil {
		b.Fatal(err)
	}
	ready := func(want bool) {
		for {
			slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + fn.Name})
			if err != nil {
				b.Fatal(err)
			}
			got := false
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						got = true
					}
				}
			}
			if got == want {
				return
			}
			if ctx.Err() != nil {
				b.Fatalf("endpoint ready = %v, want %v: %v", got, want, ctx.Err())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ready(true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := scale(ctx, r, cs, ns, fn.Name, 0); err != nil {
			b.Fatal(err)
		}
		ready(false)
		for {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kubefaas.LabelFunction + "=" + fn.Name})
			if err != nil {
				b.Fatal(err)
			}
			if len(pods.Items) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
		if err := scale(ctx, r, cs, ns, fn.Name, 1); err != nil {
			b.Fatal(err)
		}
		ready(true)
	}
}

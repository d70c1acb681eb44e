package openfaas

import (
	"context"
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scale to zero on OpenFaaS Community Edition in a cluster.
//
// CE refuses replicas: 0 (see ErrZeroRefused), but faas-netes runs each
// function as a Deployment named like the function in the functions
// namespace, labelled faas_function=NAME, whose pod template carries the
// labels the deploy request gave (pkg/handlers/deploy.go
// makeDeploymentSpec), so Glimpse's ownership labels. With
// Options.ScaleDeployments (URL: scaleDeployments=true) Scale scales that
// Deployment itself through its scale subresource: zero sticks, since
// faas-netes keeps the replica count when it updates a function
// (pkg/handlers/update.go, unless com.openfaas.scale.min is set), and the
// edge wakes the function with Scale(1), which returns once a replica is
// available.
//
// It relies on: faas-netes' naming (Deployment NAME in the namespace the
// client deploys to, default openfaas-fn, with label faas_function=NAME),
// and RBAC that lets Glimpse's credentials get and watch deployments and
// get and update deployments/scale in that namespace. A Deployment without
// faas_function=NAME, or whose pod template lacks Glimpse's managed-by
// label, is never scaled (FailedPrecondition).

// DefaultFunctionNamespace is faas-netes' default functions namespace, the
// one Options.ScaleDeployments scales in when Options.Namespace is empty.
const DefaultFunctionNamespace = "openfaas-fn"

// LabelFaasFunction is the label faas-netes puts on a function's
// Deployment, its pod template and its Service's selector: the function's
// name.
const LabelFaasFunction = "faas_function"

// deploymentScaler scales faas-netes' Deployments (see above).
type deploymentScaler struct {
	client    kubernetes.Interface
	namespace string
}

func (s *deploymentScaler) what(name string) string {
	return fmt.Sprintf("deployment %s/%s", s.namespace, name)
}

// get reads the function's Deployment, NotFound when missing,
// FailedPrecondition when it is not a Glimpse function's faas-netes
// Deployment.
func (s *deploymentScaler) get(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := s.client.AppsV1().Deployments(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, kubeapi.Classify(ctx, err, s.what(name))
	}
	if d.Labels[LabelFaasFunction] != name {
		return nil, preview.Errorf(preview.FailedPrecondition, "%s is not faas-netes' Deployment of function %s (no label %s=%s): left alone", s.what(name), name, LabelFaasFunction, name)
	}
	if !kubeapi.Owned(d.Spec.Template.Labels) {
		return nil, kubeapi.NotOwned(s.what(name) + " (its pod template)")
	}
	return d, nil
}

// scale sets the Deployment's replicas, conditional on the version its
// ownership check read (a concurrent write makes it read and check again,
// a few times, before it answers Aborted), then, for replicas above zero,
// waits until a replica is available or wait passes (Unavailable). It
// returns the count the API server accepted.
func (s *deploymentScaler) scale(ctx context.Context, name string, replicas int, wait time.Duration) (int, error) {
	if replicas > math.MaxInt32 {
		return 0, preview.Errorf(preview.InvalidArgument, "function %s: replicas %d: too many", name, replicas)
	}
	api := s.client.AppsV1().Deployments(s.namespace)
	var got *autoscalingv1.Scale
	for attempt := 1; ; attempt++ {
		d, err := s.get(ctx, name)
		if err != nil {
			return 0, err
		}
		req := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.namespace, ResourceVersion: d.ResourceVersion},
			Spec:       autoscalingv1.ScaleSpec{Replicas: int32(replicas)},
		}
		got, err = api.UpdateScale(ctx, name, req, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		err = kubeapi.Classify(ctx, err, s.what(name)+" scale")
		if preview.CodeOf(err) == preview.Aborted && attempt < 5 {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	n := int(got.Spec.Replicas)
	if n == 0 {
		return 0, nil
	}
	return n, s.waitAvailable(ctx, name, wait)
}

// waitAvailable waits, watching the Deployment (no polling), until its
// controller has seen the latest spec and reports an available replica.
func (s *deploymentScaler) waitAvailable(ctx context.Context, name string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	api := s.client.AppsV1().Deployments(s.namespace)
	available := func(d *appsv1.Deployment) bool {
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas > 0
	}
	fail := func(err error) error {
		if ctx.Err() == context.DeadlineExceeded {
			return preview.Errorf(preview.Unavailable, "function %s: scaled up, but no replica is available after %v", name, wait)
		}
		return kubeapi.Classify(ctx, err, s.what(name))
	}
	for {
		d, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fail(err)
		}
		if available(d) {
			return nil
		}
		w, err := api.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: d.ResourceVersion})
		if err != nil {
			return fail(err)
		}
		done, err := watchUntil(w, available)
		w.Stop()
		if done || err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		// The watch ended (expired or closed by the server): read again.
	}
}

// watchUntil reads w until a Deployment event satisfies ok (true), the
// Deployment is deleted (NotFound), or the watch ends (false, nil).
func watchUntil(w watch.Interface, ok func(*appsv1.Deployment) bool) (bool, error) {
	for ev := range w.ResultChan() {
		d, isDep := ev.Object.(*appsv1.Deployment)
		switch {
		case ev.Type == watch.Deleted && isDep:
			return false, preview.Errorf(preview.NotFound, "function %s: its deployment was deleted while it woke", d.Name)
		case ev.Type == watch.Error:
			return false, nil // expired: the caller reads again
		case isDep && ok(d):
			return true, nil
		}
	}
	return false, nil
}

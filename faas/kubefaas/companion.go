package kubefaas

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// A companion is an object a function has besides its Deployment and
// Service, written before the Deployment and then owned by it: the
// Secret of its own values (secrets.go) and its NetworkPolicy
// (netpol.go). The functions here are the write, own and remove steps
// both share, over the typed client of their kind.

// companion is a typed companion object (*corev1.Secret,
// *networkingv1.NetworkPolicy).
type companion[T any] interface {
	metav1.Object
	DeepCopy() T
}

// companionAPI is the typed client calls of a companion's kind in the
// namespace (client-go's SecretInterface, NetworkPolicyInterface).
type companionAPI[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// applyCompanion creates want, or updates the object of its name to it,
// keeping the owner references, and returns the object as written. An
// object of that name that is not Glimpse's is FailedPrecondition; one
// for which same reports true is returned unwritten. set copies want's
// labels and content into a copy of the current object. A concurrent
// write is retried from a fresh read. what names the object in errors.
func applyCompanion[T companion[T]](ctx context.Context, api companionAPI[T], what string, want T, same func(cur T) bool, set func(next T)) (T, error) {
	var zero T
	for attempt := 1; ; attempt++ {
		cur, err := api.Get(ctx, want.GetName(), metav1.GetOptions{})
		var got T
		switch {
		case err == nil:
			if !kubeapi.Owned(cur.GetLabels()) {
				return zero, kubeapi.NotOwned(what)
			}
			if same(cur) {
				return cur, nil
			}
			next := cur.DeepCopy()
			set(next)
			got, err = api.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		case preview.IsNotFound(kubeapi.Classify(ctx, err, "")):
			got, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: kubeapi.FieldManager})
		}
		err = kubeapi.Classify(ctx, err, what)
		if c := preview.CodeOf(err); (c == preview.Aborted || c == preview.AlreadyExists) && attempt < maxAttempts {
			continue // a concurrent write: read again and decide again
		}
		if err != nil {
			return zero, err
		}
		return got, nil
	}
}

// ownCompanion makes dep the owner of obj, so that the garbage collector
// deletes obj with dep; an object already owned by dep is not written.
func ownCompanion[T companion[T]](ctx context.Context, api companionAPI[T], what string, obj T, dep *appsv1.Deployment) error {
	name := obj.GetName()
	for attempt := 1; ; attempt++ {
		refs, owned := ownerRefs(obj.GetOwnerReferences(), dep)
		if owned {
			return nil
		}
		next := obj.DeepCopy()
		next.SetOwnerReferences(refs)
		_, err := api.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeapi.FieldManager})
		err = kubeapi.Classify(ctx, err, what)
		if preview.CodeOf(err) != preview.Aborted || attempt >= maxAttempts {
			return err
		}
		if obj, err = api.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return kubeapi.Classify(ctx, err, what)
		}
	}
}

// removeCompanion deletes the object name if it is Glimpse's; a missing
// one is success, and so is credentials that may not read its kind (the
// in-cluster daemon's may not read Secrets): the garbage collector
// deletes it with the Deployment that owns it.
func removeCompanion[T companion[T]](ctx context.Context, api companionAPI[T], what, name string) error {
	obj, err := api.Get(ctx, name, metav1.GetOptions{})
	if err = kubeapi.Classify(ctx, err, what); preview.CodeOf(err) == preview.PermissionDenied {
		return nil
	}
	if err != nil {
		return preview.IgnoreNotFound(err)
	}
	if !kubeapi.Owned(obj.GetLabels()) {
		return nil // not ours: left alone
	}
	uid := obj.GetUID()
	err = api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	return preview.IgnoreNotFound(kubeapi.Classify(ctx, err, what))
}

package k8singress

import (
	"context"
	"encoding/json"
	"errors"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// object is an object of the API a Router writes: a typed object (an
// Ingress, an HTTPRoute, a Service) with its TypeMeta set.
type object interface {
	metav1.Object
	runtime.Object
}

// objects is what differs between the kinds a Router keeps routes in
// (networking.k8s.io/v1 Ingress, gateway.networking.k8s.io/v1 HTTPRoute):
// the typed client calls in the namespace, and how a route is rendered.
// Everything else (ownership checks, compare-and-swap, server-side apply,
// the route's annotations, the informer's bookkeeping) is Router's, once.
type objects interface {
	// kind names the objects in messages ("ingress").
	kind() string
	get(ctx context.Context, name string) (object, error)
	list(ctx context.Context, selector string) ([]object, error)
	create(ctx context.Context, obj object) (object, error)
	// patch sends one patch; with ApplyPatchType, opts carry the field
	// manager and Force.
	patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (object, error)
	delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	// render returns the object holding rt under rt.Host (with meta's
	// labels and annotations), and the auxiliary objects of the route
	// (the direct backend's second Ingress): every one of them is named
	// among auxNames(rt.Host).
	render(rt preview.Route, meta metav1.ObjectMeta) (primary object, aux []object, err error)
	// auxNames lists the names auxiliary objects of host may have, so
	// that a write or delete removes the ones the route no longer needs.
	auxNames(host string) []string
	// informer returns an informer on the objects matching selector,
	// with its start and shutdown.
	informer(selector string) (inf cache.SharedIndexInformer, start func(stop <-chan struct{}), shutdown func())
}

// applyPatch returns obj as a server-side apply body: its JSON without
// status and the server-set metadata, with resourceVersion kept when rv
// is set (the apply's precondition).
func applyPatch(obj object, rv string) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, preview.WithCode(preview.Internal, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, preview.WithCode(preview.Internal, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, k := range []string{"creationTimestamp", "uid", "managedFields", "resourceVersion", "generation"} {
			delete(md, k)
		}
		if rv != "" {
			md["resourceVersion"] = rv
		}
	}
	return json.Marshal(m)
}

// applyOptions are the options of every apply: Glimpse's field manager,
// forcing ownership of the fields it sets (they are Glimpse's; another
// manager's fields that Glimpse does not set stay as they are).
var applyOptions = metav1.PatchOptions{FieldManager: kubeapi.FieldManager, Force: ptr(true)}

func ptr[T any](v T) *T { return &v }

// applyShared server-side applies obj, one of the objects every route of
// the namespace shares (labelled as Glimpse's, but of no preview: the
// direct backend's Services and BackendTLSPolicies), through a typed
// client's Get and Patch, unless an object of its name exists that is not
// Glimpse's: that is FailedPrecondition and left alone. what names it in
// errors.
func applyShared[T metav1.Object](ctx context.Context, what string, obj object,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	patch func(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (T, error)) error {
	cur, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	switch err := kubeapi.Classify(ctx, err, what); {
	case err == nil && !kubeapi.Owned(cur.GetLabels()):
		return kubeapi.NotOwned(what)
	case err != nil && !preview.IsNotFound(err):
		return err
	}
	body, err := applyPatch(obj, "")
	if err != nil {
		return err
	}
	_, err = patch(ctx, obj.GetName(), types.ApplyPatchType, body, applyOptions)
	return kubeapi.Classify(ctx, err, what)
}

// adoptionPatch returns the merge patch that turns the field manager
// "glimpse"'s Update entries of cur's managedFields (a create, or a
// write of a release before server-side apply) into one Apply entry, so
// that a later apply removes the fields it no longer sets, conditional
// on cur's resourceVersion; nil when there is nothing to turn. (A create
// cannot be an apply: an apply creates a missing object whatever
// resourceVersion it carries, so it cannot say "only if none is stored".)
func adoptionPatch(cur metav1.Object) ([]byte, error) {
	mf := cur.GetManagedFields()
	var out []metav1.ManagedFieldsEntry
	update, apply := -1, -1
	for i, e := range mf {
		if e.Manager != kubeapi.FieldManager || e.Subresource != "" {
			out = append(out, e)
			continue
		}
		switch e.Operation {
		case metav1.ManagedFieldsOperationUpdate:
			update = i
		case metav1.ManagedFieldsOperationApply:
			apply = i
		}
	}
	if update < 0 {
		return nil, nil
	}
	if apply >= 0 {
		// Both: the apply entry is the current one; the update entry's
		// fields are dropped from it (they stay on the object).
		out = append(out, mf[apply])
	} else {
		e := mf[update]
		e.Operation = metav1.ManagedFieldsOperationApply
		out = append(out, e)
	}
	return json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": cur.GetResourceVersion(),
		"managedFields":   out,
	}})
}

// typedClient is the part of a client-go typed client in one namespace
// (NetworkingV1().Ingresses(ns), GatewayV1().HTTPRoutes(ns)) that the
// objects of a kind call; L is its list type.
type typedClient[T object, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// typedCalls gives a kind the get, list, create, patch and delete of
// objects over its typed client, once for every kind.
type typedCalls[T object, L runtime.Object] struct{ c typedClient[T, L] }

func (x typedCalls[T, L]) get(ctx context.Context, name string) (object, error) {
	return x.c.Get(ctx, name, metav1.GetOptions{})
}

func (x typedCalls[T, L]) list(ctx context.Context, sel string) ([]object, error) {
	l, err := x.c.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	items, err := apimeta.ExtractList(l)
	if err != nil {
		return nil, err
	}
	out := make([]object, 0, len(items))
	for _, it := range items {
		o, ok := it.(object)
		if !ok {
			return nil, errors.New("a listed item has no object metadata")
		}
		out = append(out, o)
	}
	return out, nil
}

func (x typedCalls[T, L]) create(ctx context.Context, obj object) (object, error) {
	t, ok := obj.(T)
	if !ok {
		return nil, errors.New("create: an object of another kind")
	}
	return x.c.Create(ctx, t, metav1.CreateOptions{FieldManager: applyOptions.FieldManager})
}

func (x typedCalls[T, L]) patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (object, error) {
	return x.c.Patch(ctx, name, pt, data, opts)
}

func (x typedCalls[T, L]) delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return x.c.Delete(ctx, name, opts)
}

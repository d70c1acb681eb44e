package k8singress

import (
	"context"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/preview"
)

// ingresses keeps routes as networking.k8s.io/v1 Ingresses.
type ingresses struct {
	client    kubernetes.Interface
	namespace string
	opts      Options
	direct    *direct
}

var ingressType = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}

func (x *ingresses) kind() string { return "ingress" }

func (x *ingresses) get(ctx context.Context, name string) (object, error) {
	return x.client.NetworkingV1().Ingresses(x.namespace).Get(ctx, name, metav1.GetOptions{})
}

func (x *ingresses) list(ctx context.Context, sel string) ([]object, error) {
	l, err := x.client.NetworkingV1().Ingresses(x.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	out := make([]object, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, nil
}

func (x *ingresses) create(ctx context.Context, obj object) (object, error) {
	return x.client.NetworkingV1().Ingresses(x.namespace).Create(ctx, obj.(*networkingv1.Ingress), metav1.CreateOptions{FieldManager: applyOptions.FieldManager})
}

func (x *ingresses) patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (object, error) {
	return x.client.NetworkingV1().Ingresses(x.namespace).Patch(ctx, name, pt, data, opts)
}

func (x *ingresses) delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return x.client.NetworkingV1().Ingresses(x.namespace).Delete(ctx, name, opts)
}

func (x *ingresses) informer(sel string) (cache.SharedIndexInformer, func(<-chan struct{}), func()) {
	f := informers.NewSharedInformerFactoryWithOptions(x.client, 0, informers.WithNamespace(x.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	return f.Networking().V1().Ingresses().Informer(), f.Start, f.Shutdown
}

func (x *ingresses) auxNames(host string) []string {
	if x.direct == nil {
		return nil
	}
	return []string{AuxPrefix + host}
}

// render returns the Ingress of rt: one rule for the host whose every
// path ("/", Prefix) goes to the edge Service; a tombstone keeps the rule
// without paths.
func (x *ingresses) render(rt preview.Route, meta metav1.ObjectMeta) (object, []object, error) {
	for k, v := range nginxAnnotations {
		meta.Annotations[k] = v
	}
	if x.direct != nil {
		if errs := validation.IsDNS1123Subdomain(AuxPrefix + rt.Host); len(errs) > 0 {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "route %s: too long for the direct backend's second ingress: %s", rt.Host, errs[0])
		}
		primary, aux := x.direct.ingresses(rt, meta, x.opts.Class)
		return primary, aux, nil
	}
	rule := networkingv1.IngressRule{Host: rt.Host}
	if !rt.Deleted {
		prefix := networkingv1.PathTypePrefix
		rule.HTTP = &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
			Path:     "/",
			PathType: &prefix,
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: x.opts.Service,
				Port: networkingv1.ServiceBackendPort{Number: int32(x.opts.Port)},
			}},
		}}}
	}
	class := x.opts.Class
	return &networkingv1.Ingress{
		TypeMeta:   ingressType,
		ObjectMeta: meta,
		Spec:       networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{rule}},
	}, nil, nil
}

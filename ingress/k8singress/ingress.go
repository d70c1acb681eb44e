package k8singress

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/glimpse-dev/glimpse/preview"
)

// ingresses keeps routes as networking.k8s.io/v1 Ingresses.
type ingresses struct {
	typedCalls[*networkingv1.Ingress, *networkingv1.IngressList]
	client    kubernetes.Interface
	namespace string
	opts      Options
	direct    *direct
}

var ingressType = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"}

func (x *ingresses) kind() string { return "ingress" }

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

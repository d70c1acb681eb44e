package kubefaas

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/glimpse-dev/glimpse/preview"
)

// NetworkPolicy, the optional fence around pull-request code.
//
// With Options.NetworkPolicy (kubefaas://NS?networkPolicy=true) every
// function gets a networking.k8s.io/v1 NetworkPolicy of its name that
// selects its pods (glimpse.dev/function=NAME), carries the function's
// ownership labels and is owned by its Deployment (so Kubernetes' garbage
// collector removes it with the Deployment; Remove deletes it itself).
// Apply writes it before the Deployment, so no pod of the function ever
// runs unfenced. The policy:
//
//   - ingress: only from the daemon's pods (NetworkPolicyOptions.From in
//     namespace FromNamespace; by default app.kubernetes.io/name=glimpse in
//     namespace glimpse, as deploy/ runs it), only to Port (TCP). Nothing
//     else in the cluster, other previews included, can connect to it.
//   - egress (Egress): EgressDNS (the default) allows DNS (UDP and TCP 53)
//     to pods in kube-system and nothing else, so the function cannot reach
//     the API server, other namespaces, other previews, the cloud's metadata
//     service or the internet; EgressInternet adds every address outside
//     the private, shared, loopback and link-local ranges (a preview that
//     calls a public API), which still excludes the cluster's pod and
//     service networks when they are private, as they usually are (a
//     managed cluster whose API server has a public address is reachable:
//     add it to ExceptCIDRs); EgressNone allows nothing, not even DNS.
//
// The kubelet's readiness probe comes from the node, which the common
// implementations admit whatever the policy says (Calico and Cilium allow
// host-to-pod traffic by default).
//
// Enforcement is the CNI plugin's: a cluster whose network plugin does
// not implement NetworkPolicy (the bridge plugin, flannel alone) accepts
// the object and enforces nothing. Calico, Cilium, Antrea and the
// managed clusters' policy engines enforce it.
//
// Without the option Apply deletes a Glimpse policy of the function's name
// left from when it was on, so switching it off takes effect on the next
// deploy. RBAC with the option: get, create, update and delete on
// networkpolicies in the namespace; without it a Forbidden read counts as
// no policy.

// Egress modes of NetworkPolicyOptions.Egress.
const (
	EgressDNS      = "dns"
	EgressInternet = "internet"
	EgressNone     = "none"
)

// DefaultDaemonNamespace and DefaultDaemonLabels are where deploy/ runs the
// daemon: the pods NetworkPolicyOptions admits by default.
const DefaultDaemonNamespace = "glimpse"

// DefaultDaemonLabels select the daemon's pods as deploy/ labels them.
func DefaultDaemonLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "glimpse"}
}

// privateCIDRs are what EgressInternet leaves out: private (RFC 1918,
// RFC 4193), shared (RFC 6598), loopback and link-local (the metadata
// service at 169.254.169.254) addresses.
var privateCIDRs = map[string][]string{
	"0.0.0.0/0": {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16"},
	"::/0":      {"fc00::/7", "fe80::/10", "::1/128"},
}

// NetworkPolicyOptions configure the NetworkPolicy of every function.
type NetworkPolicyOptions struct {
	// From are the labels of the pods allowed to connect to a function:
	// the daemon's (its edge forwards to the pods). Empty means
	// DefaultDaemonLabels.
	From map[string]string
	// FromNamespace is the namespace of the pods From selects. Empty
	// means DefaultDaemonNamespace.
	FromNamespace string
	// Egress is EgressDNS (the default when empty), EgressInternet or
	// EgressNone.
	Egress string
	// ExceptCIDRs are further destinations EgressInternet leaves out,
	// such as the API server's public address ("203.0.113.7/32").
	ExceptCIDRs []string
}

// withDefaults validates o and fills in its defaults.
func (o NetworkPolicyOptions) withDefaults() (NetworkPolicyOptions, error) {
	if len(o.From) == 0 {
		o.From = DefaultDaemonLabels()
	}
	for k, v := range o.From {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return o, preview.Errorf(preview.InvalidArgument, "network policy: daemon pod label %q: %s", k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return o, preview.Errorf(preview.InvalidArgument, "network policy: daemon pod label %s=%q: %s", k, v, errs[0])
		}
	}
	if o.FromNamespace == "" {
		o.FromNamespace = DefaultDaemonNamespace
	}
	if errs := validation.IsDNS1123Label(o.FromNamespace); len(errs) > 0 {
		return o, preview.Errorf(preview.InvalidArgument, "network policy: daemon namespace %q: %s", o.FromNamespace, errs[0])
	}
	switch o.Egress {
	case "":
		o.Egress = EgressDNS
	case EgressDNS, EgressInternet, EgressNone:
	default:
		return o, preview.Errorf(preview.InvalidArgument, "network policy: egress %q: want dns, internet or none", o.Egress)
	}
	if len(o.ExceptCIDRs) > 0 && o.Egress != EgressInternet {
		return o, preview.Errorf(preview.InvalidArgument, "network policy: except only narrows egress=internet")
	}
	for _, c := range o.ExceptCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return o, preview.Errorf(preview.InvalidArgument, "network policy: except %q is not a CIDR such as 203.0.113.7/32", c)
		}
	}
	return o, nil
}

// networkPolicyOptions reads the URL's networkPolicy, from,
// fromNamespace, egress and except parameters; nil when networkPolicy is
// not true. from is "KEY=VALUE[,KEY=VALUE...]", except a comma-separated
// list of CIDRs.
func networkPolicyOptions(q url.Values) (*NetworkPolicyOptions, error) {
	on := q.Get("networkPolicy")
	switch on {
	case "true":
	case "", "false":
		for _, k := range []string{"from", "fromNamespace", "egress", "except"} {
			if q.Has(k) {
				return nil, preview.Errorf(preview.InvalidArgument, "%s needs networkPolicy=true", k)
			}
		}
		return nil, nil
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "networkPolicy=%q: want true or false", on)
	}
	o := &NetworkPolicyOptions{FromNamespace: q.Get("fromNamespace"), Egress: q.Get("egress")}
	if f := q.Get("from"); f != "" {
		o.From = map[string]string{}
		for _, kv := range strings.Split(f, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, preview.Errorf(preview.InvalidArgument, "from=%q: want KEY=VALUE[,KEY=VALUE...], the daemon's pod labels", f)
			}
			o.From[k] = v
		}
	}
	if e := q.Get("except"); e != "" {
		o.ExceptCIDRs = strings.Split(e, ",")
	}
	return o, nil
}

// networkPolicy renders function name's NetworkPolicy under o (validated).
func networkPolicy(namespace, name string, labels map[string]string, o *NetworkPolicyOptions) *networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port, dns := intstr.FromInt32(Port), intstr.FromInt32(53)
	p := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelFunction: name}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					PodSelector:       &metav1.LabelSelector{MatchLabels: maps.Clone(o.From)},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: o.FromNamespace}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{},
		},
	}
	if o.Egress == EgressNone {
		return p
	}
	p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: metav1.NamespaceSystem}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}},
	})
	if o.Egress == EgressInternet {
		var to []networkingv1.NetworkPolicyPeer
		for _, all := range []string{"0.0.0.0/0", "::/0"} {
			except := append([]string(nil), privateCIDRs[all]...)
			for _, c := range o.ExceptCIDRs {
				if strings.Contains(c, ":") == strings.Contains(all, ":") {
					except = append(except, c)
				}
			}
			sort.Strings(except)
			to = append(to, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: all, Except: except}})
		}
		p.Spec.Egress = append(p.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: to})
	}
	return p
}

func (r *Runtime) policyWhat(name string) string {
	return fmt.Sprintf("network policy %s/%s", r.namespace, name)
}

// applyNetworkPolicy creates or updates function name's NetworkPolicy
// (r has the option) with labels, keeping its owner references, and
// returns it as written. One of that name that is not Glimpse's is
// FailedPrecondition. An unchanged policy is not written.
func (r *Runtime) applyNetworkPolicy(ctx context.Context, name string, labels map[string]string) (*networkingv1.NetworkPolicy, error) {
	want := networkPolicy(r.namespace, name, labels, r.opts.NetworkPolicy)
	return applyCompanion(ctx, r.client.NetworkingV1().NetworkPolicies(r.namespace), r.policyWhat(name), want,
		func(cur *networkingv1.NetworkPolicy) bool {
			return maps.Equal(cur.Labels, labels) && apiequality.Semantic.DeepEqual(cur.Spec, want.Spec)
		},
		func(next *networkingv1.NetworkPolicy) { next.Labels, next.Spec = labels, want.Spec })
}

// ownNetworkPolicy makes dep the owner of p, so that the garbage
// collector deletes p with dep; a policy already owned by dep is not
// written.
func (r *Runtime) ownNetworkPolicy(ctx context.Context, p *networkingv1.NetworkPolicy, dep *appsv1.Deployment) error {
	return ownCompanion(ctx, r.client.NetworkingV1().NetworkPolicies(r.namespace), r.policyWhat(p.Name), p, dep)
}

// removeNetworkPolicy deletes function name's NetworkPolicy if it is
// Glimpse's; a missing one is success, and so is credentials that may
// not read policies (the garbage collector deletes it with the
// Deployment that owns it).
func (r *Runtime) removeNetworkPolicy(ctx context.Context, name string) error {
	return removeCompanion(ctx, r.client.NetworkingV1().NetworkPolicies(r.namespace), r.policyWhat(name), name)
}

// ownerRefs returns refs with dep as the owner in place of any former
// Deployment (references to other kinds are kept), and whether dep
// already owns it (then nothing needs writing).
func ownerRefs(refs []metav1.OwnerReference, dep *appsv1.Deployment) ([]metav1.OwnerReference, bool) {
	out := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID}}
	for _, o := range refs {
		if o.UID == dep.UID {
			return refs, true
		}
		if o.Kind != "Deployment" || o.APIVersion != "apps/v1" {
			out = append(out, o) // not a former Deployment of the function: kept
		}
	}
	return out, false
}

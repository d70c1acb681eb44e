package kubefaas

import (
	"context"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/glimpse-dev/glimpse/preview"
)

// The URL's network-policy parameters: defaults, each mode, and one clear
// line for each mistake, before any client is made.
func TestNetworkPolicyURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query string
		want  *NetworkPolicyOptions // after defaults; nil: no policy
		err   string
	}{
		{query: ""},
		{query: "networkPolicy=false"},
		{query: "networkPolicy=true", want: &NetworkPolicyOptions{From: DefaultDaemonLabels(), FromNamespace: "glimpse", Egress: EgressDNS}},
		{query: "networkPolicy=true&from=app=edge,tier=front&fromNamespace=ops&egress=internet&except=203.0.113.7/32,2001:db8::/32",
			want: &NetworkPolicyOptions{From: map[string]string{"app": "edge", "tier": "front"}, FromNamespace: "ops", Egress: EgressInternet, ExceptCIDRs: []string{"203.0.113.7/32", "2001:db8::/32"}}},
		{query: "networkPolicy=true&egress=none", want: &NetworkPolicyOptions{From: DefaultDaemonLabels(), FromNamespace: "glimpse", Egress: EgressNone}},
		{query: "networkPolicy=yes", err: `networkPolicy="yes": want true or false`},
		{query: "egress=internet", err: "egress needs networkPolicy=true"},
		{query: "networkPolicy=true&egress=all", err: `egress "all": want dns, internet or none`},
		{query: "networkPolicy=true&from=glimpse", err: `from="glimpse": want KEY=VALUE`},
		{query: "networkPolicy=true&from=app=a+b", err: `daemon pod label app="a b"`},
		{query: "networkPolicy=true&fromNamespace=Ops", err: `daemon namespace "Ops"`},
		{query: "networkPolicy=true&except=10.0.0.0/8", err: "except only narrows egress=internet"},
		{query: "networkPolicy=true&egress=internet&except=203.0.113.7", err: `except "203.0.113.7" is not a CIDR`},
		{query: "networkpolicy=true", err: "networkpolicy"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, err := preview.Runtimes.Open(context.Background(), "kubefaas://ns?"+tc.query, &preview.OpenOptions{Getenv: func(string) string { return "" }})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") || preview.CodeOf(err) != preview.InvalidArgument {
					t.Fatalf("Open = %v, want one line containing %q", err, tc.err)
				}
				return
			}
			q, _ := url.ParseQuery(tc.query)
			o, err := networkPolicyOptions(q)
			if err != nil {
				t.Fatal(err)
			}
			r, err := New(nil, "ns", &Options{NetworkPolicy: o})
			if err != nil {
				t.Fatal(err)
			}
			got := r.opts.NetworkPolicy
			if (got == nil) != (tc.want == nil) || got != nil && (got.FromNamespace != tc.want.FromNamespace || got.Egress != tc.want.Egress ||
				len(got.From) != len(tc.want.From) || strings.Join(got.ExceptCIDRs, ",") != strings.Join(tc.want.ExceptCIDRs, ",")) {
				t.Fatalf("options %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.GetFrom() {
				if got.From[k] != v {
					t.Fatalf("from %v, want %v", got.From, tc.want.From)
				}
			}
		})
	}
}

// GetFrom is o's From, nil for a nil o.
func (o *NetworkPolicyOptions) GetFrom() map[string]string {
	if o == nil {
		return nil
	}
	return o.From
}

// Every quantity preview.Resources accepts is one the API server parses
// too, and the ones it refuses the API server refuses too, or reads as
// zero or less, or they are below the least amount preview allows.
func TestQuantitiesAgree(t *testing.T) {
	t.Parallel()
	for _, q := range []string{"100m", "0.5", ".5", "1.", "2", "64Mi", "1Gi", "128M", "1e3", "1E3", "1E", "3P", "1.5e-2", "+1", "1k", "7Ei", "12345678901", "1m",
		"128MB", "half", "-1", "1 Mi", "", "Mi", "1.2.3", "0x10", "1mi", "1K", "e3", "1e", "1Gib"} {
		r := preview.Resources{Limits: preview.ResourceList{CPU: q}}
		ours := r.Validate("x")
		theirs, kerr := resource.ParseQuantity(q)
		switch {
		case q == "":
			continue
		case ours == nil && kerr != nil:
			t.Errorf("%q: preview accepts it, the API server refuses it: %v", q, kerr)
		case ours != nil && kerr == nil && theirs.Sign() > 0 && !strings.Contains(ours.Error(), "less than the least amount"):
			t.Errorf("%q: preview refuses it (%v), the API server parses it as %s", q, ours, theirs.String())
		}
	}
}

// The operator's limits are ceilings the pull request's glimpse.yaml
// cannot lift; within them its values win; a request above the limit it
// ends up with is refused in one line, before the API server sees it.
func TestResourceCeilings(t *testing.T) {
	t.Parallel()
	r := &Runtime{opts: Options{Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi"), corev1.ResourceCPU: resource.MustParse("1")},
	}}}
	fn := func(req, lim preview.ResourceList) preview.Function {
		return preview.Function{Name: "app-pr-1", Resources: preview.Resources{Requests: req, Limits: lim}}
	}
	got, err := r.resources(fn(preview.ResourceList{CPU: "100m"}, preview.ResourceList{Memory: "128Mi"}))
	if err != nil || got.Limits.Memory().String() != "128Mi" || got.Requests.Cpu().String() != "100m" || got.Limits.Cpu().String() != "1" {
		t.Fatalf("within the ceilings: %+v, %v", got, err)
	}
	for _, c := range []struct {
		f    preview.Function
		want string
	}{
		{fn(preview.ResourceList{}, preview.ResourceList{Memory: "1Gi"}), "resources.limits.memory 1Gi is above the runtime's limit of 256Mi"},
		{fn(preview.ResourceList{CPU: "2"}, preview.ResourceList{}), "resources.requests.cpu 2 is above the runtime's limit of 1"},
		{fn(preview.ResourceList{Memory: "200Mi"}, preview.ResourceList{Memory: "100Mi"}), "resources.requests.memory 200Mi is above its limit 100Mi"},
	} {
		_, err := r.resources(c.f)
		if err == nil || preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", c.f.Resources, err, c.want)
		}
	}
}

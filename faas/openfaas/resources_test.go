package openfaas

import (
	"testing"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
	"github.com/glimpse-dev/glimpse/preview"
)

// A function's resources travel as the deploy request's requests and
// limits (faas-provider's FunctionResources), are read back from a
// provider that reports them (faas-netes), and a change of them alone is
// deployed.
func TestResources(t *testing.T) {
	t.Parallel()
	srv := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true})
	c := clientFor(t, srv, nil)
	ctx := ctxT(t)
	fn := preview.Function{Name: "res-pr-1", Image: "img", Labels: preview.OwnerLabels("", preview.Target{App: "res", PR: 1}),
		Resources: preview.Resources{Requests: preview.ResourceList{CPU: "100m", Memory: "64Mi"}, Limits: preview.ResourceList{Memory: "128Mi"}}}
	if err := c.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	st, ok := srv.Status("", fn.Name)
	if !ok || st.Requests == nil || st.Requests.CPU != "100m" || st.Requests.Memory != "64Mi" || st.Limits == nil || st.Limits.Memory != "128Mi" || st.Limits.CPU != "" {
		t.Fatalf("deployed requests %+v, limits %+v", st.Requests, st.Limits)
	}
	got, err := c.Get(ctx, fn.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Resources != fn.Resources {
		t.Errorf("Get resources %+v, want %+v", got.Resources, fn.Resources)
	}
	bigger := fn
	bigger.Resources.Limits.Memory = "256Mi"
	if err := c.Apply(ctx, bigger); err != nil {
		t.Fatal(err)
	}
	if st, _ := srv.Status("", fn.Name); st.Limits == nil || st.Limits.Memory != "256Mi" {
		t.Fatalf("after a resources-only change: limits %+v, want 256Mi", st.Limits)
	}
	none := fn
	none.Name, none.Resources = "plain-pr-1", preview.Resources{}
	if err := c.Apply(ctx, none); err != nil {
		t.Fatal(err)
	}
	if st, _ := srv.Status("", none.Name); st.Limits != nil || st.Requests != nil {
		t.Fatalf("a function without resources was deployed with requests %+v, limits %+v", st.Requests, st.Limits)
	}
}

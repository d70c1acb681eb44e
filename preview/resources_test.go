package preview

import (
	"strings"
	"testing"
)

func TestResourcesValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    Resources
		want string // "" is valid
	}{
		{Resources{}, ""},
		{Resources{Requests: ResourceList{CPU: "100m", Memory: "64Mi"}, Limits: ResourceList{CPU: "500m", Memory: "128Mi"}}, ""},
		{Resources{Requests: ResourceList{CPU: "0.5", Memory: "1G"}, Limits: ResourceList{CPU: "1", Memory: "1Gi"}}, ""},
		{Resources{Limits: ResourceList{CPU: "1.5", Memory: "1e9"}}, ""},
		{Resources{Limits: ResourceList{CPU: ".5", Memory: "128974848"}}, ""},
		{Resources{Requests: ResourceList{CPU: "1m"}}, ""},
		{Resources{Limits: ResourceList{Memory: "128MB"}}, `x.limits.memory: "128MB" is not a quantity such as 64Mi or 1Gi (bytes)`},
		{Resources{Requests: ResourceList{CPU: "half"}}, `x.requests.cpu: "half" is not a quantity such as 100m or 0.5 (cores)`},
		{Resources{Requests: ResourceList{CPU: "-1"}}, `x.requests.cpu: "-1" is not a quantity`},
		{Resources{Requests: ResourceList{CPU: "0"}}, `x.requests.cpu: "0" is less than the least amount (1m)`},
		{Resources{Requests: ResourceList{CPU: "0.1m"}}, `x.requests.cpu: "0.1m" is less than the least amount (1m)`},
		{Resources{Limits: ResourceList{Memory: "1 Mi"}}, `x.limits.memory: "1 Mi" is not a quantity`},
		{Resources{Requests: ResourceList{Memory: "256Mi"}, Limits: ResourceList{Memory: "128Mi"}}, "x.requests.memory: 256Mi is more than limits.memory (128Mi)"},
		{Resources{Requests: ResourceList{CPU: "1"}, Limits: ResourceList{CPU: "999m"}}, "x.requests.cpu: 1 is more than limits.cpu (999m)"},
		{Resources{Requests: ResourceList{CPU: "1000m"}, Limits: ResourceList{CPU: "1"}}, ""},
		{Resources{Requests: ResourceList{Memory: "1Gi"}, Limits: ResourceList{Memory: "1G"}}, "x.requests.memory: 1Gi is more than limits.memory (1G)"},
	} {
		err := tc.r.Validate("x")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tc.r, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || CodeOf(err) != InvalidArgument || strings.Contains(err.Error(), "\n")):
			t.Errorf("%+v: %v, want one line InvalidArgument containing %q", tc.r, err, tc.want)
		}
	}
}

func TestResourcesString(t *testing.T) {
	t.Parallel()
	r := Resources{Requests: ResourceList{Memory: "64Mi"}, Limits: ResourceList{CPU: "500m", Memory: "128Mi"}}
	if got, want := r.String(), "requests.memory=64Mi,limits.cpu=500m,limits.memory=128Mi"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if (Resources{}).String() != "" || !(Resources{}).IsZero() || r.IsZero() {
		t.Error("the zero Resources is not empty")
	}
}

// A function's resources ride on the deployed function and in its
// annotation, so that changing them changes the function.
func TestPlanFunctionResources(t *testing.T) {
	t.Parallel()
	pl := newUpPlan("", "", Target{App: "a", PR: 1, Commit: "c0ffee1"}, 1)
	spec := &FunctionSpec{Resources: Resources{Limits: ResourceList{Memory: "128Mi"}}}
	fn := pl.function(spec, IdleSpec{}, BuildResult{Image: "img"}, nil)
	if fn.Resources != spec.Resources || fn.Annotations[AnnotationResources] != "limits.memory=128Mi" {
		t.Fatalf("function resources %+v, annotations %v", fn.Resources, fn.Annotations)
	}
	plain := pl.function(&FunctionSpec{}, IdleSpec{}, BuildResult{Image: "img"}, nil)
	if _, ok := plain.Annotations[AnnotationResources]; ok {
		t.Fatalf("annotation %s without resources", AnnotationResources)
	}
	// What a runtime reports back (annotations kept, resources not
	// reported) differs from the plan once the resources change.
	cur := fn
	cur.Resources = Resources{}
	bigger := pl.function(&FunctionSpec{Resources: Resources{Limits: ResourceList{Memory: "256Mi"}}}, IdleSpec{}, BuildResult{Image: "img"}, nil)
	if !sameFunction(cur, fn) || sameFunction(cur, bigger) || sameFunction(cur, plain) {
		t.Fatal("sameFunction does not tell the resources apart (changed, or dropped)")
	}
	if err := (Function{Name: "a-pr-1", Image: "img", Resources: Resources{Limits: ResourceList{CPU: "x"}}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "function a-pr-1: resources.limits.cpu") {
		t.Fatalf("Validate = %v", err)
	}
}

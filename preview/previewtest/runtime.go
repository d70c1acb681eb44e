package previewtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// RuntimeHarness builds the FunctionRuntime under test.
type RuntimeHarness struct {
	// New returns a runtime on a real backend.
	New func(t *testing.T) preview.FunctionRuntime
	// Image returns an image reference the runtime can run: an HTTP
	// server listening on $PORT.
	Image func(t *testing.T) string
	// ClampsZero is true for runtimes that may answer Scale(0) with 1
	// (OpenFaaS CE); the suite then accepts either, but Scale's answer
	// must still agree with Get.
	ClampsZero bool
	// NoEnvReadback is true for runtimes whose status does not report
	// the environment (faas-netes); the suite then does not check it.
	NoEnvReadback bool
	// Secret, when set, returns the secret file name as the running
	// function sees it (ok false when it has no such file): how the suite
	// checks that Function.Secrets reach their function and no other.
	// Nil skips the Secrets case.
	Secret func(t *testing.T, rt preview.FunctionRuntime, function, name string) (value string, ok bool)
	// CreateSecret, when set, stores a secret in the runtime as its users
	// do (faas-cli secret create); the Secrets case then checks
	// Function.SecretNames too.
	CreateSecret func(t *testing.T, rt preview.FunctionRuntime, name, value string)
}

// RunFunctionRuntimeTests runs the FunctionRuntime conformance suite.
func RunFunctionRuntimeTests(t *testing.T, h RuntimeHarness) {
	fn := func(app string, pr int, image string) preview.Function {
		return preview.Function{
			Name:        preview.FunctionName(app, pr),
			Image:       image,
			Env:         map[string]string{"GLIMPSE_PR": fmt.Sprint(pr)},
			Labels:      labelsFor(app, pr),
			Annotations: map[string]string{"glimpse.dev/routes": "/graphql"},
		}
	}

	t.Run("Lifecycle", func(t *testing.T) {
		rt := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		f := fn(app, 1, h.Image(t))
		t.Cleanup(func() { rt.Remove(ctxFor(t), f.Name) })
		if err := rt.Apply(ctx, f); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		st, err := rt.Get(ctx, f.Name)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if st.Name != f.Name || st.Image != f.Image || st.Replicas < 1 || st.Labels[preview.LabelApp] != app || (!h.NoEnvReadback && st.Env["GLIMPSE_PR"] != "1") {
			t.Fatalf("Get after Apply = %+v; want %+v with a replica", st, f)
		}
		if err := rt.Apply(ctx, f); err != nil {
			t.Fatalf("Apply unchanged: %v", err)
		}

		got, err := rt.Scale(ctx, f.Name, 0)
		if err != nil {
			t.Fatalf("Scale(0): %v", err)
		}
		if got != 0 && !(h.ClampsZero && got == 1) {
			t.Fatalf("Scale(0) = %d", got)
		}
		st, err = rt.Get(ctx, f.Name)
		if err != nil || st.Replicas != got {
			t.Fatalf("Get after Scale(0) = %d replicas, %v; Scale said %d", st.Replicas, err, got)
		}
		// Updating a function scaled to zero keeps it at zero.
		f.Env["EXTRA"] = "1"
		if err := rt.Apply(ctx, f); err != nil {
			t.Fatalf("Apply to a scaled-down function: %v", err)
		}
		if st, err = rt.Get(ctx, f.Name); err != nil || st.Replicas != got || (!h.NoEnvReadback && st.Env["EXTRA"] != "1") {
			t.Fatalf("after updating a scaled-down function: %+v, %v; want replicas %d and the new env", st, err, got)
		}
		if got, err := rt.Scale(ctx, f.Name, 1); err != nil || got != 1 {
			t.Fatalf("Scale(1) = %d, %v", got, err)
		}
		if st, err = rt.Get(ctx, f.Name); err != nil || st.Replicas != 1 {
			t.Fatalf("Get after Scale(1) = %+v, %v", st, err)
		}

		if err := rt.Remove(ctx, f.Name); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := rt.Remove(ctx, f.Name); err != nil {
			t.Fatalf("Remove of a removed function: %v, want success", err)
		}
		if _, err := rt.Get(ctx, f.Name); !preview.IsNotFound(err) {
			t.Fatalf("Get after Remove: %v, want NotFound", err)
		}
	})

	t.Run("NoRollBack", func(t *testing.T) {
		// Apply never replaces a newer generation; equal or newer ones
		// pass. An annotation-only change is accepted.
		rt := h.New(t)
		ctx := ctxFor(t)
		f := fn(uniqueApp(t), 1, h.Image(t))
		t.Cleanup(func() { rt.Remove(ctxFor(t), f.Name) })
		gen := func(g string) preview.Function {
			c := f
			c.Annotations = preview.Labels(f.Annotations).With(preview.AnnotationGeneration, g)
			return c
		}
		if err := rt.Apply(ctx, gen("5")); err != nil {
			t.Fatalf("Apply generation 5: %v", err)
		}
		old := gen("4")
		old.Env = map[string]string{"GLIMPSE_PR": "old"}
		err := rt.Apply(ctx, old)
		wantCode(t, err, preview.FailedPrecondition, "Apply of generation 4 over 5")
		if !errors.Is(err, preview.ErrStaleGeneration) {
			t.Fatalf("Apply of generation 4 over 5: %v, want ErrStaleGeneration", err)
		}
		st, err := rt.Get(ctx, f.Name)
		if err != nil || preview.GenerationOf(st.Annotations) != 5 || (!h.NoEnvReadback && st.Env["GLIMPSE_PR"] != "1") {
			t.Fatalf("after the refused roll-back Get = %+v, %v; want generation 5 unchanged", st, err)
		}
		for _, g := range []string{"5", "6"} {
			if err := rt.Apply(ctx, gen(g)); err != nil {
				t.Fatalf("Apply generation %s over 5: %v", g, err)
			}
		}
		if st, err := rt.Get(ctx, f.Name); err != nil || preview.GenerationOf(st.Annotations) != 6 {
			t.Fatalf("after Apply of generation 6 Get = %+v, %v", st, err)
		}
	})

	t.Run("RemoveOlder", func(t *testing.T) {
		// Optional (preview.GenerationRemover): a removal bounded by a
		// generation leaves a function of that generation or newer.
		rt := h.New(t)
		gr, ok := rt.(preview.GenerationRemover)
		if !ok {
			t.Skip("the runtime is not a preview.GenerationRemover")
		}
		ctx := ctxFor(t)
		f := fn(uniqueApp(t), 1, h.Image(t))
		f.Annotations = preview.Labels(f.Annotations).With(preview.AnnotationGeneration, "5")
		t.Cleanup(func() { rt.Remove(ctxFor(t), f.Name) })
		if err := rt.Apply(ctx, f); err != nil {
			t.Fatalf("Apply generation 5: %v", err)
		}
		for _, below := range []int64{4, 5} {
			if removed, err := gr.RemoveOlder(ctx, f.Name, below); err != nil || removed {
				t.Fatalf("RemoveOlder(below %d) of generation 5 = %v, %v; want false, nil", below, removed, err)
			}
		}
		if _, err := rt.Get(ctx, f.Name); err != nil {
			t.Fatalf("Get after refused RemoveOlder: %v, want the function", err)
		}
		if removed, err := gr.RemoveOlder(ctx, f.Name, 6); err != nil || !removed {
			t.Fatalf("RemoveOlder(below 6) of generation 5 = %v, %v; want true, nil", removed, err)
		}
		if _, err := rt.Get(ctx, f.Name); !preview.IsNotFound(err) {
			t.Fatalf("Get after RemoveOlder: %v, want NotFound", err)
		}
		if removed, err := gr.RemoveOlder(ctx, f.Name, 6); err != nil || removed {
			t.Fatalf("RemoveOlder of a missing function = %v, %v; want false, nil", removed, err)
		}
		_, err := gr.RemoveOlder(cancelled(), f.Name, 6)
		wantCancelled(t, err, "RemoveOlder")
	})

	t.Run("ListBySelector", func(t *testing.T) {
		rt := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		img := h.Image(t)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for pr := 1; pr <= 2; pr++ {
			f := fn(app, pr, img)
			t.Cleanup(func() { rt.Remove(ctxFor(t), f.Name) })
			wg.Add(1)
			go func() { defer wg.Done(); errs <- rt.Apply(ctx, f) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Apply: %v", err)
			}
		}
		all, err := rt.List(ctx, preview.Selector("conformance", app, 0))
		if err != nil || len(all) != 2 {
			t.Fatalf("List(app) = %d functions, %v; want 2", len(all), err)
		}
		one, err := rt.List(ctx, preview.Selector("conformance", app, 2))
		if err != nil || len(one) != 1 || one[0].Name != preview.FunctionName(app, 2) {
			t.Fatalf("List(app, pr 2) = %+v, %v; want PR 2's function", one, err)
		}
		none, err := rt.List(ctx, preview.Selector("conformance", uniqueApp(t), 0))
		if err != nil || len(none) != 0 {
			t.Fatalf("List(other app) = %+v, %v; want none", none, err)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		rt := h.New(t)
		ctx := ctxFor(t)
		name := preview.FunctionName(uniqueApp(t), 1)
		if _, err := rt.Get(ctx, name); !preview.IsNotFound(err) {
			t.Fatalf("Get of a missing function: %v, want NotFound", err)
		}
		if _, err := rt.Scale(ctx, name, 1); !preview.IsNotFound(err) {
			t.Fatalf("Scale of a missing function: %v, want NotFound", err)
		}
		if err := rt.Remove(ctx, name); err != nil {
			t.Fatalf("Remove of a missing function: %v, want success", err)
		}
	})

	t.Run("InvalidInput", func(t *testing.T) {
		rt := h.New(t)
		ctx := ctxFor(t)
		img := h.Image(t)
		for _, bad := range []preview.Function{
			{Name: "", Image: img},
			{Name: "Not_A_Label", Image: img},
			{Name: preview.FunctionName(uniqueApp(t), 1), Image: ""},
		} {
			wantCode(t, rt.Apply(ctx, bad), preview.InvalidArgument, fmt.Sprintf("Apply(%q, %q)", bad.Name, bad.Image))
		}
		if _, err := rt.Scale(ctx, preview.FunctionName(uniqueApp(t), 1), -1); preview.CodeOf(err) != preview.InvalidArgument {
			t.Fatalf("Scale(-1): %v, want InvalidArgument", err)
		}
	})

	t.Run("Secrets", func(t *testing.T) {
		if h.Secret == nil {
			t.Skip("the harness cannot look into a function (RuntimeHarness.Secret)")
		}
		testSecrets(t, h, fn)
	})

	t.Run("Cancelled", func(t *testing.T) {
		rt := h.New(t)
		_, err := rt.List(cancelled(), preview.Selector("conformance", "", 0))
		wantCancelled(t, err, "List")
	})
}

// testSecrets: a function sees its Secrets (and SecretNames) as files,
// another function does not, Get and List never carry a value, a changed
// value reaches the function, and bad names are refused.
func testSecrets(t *testing.T, h RuntimeHarness, fn func(app string, pr int, image string) preview.Function) {
	rt := h.New(t)
	ctx := ctxFor(t)
	app := uniqueApp(t)
	img := h.Image(t)
	a, b := fn(app, 1, img), fn(app, 2, img)
	t.Cleanup(func() { rt.Remove(ctxFor(t), a.Name); rt.Remove(ctxFor(t), b.Name) })
	name := a.Name + "-token"
	const value, newValue = "conformance-secret-7f3a", "conformance-secret-9b1c"
	withSecret := func(f preview.Function, v string) preview.Function {
		f.Secrets = map[string]string{name: v}
		f.Annotations = preview.Labels(f.Annotations).With(preview.AnnotationSecretsHash, preview.SecretsHash(f))
		return f
	}
	if err := rt.Apply(ctx, withSecret(a, value)); err != nil {
		t.Fatalf("Apply with a secret: %v", err)
	}
	if err := rt.Apply(ctx, b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, ok := h.Secret(t, rt, a.Name, name); !ok || got != value {
		t.Fatalf("function %s sees its secret as %q (found %v), want %q", a.Name, got, ok, value)
	}
	if got, ok := h.Secret(t, rt, b.Name, name); ok {
		t.Fatalf("function %s sees %s's secret (%q)", b.Name, a.Name, got)
	}
	noValues := func(what string, sts ...preview.FunctionStatus) {
		t.Helper()
		for _, st := range sts {
			js, _ := json.Marshal(st)
			if st.Secrets != nil || strings.Contains(fmt.Sprintf("%+v", st), "conformance-secret") || strings.Contains(string(js), "conformance-secret") {
				t.Fatalf("%s carries a secret's value: %+v", what, st)
			}
		}
	}
	st, err := rt.Get(ctx, a.Name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	noValues("Get", st)
	if st.Annotations[preview.AnnotationSecretsHash] != preview.SecretsHash(withSecret(a, value)) {
		t.Fatalf("Get's annotations %v lack the secrets hash", st.Annotations)
	}
	all, err := rt.List(ctx, preview.Selector("conformance", app, 0))
	if err != nil || len(all) != 2 {
		t.Fatalf("List = %d functions, %v; want 2", len(all), err)
	}
	noValues("List", all...)

	if err := rt.Apply(ctx, withSecret(a, newValue)); err != nil {
		t.Fatalf("Apply with a changed secret: %v", err)
	}
	if got, ok := h.Secret(t, rt, a.Name, name); !ok || got != newValue {
		t.Fatalf("after the secret changed, the function sees %q (found %v), want %q", got, ok, newValue)
	}

	if h.CreateSecret != nil {
		held := app + "-held"
		h.CreateSecret(t, rt, held, "held-by-the-runtime")
		b.SecretNames = []string{held}
		if err := rt.Apply(ctx, b); err != nil {
			t.Fatalf("Apply naming a secret the runtime holds: %v", err)
		}
		if got, ok := h.Secret(t, rt, b.Name, held); !ok || got != "held-by-the-runtime" {
			t.Fatalf("function %s sees the runtime's secret as %q (found %v)", b.Name, got, ok)
		}
		if got, ok := h.Secret(t, rt, a.Name, held); ok {
			t.Fatalf("function %s sees a secret it does not name (%q)", a.Name, got)
		}
		missing := fn(app, 3, img)
		missing.SecretNames = []string{app + "-missing"}
		t.Cleanup(func() { rt.Remove(ctxFor(t), missing.Name) })
		wantCode(t, rt.Apply(ctx, missing), preview.FailedPrecondition, "Apply naming a secret the runtime lacks")
	}

	bad := fn(app, 4, img)
	bad.Secrets = map[string]string{"Not/A_Name": "x"}
	wantCode(t, rt.Apply(ctx, bad), preview.InvalidArgument, "Apply with a bad secret name")
}

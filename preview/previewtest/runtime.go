package previewtest

import (
	"errors"
	"fmt"
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

	t.Run("Cancelled", func(t *testing.T) {
		rt := h.New(t)
		_, err := rt.List(cancelled(), preview.Selector("conformance", "", 0))
		wantCancelled(t, err, "List")
	})
}

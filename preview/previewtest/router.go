package previewtest

import (
	"sort"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// RouterHarness builds the Router under test.
type RouterHarness struct {
	// New returns a router on a real backend.
	New func(t *testing.T) preview.Router
	// BaseDomain is the domain hosts are made under; default "localhost".
	BaseDomain string
}

// RunRouterTests runs the Router conformance suite.
func RunRouterTests(t *testing.T, h RouterHarness) {
	base := h.BaseDomain
	if base == "" {
		base = "localhost"
	}
	route := func(app string, pr int) preview.Route {
		return preview.Route{
			Host:          preview.Host(app, pr, base),
			AssetPrefix:   preview.AssetPrefix(app, pr),
			Function:      preview.FunctionName(app, pr),
			FunctionPaths: []string{"/graphql"},
			Labels:        labelsFor(app, pr),
		}
	}

	t.Run("SetListReplaceDelete", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		for pr := 1; pr <= 2; pr++ {
			if err := r.SetRoute(ctx, route(app, pr)); err != nil {
				t.Fatalf("SetRoute: %v", err)
			}
		}
		if err := r.SetRoute(ctx, route(app, 1)); err != nil {
			t.Fatalf("SetRoute repeated: %v", err)
		}
		got, err := r.Routes(ctx, preview.Selector("conformance", app, 0))
		if err != nil {
			t.Fatal(err)
		}
		hosts := []string{}
		for _, g := range got {
			hosts = append(hosts, g.Host)
		}
		sort.Strings(hosts)
		want := []string{route(app, 1).Host, route(app, 2).Host}
		if len(hosts) != 2 || hosts[0] != want[0] || hosts[1] != want[1] {
			t.Fatalf("Routes(app) hosts = %v, want %v", hosts, want)
		}

		changed := route(app, 1)
		changed.FunctionPaths = []string{"/graphql", "/api"}
		changed.Labels = changed.Labels.With(preview.LabelCommit, "beef123")
		if err := r.SetRoute(ctx, changed); err != nil {
			t.Fatal(err)
		}
		one, err := r.Routes(ctx, preview.Selector("conformance", app, 1))
		if err != nil || len(one) != 1 {
			t.Fatalf("Routes(app, 1) = %v, %v; want one route", one, err)
		}
		g := one[0]
		if g.Function != changed.Function || g.AssetPrefix != changed.AssetPrefix || len(g.FunctionPaths) != 2 || g.Labels[preview.LabelCommit] != "beef123" {
			t.Fatalf("replaced route reads back as %+v, want %+v", g, changed)
		}

		if err := r.DeleteRoute(ctx, route(app, 1).Host); err != nil {
			t.Fatalf("DeleteRoute: %v", err)
		}
		if err := r.DeleteRoute(ctx, route(app, 1).Host); err != nil {
			t.Fatalf("DeleteRoute of a deleted host: %v, want success", err)
		}
		left, err := r.Routes(ctx, preview.Selector("conformance", app, 0))
		if err != nil || len(left) != 1 || left[0].Host != route(app, 2).Host {
			t.Fatalf("Routes after delete = %+v, %v; want only PR 2", left, err)
		}
		if err := r.DeleteRoute(ctx, route(app, 2).Host); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("InvalidRoute", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		for _, bad := range []preview.Route{
			{Host: ""},
			{Host: "bad host.localhost"},
			{Host: "ok.localhost", FunctionPaths: []string{"no-slash"}},
			{Host: "ok.localhost", FunctionPaths: []string{"/graphql"}}, // paths but no function
		} {
			wantCode(t, r.SetRoute(ctx, bad), preview.InvalidArgument, "SetRoute("+bad.Host+")")
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		r := h.New(t)
		wantCancelled(t, r.SetRoute(cancelled(), route(uniqueApp(t), 1)), "SetRoute")
	})
}

package previewtest

import (
	"context"
	"sort"
	"sync"
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

	set := func(t *testing.T, r preview.Router, rt preview.Route) preview.Route {
		t.Helper()
		stored, err := r.SetRoute(ctxFor(t), rt)
		if err != nil {
			t.Fatalf("SetRoute(%s, version %q): %v", rt.Host, rt.Version, err)
		}
		if stored.Version == "" || stored.Version == rt.Version {
			t.Fatalf("SetRoute(%s) stored version %q after %q: want a new non-empty version", rt.Host, stored.Version, rt.Version)
		}
		return stored
	}

	t.Run("SetListReplaceDelete", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		stored := map[int]preview.Route{}
		for pr := 1; pr <= 2; pr++ {
			stored[pr] = set(t, r, route(app, pr))
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
		if g, err := r.Route(ctx, route(app, 1).Host); err != nil || g.Version != stored[1].Version || g.Function != route(app, 1).Function {
			t.Fatalf("Route(%s) = %+v, %v; want the stored route with version %q", route(app, 1).Host, g, err, stored[1].Version)
		}

		changed := route(app, 1)
		changed.FunctionPaths = []string{"/graphql", "/api"}
		changed.Labels = changed.Labels.With(preview.LabelCommit, "beef123")
		changed.Generation, changed.Served = 7, 6
		changed.ClaimedCommit = "beef124"
		changed.Failure = "deploy: function process exited: exit status 3" // what a failed Up records
		changed.Version = stored[1].Version
		set(t, r, changed)
		one, err := r.Routes(ctx, preview.Selector("conformance", app, 1))
		if err != nil || len(one) != 1 {
			t.Fatalf("Routes(app, 1) = %v, %v; want one route", one, err)
		}
		g := one[0]
		if g.Function != changed.Function || g.AssetPrefix != changed.AssetPrefix || len(g.FunctionPaths) != 2 ||
			g.Labels[preview.LabelCommit] != "beef123" || g.Generation != 7 || g.Served != 6 ||
			g.ClaimedCommit != changed.ClaimedCommit || g.Failure != changed.Failure {
			t.Fatalf("replaced route reads back as %+v, want %+v", g, changed)
		}

		if err := r.DeleteRoute(ctx, route(app, 1).Host); err != nil {
			t.Fatalf("DeleteRoute: %v", err)
		}
		if err := r.DeleteRoute(ctx, route(app, 1).Host); err != nil {
			t.Fatalf("DeleteRoute of a deleted host: %v, want success", err)
		}
		if _, err := r.Route(ctx, route(app, 1).Host); !preview.IsNotFound(err) {
			t.Fatalf("Route of a deleted host: %v, want NotFound", err)
		}
		left, err := r.Routes(ctx, preview.Selector("conformance", app, 0))
		if err != nil || len(left) != 1 || left[0].Host != route(app, 2).Host {
			t.Fatalf("Routes after delete = %+v, %v; want only PR 2", left, err)
		}
		if err := r.DeleteRoute(ctx, route(app, 2).Host); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		rt := route(uniqueApp(t), 1)
		t.Cleanup(func() { r.DeleteRoute(context.Background(), rt.Host) })
		first := set(t, r, rt)
		// Create-if-absent again, and a stale version: both Aborted, nothing changed.
		_, err := r.SetRoute(ctx, rt)
		wantCode(t, err, preview.Aborted, "SetRoute with empty version over a stored route")
		stale := rt
		stale.Version = "not-the-version"
		stale.AssetPrefix = "stale/prefix"
		_, err = r.SetRoute(ctx, stale)
		wantCode(t, err, preview.Aborted, "SetRoute with a wrong version")
		if g, err := r.Route(ctx, rt.Host); err != nil || g.Version != first.Version || g.AssetPrefix != rt.AssetPrefix {
			t.Fatalf("after refused writes Route = %+v, %v; want the first route unchanged", g, err)
		}
		// A version is never repeated: after delete and re-create, the old
		// version does not match.
		if err := r.DeleteRoute(ctx, rt.Host); err != nil {
			t.Fatal(err)
		}
		again := set(t, r, rt)
		if again.Version == first.Version {
			t.Fatalf("re-created route got the deleted route's version %q", again.Version)
		}
		old := rt
		old.Version = first.Version
		_, err = r.SetRoute(ctx, old)
		wantCode(t, err, preview.Aborted, "SetRoute with the version of a deleted route")
		absent := route(uniqueApp(t), 2)
		absent.Version = "no-such-route"
		_, err = r.SetRoute(ctx, absent)
		wantCode(t, err, preview.Aborted, "SetRoute with a version for a host without a route")
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		// Many writers read the same version and try to swap it: exactly
		// one wins each round.
		r := h.New(t)
		ctx := ctxFor(t)
		rt := route(uniqueApp(t), 1)
		t.Cleanup(func() { r.DeleteRoute(context.Background(), rt.Host) })
		cur := set(t, r, rt)
		for round := 0; round < 3; round++ {
			const writers = 8
			var wg sync.WaitGroup
			wins := make(chan preview.Route, writers)
			for i := 0; i < writers; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					next := cur
					next.Generation = int64(round*writers + i + 1)
					stored, err := r.SetRoute(ctx, next)
					switch {
					case err == nil:
						wins <- stored
					case preview.CodeOf(err) != preview.Aborted:
						t.Errorf("concurrent SetRoute: %v, want success or Aborted", err)
					}
				}(i)
			}
			wg.Wait()
			close(wins)
			n := 0
			for w := range wins {
				n++
				cur = w
			}
			if n != 1 {
				t.Fatalf("round %d: %d concurrent compare-and-swaps of one version succeeded, want 1", round, n)
			}
			if g, err := r.Route(ctx, rt.Host); err != nil || g.Version != cur.Version || g.Generation != cur.Generation {
				t.Fatalf("round %d: stored %+v, %v; want the winner %+v", round, g, err, cur)
			}
		}
	})

	t.Run("Tombstone", func(t *testing.T) {
		r := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		rt := route(app, 1)
		t.Cleanup(func() { r.DeleteRoute(context.Background(), rt.Host) })
		cur := set(t, r, rt)
		ts := preview.Route{Host: rt.Host, Labels: rt.Labels, Generation: 2, Served: 1, Deleted: true, Version: cur.Version}
		set(t, r, ts)
		g, err := r.Route(ctx, rt.Host)
		if err != nil || !g.Deleted || g.Generation != 2 || g.Function != "" {
			t.Fatalf("tombstone reads back as %+v, %v", g, err)
		}
		list, err := r.Routes(ctx, preview.Selector("conformance", app, 1))
		if err != nil || len(list) != 1 || !list[0].Deleted {
			t.Fatalf("Routes lists %+v, %v; want the tombstone", list, err)
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
			_, err := r.SetRoute(ctx, bad)
			wantCode(t, err, preview.InvalidArgument, "SetRoute("+bad.Host+")")
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		r := h.New(t)
		_, err := r.SetRoute(cancelled(), route(uniqueApp(t), 1))
		wantCancelled(t, err, "SetRoute")
		_, err = r.Route(cancelled(), route(uniqueApp(t), 1).Host)
		wantCancelled(t, err, "Route")
	})
}

package preview

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestClaimGeneration(t *testing.T) {
	stored := Route{Generation: 7, Served: 6, ClaimedCommit: "aaaaaaa"}
	cases := []struct {
		name   string
		cur    Route
		exists bool
		want   int64
		force  bool
		commit string
		gen    int64
		err    string
	}{
		{"first up, automatic", Route{}, false, 0, false, "aaaaaaa", 1, ""},
		{"automatic takes the next", stored, true, 0, false, "bbbbbbb", 8, ""},
		{"explicit newer", stored, true, 12, false, "bbbbbbb", 12, ""},
		{"explicit older refused", stored, true, 5, false, "bbbbbbb", 0, "generation 5 is older than the preview's generation 7"},
		{"retake by the same commit", stored, true, 7, false, "aaaaaaa", 7, ""},
		{"retake by another commit refused", stored, true, 7, false, "bbbbbbb", 0, "generation 7 is already claimed by commit aaaaaaa"},
		{"forced older goes past", stored, true, 5, true, "bbbbbbb", 8, ""},
		{"forced newer keeps its number", stored, true, 20, true, "bbbbbbb", 20, ""},
		{"after a tombstone", Route{Generation: 9, Deleted: true}, true, 0, false, "ccccccc", 10, ""},
		{"negative", stored, true, -1, false, "aaaaaaa", 0, "must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gen, err := claimGeneration(c.cur, c.exists, c.want, c.force, c.commit)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("claimGeneration = %d, %v; want error %q", gen, err, c.err)
				}
				if c.want >= 0 && !errors.Is(err, ErrSuperseded) {
					t.Fatalf("refused claim %v is not ErrSuperseded", err)
				}
				return
			}
			if err != nil || gen != c.gen {
				t.Fatalf("claimGeneration = %d, %v; want %d", gen, err, c.gen)
			}
		})
	}
}

func TestClaimRoute(t *testing.T) {
	labels := Labels{LabelCommit: "bbbbbbb"}
	served := Route{Host: "h.localhost", AssetPrefix: "a/pr-1/3-x", Function: "a-pr-1", Generation: 3, Served: 3, Version: "v9", Labels: Labels{LabelCommit: "aaaaaaa"}}
	got := claimRoute(served, true, "h.localhost", labels, 4)
	if got.AssetPrefix != served.AssetPrefix || got.Function != served.Function || got.Served != 3 || got.Generation != 4 ||
		got.Version != "v9" || got.Labels[LabelCommit] != "aaaaaaa" || got.ClaimedCommit != "bbbbbbb" {
		t.Fatalf("claim over a served route = %+v; want it to keep serving generation 3 with generation 4 claimed by bbbbbbb", got)
	}
	ts := Route{Host: "h.localhost", Generation: 5, Served: 3, Deleted: true, Version: "v10"}
	got = claimRoute(ts, true, "h.localhost", labels, 6)
	if got.Deleted || got.Served != 0 || got.AssetPrefix != "" || got.Version != "v10" || got.Generation != 6 {
		t.Fatalf("claim over a tombstone = %+v; want an empty live route at generation 6", got)
	}
}

func TestPlanCleanup(t *testing.T) {
	gen := func(g string) Labels { return Labels{LabelGeneration: g} }
	manifests := []ManifestInfo{
		{Prefix: "a/pr-1/3-x", Labels: gen("3")}, // served
		{Prefix: "a/pr-1/2-w", Labels: gen("2")}, // older: removed
		{Prefix: "a/pr-1/5-z", Labels: gen("5")}, // the claimed generation, in progress: kept
		{Prefix: "a/pr-1/old", Labels: Labels{}}, // no generation (an earlier format): removed
		{Prefix: "a/pr-1/4-y", Labels: gen("4")}, // claimed before 5, lost: removed
	}
	fns := []FunctionStatus{
		{Function: Function{Name: "a-pr-1", Annotations: gen("3")}},
		{Function: Function{Name: "old-name", Annotations: gen("1")}},
	}
	cur := Route{AssetPrefix: "a/pr-1/3-x", Function: "a-pr-1", Generation: 5, Served: 3}
	got := planCleanup(cur, manifests, fns, "a-pr-1")
	want := cleanupPlan{Manifests: []string{"a/pr-1/2-w", "a/pr-1/4-y", "a/pr-1/old"}, Functions: []string{"old-name"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("planCleanup = %+v, want %+v", got, want)
	}
	// A static-only spec: the function goes too, unless a newer Up (of
	// the claimed generation) deployed it.
	got = planCleanup(cur, nil, fns, "")
	if !reflect.DeepEqual(got.Functions, []string{"a-pr-1", "old-name"}) {
		t.Fatalf("static-only clean-up removes %v, want both functions", got.Functions)
	}
	newer := []FunctionStatus{{Function: Function{Name: "a-pr-1", Annotations: gen("5")}}}
	if got := planCleanup(cur, nil, newer, ""); len(got.Functions) != 0 {
		t.Fatalf("clean-up removes %v, a function of the claimed generation", got.Functions)
	}
	// A tombstone: Down removes everything; the clean-up nothing.
	if got := planCleanup(Route{Deleted: true, Generation: 9}, manifests, fns, ""); len(got.Manifests)+len(got.Functions) != 0 {
		t.Fatalf("clean-up under a tombstone = %+v, want nothing", got)
	}
}

func TestUpPlanFunctionAndRoute(t *testing.T) {
	pl := newUpPlan("team", "previews.example.com", Target{App: "hello", PR: 42, Commit: "3f2c1ab9"}, 7)
	if pl.Host != "pr-42.hello.previews.example.com" || pl.Prefix != "hello/pr-42/7-3f2c1ab" || pl.FunctionName != "hello-pr-42" {
		t.Fatalf("plan = %+v", pl)
	}
	spec := &FunctionSpec{Routes: []string{"/graphql"}, Env: map[string]string{"GLIMPSE_PR": "spoofed", "X": "1"}, Labels: map[string]string{LabelOwner: "spoofed"}}
	fn := pl.function(spec, IdleSpec{After: "5m"}, BuildResult{Image: "r/hello@sha256:1", SourceHash: "s1"}, nil)
	if fn.Env["GLIMPSE_PR"] != "42" || fn.Env["X"] != "1" || fn.Labels[LabelOwner] != "team" || fn.Labels[LabelSourceHash] != "s1" ||
		GenerationOf(fn.Annotations) != 7 || fn.Annotations[AnnotationIdleAfter] != "5m" || fn.Annotations[AnnotationRoutes] != "/graphql" {
		t.Fatalf("function = %+v; Glimpse's own keys must win and carry the generation", fn)
	}
	r := pl.route(Route{Version: "v3"}, spec, pl.Prefix)
	if r.Version != "v3" || r.Generation != 7 || r.Served != 7 || r.ClaimedCommit != "3f2c1ab9" || r.Function != "hello-pr-42" || r.AssetPrefix != pl.Prefix {
		t.Fatalf("route = %+v", r)
	}
	if r := pl.route(Route{}, nil, ""); r.Function != "" || len(r.FunctionPaths) != 0 {
		t.Fatalf("static-only route names a function: %+v", r)
	}
}

package preview

import (
	"sort"
	"strconv"
	"strings"
)

// The pure half of Up: what an Up of one generation wants (the function,
// the route, the asset prefix) and what its clean-up removes, computed as
// values from what the providers reported, with no I/O. Up applies these in
// short steps; the tests check them directly.

// upPlan is what one Up of generation Generation wants to exist.
type upPlan struct {
	Target     Target
	Generation int64
	Host       string
	// Labels are the ownership labels of every resource the Up writes.
	Labels Labels
	// Prefix is where the Up publishes its asset manifest: unique to the
	// generation, so no other Up ever writes it.
	Prefix string
	// FunctionName is the function's name, set even for a static-only app
	// (whose clean-up removes a function left from an earlier spec).
	FunctionName string
}

func newUpPlan(owner, baseDomain string, t Target, gen int64) upPlan {
	return upPlan{
		Target:       t,
		Generation:   gen,
		Host:         Host(t.App, t.PR, baseDomain),
		Labels:       OwnerLabels(owner, t),
		Prefix:       AssetPrefix(t.App, t.PR) + "/" + strconv.FormatInt(gen, 10) + "-" + t.ShortCommit(),
		FunctionName: FunctionName(t.App, t.PR),
	}
}

// function is the function the plan deploys for spec, built as built,
// with the database db (nil: none) as its secrets.
func (pl upPlan) function(spec *FunctionSpec, idle IdleSpec, built BuildResult, db *DatabaseInfo) Function {
	t := pl.Target
	ours := map[string]string{
		"GLIMPSE_APP": t.App, "GLIMPSE_PR": strconv.Itoa(t.PR), "GLIMPSE_COMMIT": t.Commit,
	}
	var secrets map[string]string
	if db != nil {
		secrets = map[string]string{pl.databaseSecret(false): db.URL}
		ours[EnvDatabaseURLSecret] = pl.databaseSecret(false)
		if db.ReadOnlyURL != "" {
			secrets[pl.databaseSecret(true)] = db.ReadOnlyURL
			ours[EnvDatabaseReadOnlyURLSecret] = pl.databaseSecret(true)
		}
	}
	fn := Function{
		Name:        pl.FunctionName,
		Image:       built.Image,
		Env:         merged(spec.Env, ours),
		Secrets:     secrets,
		SecretNames: append([]string(nil), spec.Secrets...),
		Labels:      merged(spec.Labels, pl.Labels.With(LabelSourceHash, built.SourceHash)),
		Annotations: merged(spec.Annotations, map[string]string{
			AnnotationRoutes:     strings.Join(spec.Routes, ","),
			AnnotationGeneration: strconv.FormatInt(pl.Generation, 10),
		}),
	}
	fn.Resources = spec.Resources
	if r := spec.Resources.String(); r != "" {
		fn.Annotations[AnnotationResources] = r
	}
	if idle.After != "" {
		fn.Annotations[AnnotationIdleAfter] = idle.After
	}
	if idle.AlwaysOn {
		fn.Annotations[AnnotationAlwaysOn] = "true"
	}
	if h := SecretsHash(fn); h != "" {
		fn.Annotations[AnnotationSecretsHash] = h
	}
	return fn
}

// databaseSecret is the name of the secret holding the function's
// database URL (readOnly: the read-only role's): prefixed with the
// function's name, since on OpenFaaS secrets share a namespace.
func (pl upPlan) databaseSecret(readOnly bool) string {
	if readOnly {
		return pl.FunctionName + "-database-readonly-url"
	}
	return pl.FunctionName + "-database-url"
}

// route is the route that switches the host to the plan's content: the
// function (when spec has one) and the manifest at assetPrefix ("" for an
// app without static files), claimed and served by the plan's generation.
// claim is the route as the Up's claim stored it; its Version is the
// precondition.
func (pl upPlan) route(claim Route, fn *FunctionSpec, assetPrefix string) Route {
	r := Route{
		Host: pl.Host, AssetPrefix: assetPrefix, Labels: pl.Labels,
		Generation: pl.Generation, ClaimedCommit: pl.Target.Commit, Served: pl.Generation, Version: claim.Version,
	}
	if fn != nil {
		r.Function = pl.FunctionName
		r.FunctionPaths = append([]string(nil), fn.Routes...)
	}
	return r
}

// cleanupPlan is what an Up's clean-up removes.
type cleanupPlan struct {
	Manifests []string // prefixes
	Functions []string // names
}

// planCleanup decides, from the route as stored now (cur), the manifests
// and functions labelled for the preview, and the function the serving Up
// deployed (wantFn, "" for a static-only app), what is no longer needed:
//   - a manifest the route does not serve whose generation is older than
//     the route's claimed generation. Manifests of the claimed generation
//     (an Up in progress that may still route) are kept; so is every
//     manifest when the route is a tombstone (Down removes them).
//   - a function other than wantFn (the spec dropped it) older than the
//     claimed generation.
//
// It is pure: the same input gives the same plan, sorted.
func planCleanup(cur Route, manifests []ManifestInfo, fns []FunctionStatus, wantFn string) cleanupPlan {
	var pl cleanupPlan
	if cur.Deleted {
		return pl
	}
	for _, m := range manifests {
		if m.Prefix != cur.AssetPrefix && GenerationOf(m.Labels) < cur.Generation {
			pl.Manifests = append(pl.Manifests, m.Prefix)
		}
	}
	for _, f := range fns {
		if f.Name != wantFn && GenerationOf(f.Annotations) < cur.Generation {
			pl.Functions = append(pl.Functions, f.Name)
		}
	}
	sort.Strings(pl.Manifests)
	sort.Strings(pl.Functions)
	return pl
}

// sameFunction reports whether the deployed function cur already matches
// the desired fn, apart from the generation stamp. Labels and annotations
// need only be a subset of what the runtime reports (runtimes such as
// faas-netes add their own), except AnnotationResources, which must be
// equal (present on both or neither); the environment must be equal, and counts as
// unknown (so not the same) when the runtime does not report it.
func sameFunction(cur, fn Function) bool {
	want := Labels(fn.Annotations).Clone()
	delete(want, AnnotationGeneration)
	return cur.Name == fn.Name && cur.Image == fn.Image &&
		sameMap(cur.Env, fn.Env) && Labels(cur.Labels).Matches(fn.Labels) && Labels(cur.Annotations).Matches(want) &&
		cur.Annotations[AnnotationResources] == fn.Annotations[AnnotationResources]
}

// merged returns a new map with user's entries overlaid by ours (Glimpse's
// own keys win).
func merged(user, ours map[string]string) map[string]string {
	out := make(map[string]string, len(user)+len(ours))
	for k, v := range user {
		out[k] = v
	}
	for k, v := range ours {
		out[k] = v
	}
	return out
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

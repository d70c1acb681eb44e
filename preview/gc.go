package preview

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Image garbage collection: Down leaves image tags alone (an image may be
// shared by previews built from the same source), and GC removes the tags
// nothing needs any more.

// SourceTagPrefix begins the tags under which builders keep the image built
// from one source hash ("src-" and 16 hex digits). They are a build cache:
// a build whose source hash has a source tag reuses that image.
const SourceTagPrefix = "src-"

// AppLister is implemented by Registries that can list the apps that have a
// repository (through the OCI catalog). GC uses it to find the images of
// apps that no longer have any preview. Registries without a catalog answer
// Unimplemented, PermissionDenied or NotFound.
type AppLister interface {
	Apps(ctx context.Context) ([]string, error)
}

// ManifestDeleter is implemented by Registries that can delete a manifest
// by digest. On the registries measured this removes every tag naming the
// manifest too, so GC uses it only when a registry refuses tag deletes and
// every tag naming the digest is to be deleted anyway. A missing manifest is
// success; a registry refusing deletes answers Unimplemented or
// PermissionDenied.
type ManifestDeleter interface {
	DeleteManifest(ctx context.Context, app, digest string) error
}

// GCOptions configure Pipeline.GC.
type GCOptions struct {
	// Apps are examined in addition to the apps that have a live preview
	// and those the registry lists (when it implements AppLister).
	Apps []string
	// DryRun plans without deleting: tags to delete are reported with
	// GCDelete.
	DryRun bool
}

// GCAction says what GC did, or would do, with one tag.
type GCAction string

// GC actions.
const (
	// GCKeep: the tag is needed (see GCTag.Reason).
	GCKeep GCAction = "keep"
	// GCDelete: the tag is not needed; reported by a dry run and by PlanGC.
	GCDelete GCAction = "delete"
	// GCDeleted: the tag was removed.
	GCDeleted GCAction = "deleted"
	// GCRefused: the registry refuses deletes (Unimplemented or
	// PermissionDenied); the tag stays and GC does not fail.
	GCRefused GCAction = "refused"
	// GCFailed: looking the tag up or deleting it failed; GC returns an error.
	GCFailed GCAction = "failed"
)

// GCTag is the decision about one tag of an app's repository.
type GCTag struct {
	App    string   `json:"app"`
	Tag    string   `json:"tag"`
	Digest string   `json:"digest,omitempty"`
	Action GCAction `json:"action"`
	Reason string   `json:"reason"`
}

// GCReport is the result of Pipeline.GC.
type GCReport struct {
	// Apps are the apps examined, sorted.
	Apps []string `json:"apps"`
	// Tags are the decisions, sorted by app and tag.
	Tags []GCTag `json:"tags"`
	// Warnings say what GC could not look at (a registry without a
	// catalog, say) without failing.
	Warnings []string `json:"warnings,omitempty"`
	// Databases are the databases of previews that are gone, which GC
	// dropped (or, in a dry run, would drop); Pipeline.Database only.
	Databases []DatabaseStatus `json:"databases,omitempty"`
	// Blobs is what asset blob collection did, when the caller ran it
	// (glimpse gc does when the asset store is a BlobCollector); Pipeline.GC
	// leaves it nil.
	Blobs *BlobCollectStats `json:"blobs,omitempty"`
}

// Count returns how many tags got action a.
func (r GCReport) Count(a GCAction) int {
	n := 0
	for _, t := range r.Tags {
		if t.Action == a {
			n++
		}
	}
	return n
}

// GCInput is what PlanGC decides from, for one app's repository.
type GCInput struct {
	// Tags maps every tag of the repository to the manifest digest it names.
	Tags map[string]string
	// LivePRs holds the pull requests of the app that have a preview.
	LivePRs map[int]bool
	// InUse holds the manifest digests that functions run (any function,
	// any app).
	InUse map[string]bool
	// InUseTags holds tags of this repository that functions run by tag.
	InUseTags map[string]bool
}

// prOfTag returns N for a tag "pr-N-..." made by ImageTag.
func prOfTag(tag string) (int, bool) {
	rest, ok := strings.CutPrefix(tag, "pr-")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || strconv.Itoa(n) != num {
		return 0, false
	}
	return n, true
}

// PlanGC decides, for one repository, which tags garbage collection deletes.
// It does no I/O. The rules, first match wins:
//
//  1. a tag listed in InUseTags is kept: a function runs the image by that
//     tag;
//  2. "pr-N-<commit>" is kept while pull request N has a preview, and
//     deleted once it has none (deleting a tag leaves the image to the
//     other tags naming it);
//  3. any other tag that is not a source tag is kept: Glimpse did not make it;
//  4. a source tag ("src-...", the build cache) is kept when its digest is
//     in InUse or a tag kept by rules 1-3 names it, and deleted otherwise.
//
// So the tags of a live preview and the image a function runs keep a
// tag, and the build cache keeps the images of live previews (a new pull
// request with the same source reuses them) but not those of closed ones.
// The result is sorted by tag; App is left empty.
func PlanGC(in GCInput) []GCTag {
	out := make([]GCTag, 0, len(in.Tags))
	keptDigest := map[string]string{} // digest -> a kept tag naming it
	var src []GCTag
	for tag, d := range in.Tags {
		t := GCTag{Tag: tag, Digest: d, Action: GCKeep}
		n, isPR := prOfTag(tag)
		switch {
		case in.InUseTags[tag]:
			t.Reason = "a function runs the image by this tag"
		case isPR && in.LivePRs[n]:
			t.Reason = fmt.Sprintf("the preview of pull request #%d is live", n)
		case isPR:
			t.Action, t.Reason = GCDelete, fmt.Sprintf("pull request #%d has no preview", n)
		case strings.HasPrefix(tag, SourceTagPrefix):
			src = append(src, t)
			continue
		default:
			t.Reason = "not a Glimpse tag"
		}
		if t.Action == GCKeep {
			if k, ok := keptDigest[d]; !ok || tag < k {
				keptDigest[d] = tag
			}
		}
		out = append(out, t)
	}
	for _, t := range src {
		if k, ok := keptDigest[t.Digest]; ok {
			t.Reason = "build cache of kept tag " + k
		} else if in.InUse[t.Digest] {
			t.Reason = "build cache of an image a function runs"
		} else {
			t.Action, t.Reason = GCDelete, "build cache of images no kept tag uses"
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// GC deletes the image tags that no preview needs, in every app's
// repository of p.Registry, following PlanGC: tags of pull requests that
// have no preview any more, and source tags (the build cache) whose image
// no kept tag has and no function runs. The image a function runs is
// never deleted: GC deletes tags, and a whole manifest only as described
// below.
//
// Previews are found through p.Router's routes and p.Runtime's functions
// carrying Glimpse's labels, of every owner (a registry may be shared);
// images in use through every function of p.Runtime. The apps examined are
// opts.Apps, the apps with a preview, and the apps the registry lists when
// it implements AppLister. GC assumes these providers see every preview
// that uses the registry.
//
// Tags are deleted one by one, which leaves the manifest for the
// registry's own collection. When the registry refuses tag deletes and
// implements ManifestDeleter, GC deletes the manifest instead, but only
// when every tag naming it is to be deleted: deleting a manifest removes
// all its tags, and one of them may be a live preview's. Refused deletes
// are reported as GCRefused and do not fail GC; other failures are reported
// as GCFailed and returned, joined, after GC has done what it could. An app
// whose tags cannot all be looked up is left alone.
//
// GC is idempotent and safe to run at any time with one caveat: an Up
// running concurrently for a pull request that has no preview yet may
// lose the tag it has just pushed (its function is deployed by digest and
// the next Up tags it again). p.Registry, p.Runtime and p.Router must be set.
//
// With p.Database, GC also drops the databases of the owner's previews
// that have neither a route (other than a tombstone) nor a function
// (CollectDatabases); a dry run only reports them. A database an Up is
// creating for a pull request that has no route yet is such an orphan
// for a moment: run GC when no first Up is in flight, or accept that
// that Up fails and its retry makes the database again.
func (p *Pipeline) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	var rep GCReport
	if p.Registry == nil || p.Runtime == nil || p.Router == nil {
		return rep, Errorf(FailedPrecondition, "gc needs a registry, a function runtime and a router")
	}
	for _, a := range opts.Apps {
		if err := ValidateDNSLabel(a); err != nil {
			return rep, Errorf(InvalidArgument, "app %q: %v", a, err)
		}
	}
	managed := Labels{LabelManagedBy: ManagedByValue}
	routes, err := p.Router.Routes(ctx, managed)
	if err != nil {
		return rep, fmt.Errorf("gc: list routes: %w", err)
	}
	fns, err := p.Runtime.List(ctx, Labels{})
	if err != nil {
		return rep, fmt.Errorf("gc: list functions: %w", err)
	}
	live := map[string]map[int]bool{}
	addLive := func(l Labels) {
		if t, ok := l.Target(); ok {
			if live[t.App] == nil {
				live[t.App] = map[int]bool{}
			}
			live[t.App][t.PR] = true
		}
	}
	for _, r := range routes {
		if !r.Deleted {
			addLive(r.Labels)
		}
	}
	inUse := map[string]bool{}
	inUseRefs := map[string]bool{}
	for _, f := range fns {
		addLive(f.Labels)
		if _, d, ok := strings.Cut(f.Image, "@"); ok {
			inUse[d] = true
		} else if f.Image != "" {
			inUseRefs[f.Image] = true
		}
	}

	apps := map[string]bool{}
	for _, a := range opts.Apps {
		apps[a] = true
	}
	for a := range live {
		apps[a] = true
	}
	if al, ok := p.Registry.(AppLister); ok {
		listed, err := al.Apps(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return rep, err
		case err != nil:
			rep.Warnings = append(rep.Warnings, "the registry does not list its repositories ("+err.Error()+"): only apps with a preview or named are examined")
		}
		for _, a := range listed {
			apps[a] = true
		}
	}
	for a := range apps {
		rep.Apps = append(rep.Apps, a)
	}
	sort.Strings(rep.Apps)

	var errs []error
	if p.Database != nil {
		dbs, err := p.gcDatabases(ctx, func(app string, pr int) bool { return live[app][pr] }, opts.DryRun)
		rep.Databases = dbs
		if err != nil {
			errs = append(errs, fmt.Errorf("gc: databases: %w", err))
		}
	}
	for _, app := range rep.Apps {
		tags, err := p.gcApp(ctx, app, live[app], inUse, inUseRefs, opts.DryRun)
		rep.Tags = append(rep.Tags, tags...)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return rep, errors.Join(errs...)
}

// gcLookups bounds the concurrent tag lookups of GC.
const gcLookups = 8

// gcApp plans and applies GC for one app's repository.
func (p *Pipeline) gcApp(ctx context.Context, app string, livePRs map[int]bool, inUse, inUseRefs map[string]bool, dryRun bool) ([]GCTag, error) {
	repo := p.Registry.Repository(app)
	tags, err := p.Registry.Tags(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("gc %s: list tags: %w", app, err)
	}
	digests := make([]string, len(tags))
	lookErr := make([]error, len(tags))
	var wg sync.WaitGroup
	sem := make(chan struct{}, gcLookups)
	for i, tag := range tags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				lookErr[i] = WithCode(CodeOf(ctx.Err()), ctx.Err())
				return
			}
			defer func() { <-sem }()
			digests[i], lookErr[i] = p.Registry.Resolve(ctx, repo+":"+tag)
		}()
	}
	wg.Wait()
	in := GCInput{Tags: map[string]string{}, LivePRs: livePRs, InUse: inUse, InUseTags: map[string]bool{}}
	var failed []GCTag
	var errs []error
	for i, tag := range tags {
		switch err := lookErr[i]; {
		case err == nil:
			in.Tags[tag] = digests[i]
		case IsNotFound(err):
			// Deleted since the listing: nothing to decide.
		default:
			failed = append(failed, GCTag{App: app, Tag: tag, Action: GCFailed, Reason: "look up: " + err.Error()})
			errs = append(errs, fmt.Errorf("gc %s: look up tag %s: %w", app, tag, err))
		}
		if inUseRefs[repo+":"+tag] {
			in.InUseTags[tag] = true
		}
	}
	if len(failed) > 0 {
		// Without every digest the sharing rules cannot be applied: leave
		// the app alone.
		return failed, errors.Join(errs...)
	}
	plan := PlanGC(in)
	for i := range plan {
		plan[i].App = app
	}
	if dryRun {
		return plan, nil
	}

	// Digests every one of whose tags is to be deleted: the only manifests
	// that may be deleted whole.
	whole := map[string]bool{}
	for _, t := range plan {
		if _, seen := whole[t.Digest]; !seen {
			whole[t.Digest] = true
		}
		if t.Action != GCDelete {
			whole[t.Digest] = false
		}
	}
	md, canDeleteManifest := p.Registry.(ManifestDeleter)
	manifestDone := map[string]GCAction{}
	for i := range plan {
		t := &plan[i]
		if t.Action != GCDelete {
			continue
		}
		if a, ok := manifestDone[t.Digest]; ok {
			t.Action = a
			switch a {
			case GCDeleted:
				t.Reason += "; deleted with its manifest (the registry refuses tag deletes)"
			case GCRefused:
				t.Reason += "; the registry refuses deletes"
			case GCFailed:
				t.Reason += "; deleting its manifest failed"
			}
			continue
		}
		err := p.Registry.DeleteTag(ctx, app, t.Tag)
		if err == nil {
			t.Action = GCDeleted
			continue
		}
		if !refused(err) {
			t.Action, t.Reason = GCFailed, t.Reason+"; delete: "+err.Error()
			errs = append(errs, fmt.Errorf("gc %s: delete tag %s: %w", app, t.Tag, err))
			continue
		}
		if !canDeleteManifest || !whole[t.Digest] || inUse[t.Digest] {
			t.Action = GCRefused
			t.Reason += "; the registry refuses tag deletes (" + err.Error() + ")"
			if canDeleteManifest {
				t.Reason += " and another tag names the same image"
			}
			continue
		}
		switch derr := md.DeleteManifest(ctx, app, t.Digest); {
		case derr == nil:
			t.Action = GCDeleted
			t.Reason += "; deleted with its manifest (the registry refuses tag deletes)"
		case refused(derr):
			t.Action, t.Reason = GCRefused, t.Reason+"; the registry refuses deletes ("+derr.Error()+")"
		default:
			t.Action, t.Reason = GCFailed, t.Reason+"; delete manifest: "+derr.Error()
			errs = append(errs, fmt.Errorf("gc %s: delete manifest %s: %w", app, t.Digest, derr))
		}
		manifestDone[t.Digest] = t.Action
	}
	return plan, errors.Join(errs...)
}

func refused(err error) bool {
	c := CodeOf(err)
	return c == Unimplemented || c == PermissionDenied
}

// gcDatabases drops (or with dryRun lists) the owner's databases whose
// preview live does not report.
func (p *Pipeline) gcDatabases(ctx context.Context, live func(app string, pr int) bool, dryRun bool) ([]DatabaseStatus, error) {
	if dryRun {
		found, err := p.Database.Databases(ctx, Selector(p.Owner, "", 0))
		if err != nil {
			return nil, err
		}
		return OrphanDatabases(found, live), nil
	}
	return CollectDatabases(ctx, p.Database, p.Owner, live)
}

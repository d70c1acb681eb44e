package preview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxClaimAttempts bounds the compare-and-swap retries of a claim (or a
// Down's tombstone) against concurrent claims of the same host.
const maxClaimAttempts = 16

// Up creates or updates the preview for req, in this order:
//  1. claim a generation on the route (compare-and-swap; see Ordering);
//  2. build and push the function image while it uploads the static files
//     (only blobs the store lacks) as a manifest under a prefix unique to
//     the generation, or reuses the served manifest when it is the same;
//  3. ensure the preview's database (Pipeline.Database, when the spec has
//     function.database) and deploy the function stamped with the
//     generation (the runtime never replaces a newer generation), its
//     database URL among its Secrets; then the DNS record;
//  4. switch the route to the new function and assets, compare-and-swap
//     on the claim, so it fails when anybody claimed since;
//  5. purge the CDN (Pipeline.CDN, when set) of the preview's host, when
//     this Up changed what it serves;
//  6. check the function is still the one deployed (re-apply if an older
//     Up overwrote it in between, while the route is still this Up's);
//  7. clean up: manifests the route no longer serves and functions the
//     spec dropped, older than the route's claimed generation.
//
// A failed purge leaves the preview live and switched: Up still cleans up
// and then returns the Preview together with the purge error (step
// "purge"), so callers must not take a non-nil error to mean nothing is
// served.
//
// Up is idempotent: with nothing changed it builds nothing, uploads nothing
// and redeploys nothing, and says so in its events. If a step fails, Up
// returns that step's error; what earlier steps created is labelled, so a
// later Up reuses or collects it and Down removes it. The route is
// switched after everything it names exists (DNS included), so visitors
// see the previous commit until then, and a Down that claims after the
// switch finds everything the Up wrote. After the switch the Up writes
// nothing while a newer Up or a Down has claimed: it never undoes a Down.
// An Up that finds a newer Up or a Down came after it returns an error
// wrapping ErrSuperseded, after removing the manifest and (when the route
// no longer needs it) the function it created; its DNS record follows the
// route.
func (p *Pipeline) Up(ctx context.Context, req UpRequest) (Preview, error) {
	spec := req.Spec
	spec.Defaults()
	t := Target{App: spec.App, PR: req.PR, Commit: req.Commit}
	if err := t.Validate(); err != nil {
		return Preview{}, err
	}
	if err := spec.Validate(req.Dir); err != nil {
		return Preview{}, err
	}
	if err := p.check(&spec); err != nil {
		return Preview{}, err
	}
	if req.Generation < 0 {
		return Preview{}, Errorf(InvalidArgument, "generation must not be negative, got %d", req.Generation)
	}
	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return Preview{}, Errorf(InvalidArgument, "app directory: %v", err)
	}
	var src, adir string
	if spec.Function != nil {
		if src, err = ResolveInside(dir, spec.Function.Source, "function.source"); err != nil {
			return Preview{}, err
		}
	}
	if spec.Assets != nil {
		if adir, err = ResolveInside(dir, spec.Assets.Dir, "assets.dir"); err != nil {
			return Preview{}, err
		}
	}

	u := &upRun{p: p, spec: &spec, verifyAssets: req.VerifyAssets}
	host := Host(t.App, t.PR, p.BaseDomain)
	if err := p.step(StepClaim, func() (string, bool, error) {
		claim, quiescent, err := p.claim(ctx, host, OwnerLabels(p.Owner, t), req.Generation, req.Force)
		if err != nil {
			return "", false, err
		}
		u.claim, u.quiescent = claim, quiescent
		u.plan = newUpPlan(p.Owner, p.BaseDomain, t, claim.Generation)
		return "generation " + strconv.FormatInt(claim.Generation, 10), false, nil
	}); err != nil {
		return Preview{}, err
	}
	pl := u.plan

	// Build and assets run concurrently; both must finish before deploy.
	// The first to fail cancels the other once its failure's event is
	// out, so a caller taking the first failed event gets the cause, not
	// the sibling's cancellation.
	var (
		wg                 sync.WaitGroup
		buildErr, assetErr error
	)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if spec.Function != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buildErr = p.step(StepBuild, func() (string, bool, error) {
				res, err := p.Builder.Build(bctx, BuildRequest{
					Target: t, SourceDir: src, Repository: p.Registry.Repository(t.App),
					Tag: ImageTag(t), Labels: pl.Labels,
					Progress: func(line string) { p.emit(Event{Step: StepBuild, State: EventLog, Message: line}) },
				})
				if err != nil {
					return "", false, err
				}
				u.built = res
				if res.Reused {
					return "source unchanged: reused " + shortDigest(res.Digest) + ", nothing built", true, nil
				}
				return "pushed " + shortDigest(res.Digest), false, nil
			})
			if buildErr != nil {
				cancel() // after the failure's event, so it comes before the sibling's cancellation
			}
		}()
	}
	if spec.Assets != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assetErr = p.step(StepAssets, func() (string, bool, error) { return u.publish(bctx, adir) })
			if assetErr != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(buildErr, assetErr); err != nil {
		err = firstReal(buildErr, assetErr)
		if !errors.Is(err, ErrSuperseded) {
			u.recordFailure(ctx, err)
		}
		return Preview{}, err
	}

	pv := Preview{App: t.App, PR: t.PR, Commit: t.Commit, Host: pl.Host, URL: p.url(pl.Host), Status: StatusReady, AssetPrefix: u.prefix}
	if spec.Function != nil && spec.Function.Database != nil {
		if err := p.step(StepDatabase, func() (string, bool, error) { return u.database(ctx, dir) }); err != nil {
			return Preview{}, u.abandon(ctx, err)
		}
	}
	if spec.Function != nil {
		fn := pl.function(spec.Function, spec.Idle, u.built, u.db)
		if err := p.step(StepDeploy, func() (string, bool, error) { return u.deploy(ctx, fn) }); err != nil {
			return Preview{}, u.abandon(ctx, err)
		}
		pv.Function, pv.Image = fn.Name, fn.Image
	}
	if p.DNS != nil {
		if err := p.step(StepDNS, func() (string, bool, error) {
			// The record follows the route (syncDNS): when a Down or a
			// newer Up claims after this sync, its own sync decides.
			if _, err := p.syncDNS(ctx, pl.Host, u.claim.Version, pl.Labels); err != nil {
				return "", false, err
			}
			return pl.Host, false, nil
		}); err != nil {
			return Preview{}, u.abandon(ctx, err)
		}
	}

	routed := pl.route(u.claim, spec.Function, u.prefix)
	routed.Labels = lifetimeLabels(routed.Labels, spec.TTL, time.Now())
	if err := p.step(StepRoute, func() (string, bool, error) {
		stored, err := p.Router.SetRoute(ctx, routed)
		if CodeOf(err) == Aborted {
			return "", false, fmt.Errorf("%w; nothing of this up was routed", ErrSuperseded)
		}
		if err != nil {
			return "", false, err
		}
		u.claim = stored
		return pl.Host, false, nil
	}); err != nil {
		return Preview{}, u.abandon(ctx, err)
	}
	// The preview is live from here on. A failed purge does not undo
	// that: Up goes on (verify, cleanup) and returns the live preview
	// together with the purge error, so the caller can report it. An Up
	// that changes nothing skips the purge, so repeating the same Up does
	// not retry a failed purge: the next change (or a purge by hand) does.
	var purgeErr error
	if p.CDN != nil {
		purgeErr = p.step(StepPurge, func() (string, bool, error) { return u.purge(ctx, pl.Host) })
	}
	if spec.Function != nil {
		replicas, err := u.verify(ctx, pl.function(spec.Function, spec.Idle, u.built, u.db))
		if err != nil {
			return Preview{}, fmt.Errorf("%s: %w", StepDeploy, err)
		}
		pv.Replicas = replicas
		if replicas == 0 {
			pv.Status = StatusSleeping
		}
	}
	if err := p.step(StepClean, func() (string, bool, error) { return u.cleanup(ctx) }); err != nil {
		return Preview{}, err
	}
	if purgeErr != nil {
		return pv, purgeErr
	}
	return pv, nil
}

// claim claims a generation for host (see Ordering): it reads the stored
// route, decides the generation and writes the claim by compare-and-swap,
// again from the read when a concurrent claim got there first. It returns
// the claim as stored, and whether the route was quiescent when claimed:
// served by the last generation claimed, so no other Up was in flight.
func (p *Pipeline) claim(ctx context.Context, host string, labels Labels, want int64, force bool) (Route, bool, error) {
	for range maxClaimAttempts {
		cur, exists, err := p.storedRoute(ctx, host)
		if err != nil {
			return Route{}, false, err
		}
		gen, err := claimGeneration(cur, exists, want, force, labels[LabelCommit])
		if err != nil {
			return Route{}, false, err
		}
		stored, err := p.Router.SetRoute(ctx, claimRoute(cur, exists, host, labels, gen))
		if CodeOf(err) == Aborted {
			continue
		}
		quiescent := exists && !cur.Deleted && cur.Served > 0 && cur.Generation == cur.Served
		return stored, quiescent, err
	}
	return Route{}, false, Errorf(Aborted, "route %s changed %d times while claiming it; try again", host, maxClaimAttempts)
}

// storedRoute reads the stored route of host; exists is false when there
// is none.
func (p *Pipeline) storedRoute(ctx context.Context, host string) (Route, bool, error) {
	r, err := p.Router.Route(ctx, host)
	if IsNotFound(err) {
		return Route{}, false, nil
	}
	if err != nil {
		return Route{}, false, fmt.Errorf("read route %s: %w", host, err)
	}
	return r, true, nil
}

// upRun is the state of one Up between its steps.
type upRun struct {
	p     *Pipeline
	spec  *Spec
	plan  upPlan
	claim Route // the route as this Up last stored it
	// quiescent: when claimed, the route was served by the last claimed
	// generation (no other Up in flight).
	quiescent bool
	built     BuildResult
	// prefix is the manifest the route will serve; published is true when
	// this Up wrote it (false when it reuses the served one).
	prefix    string
	published bool
	// paths are the manifest paths the route serves, sorted.
	paths []string
	// applied is true once this Up's function was written to the runtime.
	applied bool
	// db is the preview's database, once ensured; nil without one.
	db *DatabaseInfo
	// verifyAssets: publish with a full lookup (UpRequest.VerifyAssets).
	verifyAssets bool
}

// database ensures the preview's database (Pipeline.Database) for the
// spec's database section, stamped with the claimed generation, unless
// the claim is already lost. A database of a newer generation means a
// newer Up: ErrSuperseded. A failure leaves what Ensure left (it never
// leaves half a database); abandon drops nothing, since the database may
// be the one the route's function uses.
func (u *upRun) database(ctx context.Context, appDir string) (string, bool, error) {
	if err := u.stillClaimed(ctx); err != nil {
		return "", false, err
	}
	req, err := u.spec.Function.Database.request(appDir, u.plan.Target, u.plan.Generation, u.plan.Labels)
	if err != nil {
		return "", false, err
	}
	info, err := u.p.Database.Ensure(ctx, req)
	if errors.Is(err, ErrStaleGeneration) {
		return "", false, fmt.Errorf("%w (%v)", ErrSuperseded, err)
	}
	if err != nil {
		return "", false, err
	}
	u.db = &info
	switch {
	case info.Shared != "":
		return "read-only access to shared database " + info.Shared, false, nil
	case info.Created:
		return "created database " + info.Name, false, nil
	}
	return "database " + info.Name + " up to date", true, nil
}

// publish scans the assets and publishes them under the plan's prefix, or
// reuses the manifest the route serves when it has the same files (not
// with verifyAssets, which also looks every blob up).
func (u *upRun) publish(ctx context.Context, adir string) (string, bool, error) {
	p := u.p
	m, err := ScanAssets(adir)
	if err != nil {
		return "", false, err
	}
	for path := range m.Files {
		u.paths = append(u.paths, path)
	}
	sort.Strings(u.paths)
	if served := u.claim.AssetPrefix; served != "" && !u.claim.Deleted && !u.verifyAssets {
		if cur, err := p.Assets.Manifest(ctx, served); err == nil && cur.Equal(m) {
			u.prefix = served
			return fmt.Sprintf("%d files, unchanged: reused the served manifest, uploaded nothing", len(m.Files)), true, nil
		} else if err != nil && !IsNotFound(err) {
			return "", false, err
		}
	}
	labels := u.plan.Labels.With(LabelGeneration, strconv.FormatInt(u.plan.Generation, 10))
	open := func(path string) (io.ReadCloser, error) {
		return os.Open(filepath.Join(adir, filepath.FromSlash(strings.TrimPrefix(path, "/"))))
	}
	var st PublishStats
	if bp, ok := p.Assets.(AssetBasePublisher); ok && u.claim.AssetPrefix != "" && !u.claim.Deleted && !u.verifyAssets {
		// A redeploy looks up only the blobs the served manifest lacks.
		st, err = bp.PublishOnto(ctx, u.plan.Prefix, m, labels, open, u.claim.AssetPrefix)
	} else {
		st, err = p.Assets.Publish(ctx, u.plan.Prefix, m, labels, open)
	}
	if err != nil {
		return "", false, err
	}
	u.prefix, u.published = u.plan.Prefix, true
	if st.Uploaded == 0 {
		return fmt.Sprintf("%d files, none new: uploaded nothing", st.Files), true, nil
	}
	return fmt.Sprintf("%d files, uploaded %d new (%s), reused %d", st.Files, st.Uploaded, humanBytes(st.UploadedBytes), st.Reused), false, nil
}

// deploy applies fn unless the claim is already lost. A function that is
// already the same apart from its generation stamp gets the stamp only, and
// not even that when the claim was quiescent and the stamp is at least the
// served generation: every Up still in flight then has a generation older
// than the stamp, so the runtime refuses their Applies anyway, and the
// clean-ups and Downs that remove functions older than a generation they
// read spare it as they spare the served one (this saves a runtime write
// on an Up with nothing changed). A function with an older stamp (applied
// late by an Up that lost) gets this Up's stamp.
func (u *upRun) deploy(ctx context.Context, fn Function) (string, bool, error) {
	p := u.p
	if err := u.stillClaimed(ctx); err != nil {
		return "", false, err
	}
	cur, err := p.Runtime.Get(ctx, fn.Name)
	if err != nil && !IsNotFound(err) {
		return "", false, err
	}
	found := err == nil
	if found && sameFunction(cur.Function, fn) && (u.quiescent && GenerationOf(cur.Annotations) >= u.claim.Served || GenerationOf(cur.Annotations) == u.plan.Generation) {
		return fn.Name + " unchanged: nothing deployed", true, nil
	}
	if err := p.Runtime.Apply(ctx, fn); err != nil {
		if errors.Is(err, ErrStaleGeneration) {
			return "", false, fmt.Errorf("%w (%v)", ErrSuperseded, err)
		}
		return "", false, err
	}
	u.applied = true
	if found && sameFunction(cur.Function, fn) {
		return fn.Name + " unchanged: nothing deployed, generation recorded", true, nil
	}
	return "deployed " + fn.Name, false, nil
}

// stillClaimed fails with ErrSuperseded when the stored route is no longer
// this Up's claim.
func (u *upRun) stillClaimed(ctx context.Context) error {
	cur, exists, err := u.p.storedRoute(ctx, u.plan.Host)
	if err != nil {
		return err
	}
	if !exists || cur.Version != u.claim.Version {
		return fmt.Errorf("%w; nothing of this up was deployed or routed", ErrSuperseded)
	}
	return nil
}

// verify runs after the route switch: an older Up whose Apply was in
// flight when this one deployed may have replaced the function in between
// on a runtime that cannot make Apply conditional; re-apply then. But only
// while the route is still this Up's switch: once a Down or a newer Up has
// claimed, the function is theirs to keep or remove (re-applying would
// bring it back after a Down), and verify fails with ErrSuperseded. A Down
// that claims while the re-apply is in flight may have listed the
// functions before it: verify then removes the function again. It returns
// the function's replicas.
func (u *upRun) verify(ctx context.Context, fn Function) (int, error) {
	p := u.p
	cur, err := p.Runtime.Get(ctx, fn.Name)
	if err == nil && sameFunction(cur.Function, fn) {
		return cur.Replicas, nil
	}
	if err != nil && !IsNotFound(err) {
		return 0, err
	}
	superseded := fmt.Errorf("%w after this up was routed", ErrSuperseded)
	if r, exists, err := p.storedRoute(ctx, u.plan.Host); err != nil {
		return 0, err
	} else if !exists || r.Version != u.claim.Version {
		return 0, superseded
	}
	if err := p.Runtime.Apply(ctx, fn); err != nil {
		if errors.Is(err, ErrStaleGeneration) {
			return 0, nil // a newer Up deployed since; its route switch decides
		}
		return 0, err
	}
	if r, exists, err := p.storedRoute(ctx, u.plan.Host); err != nil {
		return 0, err
	} else if !exists || r.Deleted {
		u.removeOwnFunction(ctx)
		return 0, superseded
	}
	if st, err := p.Runtime.Get(ctx, fn.Name); err == nil {
		return st.Replicas, nil
	}
	return 1, nil
}

// cleanup removes what the route no longer needs (see planCleanup).
func (u *upRun) cleanup(ctx context.Context) (string, bool, error) {
	p := u.p
	cur, exists, err := p.storedRoute(ctx, u.plan.Host)
	if err != nil || !exists {
		return "", err == nil, err
	}
	sel := Selector(p.Owner, u.plan.Target.App, u.plan.Target.PR)
	var ms []ManifestInfo
	if p.Assets != nil {
		if ms, err = p.Assets.List(ctx, sel); err != nil {
			return "", false, err
		}
	}
	var fns []FunctionStatus
	if p.Runtime != nil {
		if fns, err = p.Runtime.List(ctx, sel); err != nil {
			return "", false, err
		}
	}
	wantFn := ""
	if u.spec.Function != nil {
		wantFn = u.plan.FunctionName
	}
	plan := planCleanup(cur, ms, fns, wantFn)
	for _, prefix := range plan.Manifests {
		if err := p.Assets.Delete(ctx, prefix); err != nil {
			return "", false, err
		}
	}
	for _, name := range plan.Functions {
		// Unless an Up that claimed since deployed it again.
		if _, err := p.removeOlder(ctx, name, cur.Generation); err != nil {
			return "", false, err
		}
	}
	if len(plan.Manifests)+len(plan.Functions) == 0 {
		return "nothing to remove", true, nil
	}
	var parts []string
	if n := len(plan.Manifests); n > 0 {
		parts = append(parts, fmt.Sprintf("removed %d older asset manifest(s)", n))
	}
	if n := len(plan.Functions); n > 0 {
		parts = append(parts, fmt.Sprintf("removed %d function(s) the spec no longer has", n))
	}
	return strings.Join(parts, ", "), false, nil
}

// abandon is called when a step before the route switch fails. When the
// failure is ErrSuperseded it removes what this Up wrote that the winner
// will not use: its own manifest when the route does not serve it and a
// newer generation was claimed (or the route is gone); its function, when
// it is still this generation's and the route no longer names a function
// (a Down came after it, or a newer Up switched to a static-only commit).
// Its DNS record needs nothing: it follows the route (see syncDNS). Other
// failures leave everything for the next Up's clean-up, and are recorded
// on the route (recordFailure). It returns err.
func (u *upRun) abandon(ctx context.Context, err error) error {
	if !errors.Is(err, ErrSuperseded) {
		u.recordFailure(ctx, err)
		return err
	}
	p := u.p
	cur, exists, rerr := p.storedRoute(ctx, u.plan.Host)
	if rerr != nil {
		return err
	}
	// An Up that re-took this generation (the same CI run: the same
	// commit, so the same prefix) may still route the manifest; the next
	// clean-up collects it when nobody does.
	if u.published && (!exists || (cur.AssetPrefix != u.prefix && cur.Generation > u.plan.Generation)) {
		_ = p.Assets.Delete(ctx, u.prefix)
	}
	if u.applied && (!exists || cur.Deleted || (cur.Function == "" && cur.Generation > u.plan.Generation)) {
		u.removeOwnFunction(ctx)
	}
	return err
}

// removeOwnFunction removes the preview's function unless a newer
// generation than this Up's deployed it since (see removeOlder).
func (u *upRun) removeOwnFunction(ctx context.Context) {
	_, _ = u.p.removeOlder(ctx, u.plan.FunctionName, u.plan.Generation+1)
}

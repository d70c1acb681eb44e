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

// Preview is one preview environment as Glimpse reports it.
type Preview struct {
	App      string `json:"app"`
	PR       int    `json:"pr"`
	Commit   string `json:"commit"`
	URL      string `json:"url"`
	Host     string `json:"host"`
	Function string `json:"function,omitempty"`
	// Image is the deployed image by digest.
	Image string `json:"image,omitempty"`
	// AssetPrefix names the asset manifest the route serves.
	AssetPrefix string `json:"assetPrefix,omitempty"`
	// Status is one of the Status constants.
	Status   Status `json:"status"`
	Replicas int    `json:"replicas"`
	// LastRequest is the last activity the edge saw; nil when unknown.
	LastRequest *time.Time `json:"lastRequest,omitempty"`
}

// Status summarises a preview's state.
type Status string

// Preview states.
const (
	// StatusReady: routed, and the function (if any) has replicas.
	StatusReady Status = "ready"
	// StatusSleeping: routed, function scaled to zero.
	StatusSleeping Status = "sleeping"
	// StatusPartial: some resources exist but not all (an interrupted Up
	// or Down); Up or Down repairs it.
	StatusPartial Status = "partial"
)

// Step names used in Events.
const (
	StepBuild  = "build"
	StepAssets = "assets"
	StepDeploy = "deploy"
	StepRoute  = "route"
	StepDNS    = "dns"
	StepClean  = "cleanup"
)

// EventState is the state of a step in an Event.
type EventState string

// Event states.
const (
	EventStarted EventState = "started"
	EventDone    EventState = "done"
	EventSkipped EventState = "skipped"
	EventFailed  EventState = "failed"
	// EventLog carries a log line (build output) of a running step.
	EventLog EventState = "log"
)

// Event reports progress of one Pipeline step. Steps that run in parallel
// emit events concurrently; OnEvent handlers are called from several
// goroutines but never concurrently (the Pipeline serialises them).
type Event struct {
	Step    string        `json:"step"`
	State   EventState    `json:"state"`
	Message string        `json:"message,omitempty"`
	Elapsed time.Duration `json:"elapsed,omitempty"`
}

// Pipeline composes the providers into the preview lifecycle. Builder and
// Registry are needed for apps with a function, Assets for apps with static
// files; Runtime and Router are always needed; DNS is optional (nil for
// wildcard records or *.localhost).
//
// A Pipeline is safe for concurrent use by Up/Down calls for different pull
// requests. Up and Down for the same pull request should not overlap; the
// last one to finish decides the state, and a following Up or Down repairs
// whatever a crash or overlap left, because every resource is labelled and
// found again by its labels.
type Pipeline struct {
	Builder  Builder
	Registry Registry
	Runtime  FunctionRuntime
	Assets   AssetStore
	Router   Router
	DNS      DNS

	// Owner is written into every resource's ownership labels and scopes
	// Down and List; default DefaultOwner.
	Owner string
	// BaseDomain is the domain preview hosts are made under: "localhost"
	// gives pr-42.hello.localhost.
	BaseDomain string
	// URLFor turns a host into the preview's URL; default "https://"+host.
	URLFor func(host string) string
	// OnEvent receives progress events; may be nil.
	OnEvent func(Event)
	// Now is the clock that stamps each Up's start (default time.Now).
	Now func() time.Time

	eventMu sync.Mutex
}

// UpRequest is the input of Pipeline.Up.
type UpRequest struct {
	// Dir is the app directory; paths in Spec are relative to it.
	Dir string
	// Spec is the app spec (defaults applied by Up).
	Spec Spec
	// PR and Commit select the preview; App comes from Spec.
	PR     int
	Commit string
}

func (p *Pipeline) emit(e Event) {
	if p.OnEvent == nil {
		return
	}
	p.eventMu.Lock()
	defer p.eventMu.Unlock()
	p.OnEvent(e)
}

// step runs fn as a named step, emitting started and done/failed events.
// fn returns the done message, or skip=true for a step with nothing to do.
func (p *Pipeline) step(name string, fn func() (msg string, skip bool, err error)) error {
	start := time.Now()
	p.emit(Event{Step: name, State: EventStarted})
	msg, skip, err := fn()
	el := time.Since(start)
	switch {
	case err != nil:
		p.emit(Event{Step: name, State: EventFailed, Message: err.Error(), Elapsed: el})
		return fmt.Errorf("%s: %w", name, err)
	case skip:
		p.emit(Event{Step: name, State: EventSkipped, Message: msg, Elapsed: el})
	default:
		p.emit(Event{Step: name, State: EventDone, Message: msg, Elapsed: el})
	}
	return nil
}

func (p *Pipeline) url(host string) string {
	if p.URLFor != nil {
		return p.URLFor(host)
	}
	return "https://" + host
}

func (p *Pipeline) check(spec *Spec) error {
	if p.Runtime == nil && spec.Function != nil {
		return Errorf(FailedPrecondition, "pipeline has no function runtime")
	}
	if spec.Function != nil && (p.Builder == nil || p.Registry == nil) {
		return Errorf(FailedPrecondition, "pipeline has no builder or registry for the function")
	}
	if spec.Assets != nil && p.Assets == nil {
		return Errorf(FailedPrecondition, "pipeline has no asset store for the static files")
	}
	if p.Router == nil {
		return Errorf(FailedPrecondition, "pipeline has no router")
	}
	return nil
}

// AnnotationUpStarted records on a function when the Up that deployed it
// started (RFC 3339, UTC). Up uses it so that of two Ups racing for the
// same pull request the one started last wins: an Up that finds a function
// deployed by a later Up stops before deploying or switching the route.
const AnnotationUpStarted = LabelPrefix + "up-started"

// ErrSuperseded is the error (code FailedPrecondition) of an Up that found
// the preview already deployed by an Up started after it.
var ErrSuperseded = Errorf(FailedPrecondition, "a newer up of this pull request has already deployed it")

// Up creates or updates the preview for req: it builds and pushes the
// function image while it uploads the static files (only blobs the store
// lacks), then deploys the function, then switches the route (and DNS) to
// the new function and assets, then removes asset manifests of older
// commits of the same pull request.
//
// Up is idempotent: with nothing changed it builds nothing, uploads nothing
// and redeploys nothing, and says so in its events. If a step fails, Up
// returns that step's error; what earlier steps created is labelled, so a
// later Up reuses it and Down removes it. The route is switched last, so
// until then visitors keep seeing the previous commit's assets.
func (p *Pipeline) Up(ctx context.Context, req UpRequest) (Preview, error) {
	started := time.Now
	if p.Now != nil {
		started = p.Now
	}
	upStarted := started().UTC()
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
	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return Preview{}, Errorf(InvalidArgument, "app directory: %v", err)
	}
	labels := OwnerLabels(p.Owner, t)
	host := Host(t.App, t.PR, p.BaseDomain)
	prefix := AssetPrefix(t.App, t.PR) + "/" + t.ShortCommit()
	fnName := FunctionName(t.App, t.PR)

	// Build and assets run concurrently; both must finish before deploy.
	var (
		wg       sync.WaitGroup
		built    BuildResult
		buildErr error
		assetErr error
	)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if spec.Function != nil {
		src, err := ResolveInside(dir, spec.Function.Source, "function.source")
		if err != nil {
			return Preview{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buildErr = p.step(StepBuild, func() (string, bool, error) {
				res, err := p.Builder.Build(bctx, BuildRequest{
					Target: t, SourceDir: src, Repository: p.Registry.Repository(t.App),
					Tag: ImageTag(t), Labels: labels,
					Progress: func(line string) { p.emit(Event{Step: StepBuild, State: EventLog, Message: line}) },
				})
				if err != nil {
					cancel()
					return "", false, err
				}
				built = res
				if res.Reused {
					return "source unchanged: reused " + shortDigest(res.Digest) + ", nothing built", true, nil
				}
				return "pushed " + shortDigest(res.Digest), false, nil
			})
		}()
	}
	if spec.Assets != nil {
		adir, err := ResolveInside(dir, spec.Assets.Dir, "assets.dir")
		if err != nil {
			return Preview{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			assetErr = p.step(StepAssets, func() (string, bool, error) {
				m, err := ScanAssets(adir)
				if err != nil {
					cancel()
					return "", false, err
				}
				st, err := p.Assets.Publish(bctx, prefix, m, labels, func(path string) (io.ReadCloser, error) {
					return os.Open(filepath.Join(adir, filepath.FromSlash(strings.TrimPrefix(path, "/"))))
				})
				if err != nil {
					cancel()
					return "", false, err
				}
				if st.Uploaded == 0 {
					return fmt.Sprintf("%d files, none new: uploaded nothing", st.Files), true, nil
				}
				return fmt.Sprintf("%d files, uploaded %d new (%s), reused %d", st.Files, st.Uploaded, humanBytes(st.UploadedBytes), st.Reused), false, nil
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(buildErr, assetErr); err != nil {
		return Preview{}, firstReal(buildErr, assetErr)
	}

	pv := Preview{App: t.App, PR: t.PR, Commit: t.Commit, Host: host, URL: p.url(host), Status: StatusReady}
	if spec.Function != nil {
		fn := Function{
			Name:  fnName,
			Image: built.Image,
			Env: merged(spec.Function.Env, map[string]string{
				"GLIMPSE_APP": t.App, "GLIMPSE_PR": strconv.Itoa(t.PR), "GLIMPSE_COMMIT": t.Commit,
			}),
			Labels:      merged(spec.Function.Labels, labels.With(LabelSourceHash, built.SourceHash)),
			Annotations: merged(spec.Function.Annotations, map[string]string{LabelPrefix + "routes": strings.Join(spec.Function.Routes, ",")}),
		}
		fn.Annotations[AnnotationUpStarted] = upStarted.Format(time.RFC3339Nano)
		if spec.Idle.After != "" {
			fn.Annotations[LabelPrefix+"idle-after"] = spec.Idle.After
		}
		if spec.Idle.AlwaysOn {
			fn.Annotations[LabelPrefix+"always-on"] = "true"
		}
		err := p.step(StepDeploy, func() (string, bool, error) {
			cur, err := p.Runtime.Get(ctx, fn.Name)
			if err == nil && supersedes(cur.Function, upStarted) {
				return "", false, supersededErr(cur.Function)
			}
			if err == nil && sameFunction(cur.Function, fn) {
				pv.Replicas = cur.Replicas
				return fn.Name + " unchanged: nothing deployed", true, nil
			}
			if err != nil && !IsNotFound(err) {
				return "", false, err
			}
			if err := p.Runtime.Apply(ctx, fn); err != nil {
				return "", false, err
			}
			pv.Replicas = 1
			if st, err := p.Runtime.Get(ctx, fn.Name); err == nil {
				pv.Replicas = st.Replicas
			}
			return "deployed " + fn.Name, false, nil
		})
		if err != nil {
			return Preview{}, err
		}
		pv.Function = fn.Name
		pv.Image = fn.Image
		if pv.Replicas == 0 {
			pv.Status = StatusSleeping
		}
	}

	route := Route{Host: host, Labels: labels}
	if spec.Assets != nil {
		route.AssetPrefix = prefix
		pv.AssetPrefix = prefix
	}
	if spec.Function != nil {
		route.Function = fnName
		route.FunctionPaths = append([]string(nil), spec.Function.Routes...)
	}
	if err := p.step(StepRoute, func() (string, bool, error) {
		if spec.Function != nil {
			// A later Up may have deployed since our deploy step; then
			// its route switch, not ours, must stand.
			if cur, err := p.Runtime.Get(ctx, fnName); err == nil && supersedes(cur.Function, upStarted) {
				return "", false, supersededErr(cur.Function)
			}
		}
		return host, false, p.Router.SetRoute(ctx, route)
	}); err != nil {
		return Preview{}, err
	}
	if p.DNS != nil {
		if err := p.step(StepDNS, func() (string, bool, error) {
			return host, false, p.DNS.Ensure(ctx, host, labels)
		}); err != nil {
			return Preview{}, err
		}
	}
	if spec.Assets != nil {
		// Manifests that neither this Up nor the current route (a racing
		// later Up's) uses are no longer served; remove them.
		if err := p.step(StepClean, func() (string, bool, error) {
			sel := Selector(p.Owner, t.App, t.PR)
			routes, err := p.Router.Routes(ctx, sel)
			if err != nil {
				return "", false, err
			}
			keep := map[string]bool{prefix: true}
			for _, r := range routes {
				keep[r.AssetPrefix] = true
			}
			old, err := p.Assets.List(ctx, sel)
			if err != nil {
				return "", false, err
			}
			n := 0
			for _, o := range old {
				if keep[o.Prefix] {
					continue
				}
				if err := p.Assets.Delete(ctx, o.Prefix); err != nil {
					return "", false, err
				}
				n++
			}
			if n == 0 {
				return "nothing to remove", true, nil
			}
			return fmt.Sprintf("removed %d older asset manifest(s)", n), false, nil
		}); err != nil {
			return Preview{}, err
		}
	}
	return pv, nil
}

func firstReal(errs ...error) error {
	// Prefer an error that is not the cancellation caused by a sibling's
	// failure.
	for _, e := range errs {
		if e != nil && CodeOf(e) != Canceled {
			return e
		}
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
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

// sameFunction reports whether the deployed function cur already matches
// the desired fn. Labels and annotations need only be a subset of what the
// runtime reports (runtimes such as faas-netes add their own), and the
// up-started stamp is not compared; the environment must be equal, and
// counts as unknown (so not the same) when the runtime does not report it.
func sameFunction(cur, fn Function) bool {
	want := Labels(fn.Annotations).Clone()
	delete(want, AnnotationUpStarted)
	return cur.Name == fn.Name && cur.Image == fn.Image &&
		sameMap(cur.Env, fn.Env) && Labels(cur.Labels).Matches(fn.Labels) && Labels(cur.Annotations).Matches(want)
}

// supersedes reports whether cur was deployed by an Up started after
// started.
func supersedes(cur Function, started time.Time) bool {
	t, err := time.Parse(time.RFC3339Nano, cur.Annotations[AnnotationUpStarted])
	return err == nil && t.After(started)
}

func supersededErr(cur Function) error {
	return fmt.Errorf("%w (commit %s, started %s); nothing of this up was deployed or routed",
		ErrSuperseded, cur.Labels[LabelCommit], cur.Annotations[AnnotationUpStarted])
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

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Down removes every resource of the app's pull request that carries the
// Pipeline owner's labels, in reverse order of Up: DNS records, routes,
// functions, asset manifests. It is idempotent (a preview already gone is
// success) and does not stop at the first failure: it removes what it can
// and returns the failures joined. Image tags are left to garbage
// collection, since an image may be shared by previews with the same source.
func (p *Pipeline) Down(ctx context.Context, app string, pr int) error {
	if err := ValidateDNSLabel(app); err != nil {
		return Errorf(InvalidArgument, "app name %q: %v", app, err)
	}
	if pr <= 0 {
		return Errorf(InvalidArgument, "pull request number must be a positive integer, got %d", pr)
	}
	sel := Selector(p.Owner, app, pr)
	var errs []error
	if p.DNS != nil {
		errs = append(errs, p.step(StepDNS, func() (string, bool, error) {
			hosts, err := p.DNS.Hosts(ctx, sel)
			if err != nil {
				return "", false, err
			}
			for _, h := range hosts {
				if err := p.DNS.Remove(ctx, h); err != nil {
					return "", false, err
				}
			}
			return countMsg(len(hosts), "record"), len(hosts) == 0, nil
		}))
	}
	if p.Router != nil {
		errs = append(errs, p.step(StepRoute, func() (string, bool, error) {
			routes, err := p.Router.Routes(ctx, sel)
			if err != nil {
				return "", false, err
			}
			for _, r := range routes {
				if err := p.Router.DeleteRoute(ctx, r.Host); err != nil {
					return "", false, err
				}
			}
			return countMsg(len(routes), "route"), len(routes) == 0, nil
		}))
	}
	if p.Runtime != nil {
		errs = append(errs, p.step(StepDeploy, func() (string, bool, error) {
			fns, err := p.Runtime.List(ctx, sel)
			if err != nil {
				return "", false, err
			}
			for _, f := range fns {
				if err := p.Runtime.Remove(ctx, f.Name); err != nil {
					return "", false, err
				}
			}
			return countMsg(len(fns), "function"), len(fns) == 0, nil
		}))
	}
	if p.Assets != nil {
		errs = append(errs, p.step(StepAssets, func() (string, bool, error) {
			ms, err := p.Assets.List(ctx, sel)
			if err != nil {
				return "", false, err
			}
			for _, m := range ms {
				if err := p.Assets.Delete(ctx, m.Prefix); err != nil {
					return "", false, err
				}
			}
			return countMsg(len(ms), "asset manifest"), len(ms) == 0, nil
		}))
	}
	return errors.Join(errs...)
}

func countMsg(n int, what string) string {
	if n == 0 {
		return "no " + what + "s"
	}
	if n == 1 {
		return "removed 1 " + what
	}
	return fmt.Sprintf("removed %d %ss", n, what)
}

// List returns the previews of the Pipeline's owner, narrowed to app when
// app is not empty, sorted by app and PR. A preview whose route or function
// is missing (an interrupted Up or Down) is listed with StatusPartial.
func (p *Pipeline) List(ctx context.Context, app string) ([]Preview, error) {
	sel := Selector(p.Owner, app, 0)
	type key struct {
		app string
		pr  int
	}
	byKey := map[key]*Preview{}
	get := func(l Labels) *Preview {
		t, ok := l.Target()
		if !ok {
			return nil
		}
		k := key{t.App, t.PR}
		if pv := byKey[k]; pv != nil {
			return pv
		}
		pv := &Preview{App: t.App, PR: t.PR, Commit: t.Commit, Status: StatusPartial}
		byKey[k] = pv
		return pv
	}
	if p.Router != nil {
		routes, err := p.Router.Routes(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if pv := get(r.Labels); pv != nil {
				pv.Host, pv.URL, pv.AssetPrefix, pv.Function = r.Host, p.url(r.Host), r.AssetPrefix, r.Function
			}
		}
	}
	present := map[string]FunctionStatus{}
	if p.Runtime != nil {
		fns, err := p.Runtime.List(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("list functions: %w", err)
		}
		for _, f := range fns {
			present[f.Name] = f
			if pv := get(f.Labels); pv != nil {
				pv.Replicas, pv.Image = f.Replicas, f.Image
				if pv.Function == "" {
					pv.Function = f.Name
				}
				pv.Commit = f.Labels[LabelCommit]
			}
		}
	}
	// A routed preview is ready when its function (if it has one) exists;
	// sleeping when that function has no replicas; partial otherwise.
	for _, pv := range byKey {
		switch f, ok := present[pv.Function]; {
		case pv.Host == "":
		case pv.Function == "":
			pv.Status = StatusReady
		case ok && f.Replicas == 0:
			pv.Status = StatusSleeping
		case ok:
			pv.Status = StatusReady
		}
	}
	if ar, ok := p.Router.(ActivityReporter); ok && len(byKey) > 0 {
		acts, err := ar.Activity(ctx)
		if err != nil {
			return nil, fmt.Errorf("read activity: %w", err)
		}
		last := make(map[string]time.Time, len(acts))
		for _, a := range acts {
			last[a.Function] = a.LastActivity
		}
		for _, pv := range byKey {
			if t, ok := last[pv.Function]; ok && !t.IsZero() {
				pv.LastRequest = &t
			}
		}
	}
	out := make([]Preview, 0, len(byKey))
	for _, pv := range byKey {
		out = append(out, *pv)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].PR < out[j].PR
	})
	return out, nil
}

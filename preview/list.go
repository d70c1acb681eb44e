package preview

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// List returns the previews of the Pipeline's owner, narrowed to app when
// app is not empty, sorted by app and PR. A preview whose route or function
// is missing (an interrupted Up or Down), or whose route no Up has switched
// yet (the first Up is in progress), is listed with StatusPartial; one
// whose function has no ready replica because its start failed or it
// crashed (FunctionStatus.LastError) with StatusFailed, routed or not; so
// is one that nothing is served for yet whose Up failed (Route.Failure,
// as LastError): a first Up whose function never started is failed, not
// in progress.
// Tombstones (previews taken down) are not listed; what a Down left behind
// them is, as partial. Idle is set where the app's glimpse.yaml sets the
// idle timeout; DefaultIdle fills in the daemon's for the others.
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
	// upFailed: previews that nothing is served for and whose Up failed
	// (Route.Failure).
	upFailed := map[*Preview]string{}
	if p.Router != nil {
		routes, err := p.Router.Routes(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if r.Deleted {
				continue // a tombstone: taken down
			}
			pv := get(r.Labels)
			if pv != nil && r.Served == 0 && r.Failure != "" {
				upFailed[pv] = r.Failure
			}
			if pv != nil && r.Served > 0 {
				pv.Host, pv.URL, pv.AssetPrefix, pv.Function = r.Host, p.url(r.Host), r.AssetPrefix, r.Function
				readLifetime(pv, r.Labels)
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
				pv.Replicas, pv.Image, pv.LastError = f.Replicas, f.Image, f.LastError
				pv.Idle = appIdle(f.Annotations)
				if pv.Function == "" {
					pv.Function = f.Name
				}
				pv.Commit = f.Labels[LabelCommit]
			}
		}
	}
	// A routed preview is ready when its function (if it has one) exists;
	// sleeping when that function has no replicas; partial otherwise. A
	// function that failed is failed whether or not an Up routed it yet:
	// the first Up of a function that never starts stops before the route
	// switch, and waiting would not help.
	for _, pv := range byKey {
		switch f, ok := present[pv.Function]; {
		case ok && f.Failed():
			pv.Status = StatusFailed
		case pv.Host == "" && upFailed[pv] != "":
			pv.Status = StatusFailed
			if pv.LastError == "" {
				pv.LastError = upFailed[pv]
			}
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
		// A preview's last request is the newer of its function's and its
		// host's static requests.
		last := make(map[string]time.Time, len(acts))
		for _, a := range acts {
			if a.Function != "" {
				last[a.Function] = later(last[a.Function], a.LastActivity)
			}
			if a.Host != "" {
				last["host "+a.Host] = later(last["host "+a.Host], a.LastActivity)
			}
		}
		for _, pv := range byKey {
			t := last["host "+pv.Host]
			if pv.Function != "" {
				t = later(t, last[pv.Function])
			}
			if !t.IsZero() {
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

// Failed reports whether the function has failed: the runtime says its
// last start failed or its process crashed (LastError) and no replica is
// ready, whether it is restarting or scaled to zero. List reports its
// preview StatusFailed; the edge answers its requests that it failed to
// start instead of promising a wake.
func (f FunctionStatus) Failed() bool { return f.LastError != "" && f.AvailableReplicas == 0 }

// IdleSource says where the idle timeout in force for a preview comes
// from. The app's setting beats the daemon's, which beats the default.
type IdleSource string

// Idle timeout sources, strongest first.
const (
	// IdleFromApp: the app's glimpse.yaml idle.after or idle.alwaysOn,
	// carried by the function's AnnotationIdleAfter and AnnotationAlwaysOn.
	IdleFromApp IdleSource = "glimpse.yaml"
	// IdleFromServe: the daemon's `glimpse serve --idle-after`, or
	// idle.after of its serve config.
	IdleFromServe IdleSource = "serve"
	// IdleFromDefault: nothing sets it; the idle controller's default
	// (15m, idle.DefaultAfter).
	IdleFromDefault IdleSource = "default"
)

// IdleTimeout is the idle timeout in force for a preview: how long its
// function may go without a request (or a deploy) before the idle
// controller scales it to zero, and where that duration comes from.
// In JSON it reads {"after": "15m0s", "seconds": 900, "source": "default"},
// with "alwaysOn": true (and no after) for an app that never sleeps.
type IdleTimeout struct {
	After    time.Duration
	AlwaysOn bool
	Source   IdleSource
}

type idleTimeoutJSON struct {
	After    string     `json:"after,omitempty"`
	Seconds  float64    `json:"seconds,omitempty"`
	AlwaysOn bool       `json:"alwaysOn,omitempty"`
	Source   IdleSource `json:"source"`
}

// MarshalJSON writes the JSON form described at IdleTimeout.
func (t IdleTimeout) MarshalJSON() ([]byte, error) {
	j := idleTimeoutJSON{AlwaysOn: t.AlwaysOn, Source: t.Source}
	if t.After > 0 && !t.AlwaysOn {
		j.After, j.Seconds = t.After.String(), t.After.Seconds()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the JSON form described at IdleTimeout; "after" is
// a Go duration ("15m0s", "2s"). A malformed duration is InvalidArgument.
func (t *IdleTimeout) UnmarshalJSON(b []byte) error {
	var j idleTimeoutJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = IdleTimeout{AlwaysOn: j.AlwaysOn, Source: j.Source}
	if j.After != "" {
		d, err := time.ParseDuration(j.After)
		if err != nil {
			return Errorf(InvalidArgument, "idle timeout %q is not a duration such as 15m", j.After)
		}
		t.After = d
	}
	return nil
}

// String is the idle timeout for people: "15m (default)", "2s
// (glimpse.yaml)", "never (always-on, glimpse.yaml)".
func (t IdleTimeout) String() string {
	if t.AlwaysOn {
		return "never (always-on, " + string(t.Source) + ")"
	}
	s := t.After.String()
	for _, z := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, z) {
			s = strings.TrimSuffix(s, z[1:])
		}
	}
	return s + " (" + string(t.Source) + ")"
}

// IdleAfterOf returns the idle duration a function's annotations set
// (AnnotationIdleAfter, from the app's idle.after); false when they set
// none or one that is not a positive duration.
func IdleAfterOf(annotations map[string]string) (time.Duration, bool) {
	d, err := time.ParseDuration(annotations[AnnotationIdleAfter])
	return d, err == nil && d > 0
}

// appIdle returns the idle timeout a function's annotations set (its
// app's glimpse.yaml), or nil when they leave it to the daemon.
func appIdle(annotations map[string]string) *IdleTimeout {
	if annotations[AnnotationAlwaysOn] == "true" {
		return &IdleTimeout{AlwaysOn: true, Source: IdleFromApp}
	}
	if d, ok := IdleAfterOf(annotations); ok {
		return &IdleTimeout{After: d, Source: IdleFromApp}
	}
	return nil
}

// DefaultIdle sets the idle timeout of every preview of list that has a
// function and whose app sets none to def, the daemon's (its Source
// IdleFromServe or IdleFromDefault): the app's setting wins. It changes
// list in place and returns it.
func DefaultIdle(list []Preview, def IdleTimeout) []Preview {
	for i := range list {
		if list[i].Function != "" {
			list[i].Idle = IdleOr(list[i].Idle, def)
		}
	}
	return list
}

// IdleOr returns app, the idle timeout a preview's app sets, or def (the
// daemon's) when app is nil: the app's setting wins.
func IdleOr(app *IdleTimeout, def IdleTimeout) *IdleTimeout {
	if app != nil {
		return app
	}
	return &def
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

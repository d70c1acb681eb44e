package preview

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// List returns the previews of the Pipeline's owner, narrowed to app when
// app is not empty, sorted by app and PR. A preview whose route or function
// is missing (an interrupted Up or Down), or whose route no Up has switched
// yet (the first Up is in progress), is listed with StatusPartial; one
// whose function has no ready replica because its start failed or it
// crashed (FunctionStatus.LastError) with StatusFailed.
// Tombstones (previews taken down) are not listed; what a Down left behind
// them is, as partial.
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
			if r.Deleted {
				continue // a tombstone: taken down
			}
			if pv := get(r.Labels); pv != nil && r.Served > 0 {
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
				pv.Replicas, pv.Image, pv.LastError = f.Replicas, f.Image, f.LastError
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
		case ok && f.LastError != "" && f.AvailableReplicas == 0:
			pv.Status = StatusFailed
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

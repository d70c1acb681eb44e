package daemon

import (
	"context"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// TrackUp records an Up the daemon runs of app's pull request pr at
// commit (the GitHub loop's), for the dashboard: feed the Pipeline's
// events to onEvent (ObserveEvent, for the step metrics, is separate) and
// call done with the Up's result. redo, when not nil, runs the same
// Up again (it should queue it and return, as the GitHub loop's Enqueue
// of the PR's last work item does); the dashboard's redeploy action calls
// it. Only the last Up of each preview is kept (dashboard.History), in
// memory. It is safe for concurrent use.
func (s *Stack) TrackUp(app string, pr int, commit string, redo func(context.Context) error) (onEvent func(preview.Event), done func(error)) {
	run := s.history.Start(app, pr, commit, redo)
	return run.Event, run.Done
}

// Down takes the preview of app's pull request pr down with
// preview.Pipeline.Down (what `glimpse down` runs) over the daemon's
// providers (runtime, edge, asset store), as the owner its resources
// carry, and forgets its deploy. Providers the daemon does not hold (DNS,
// a database that only the app's glimpse.yaml names) are left to `glimpse
// down` from where the app is. A preview of which nothing exists is
// NotFound. It is idempotent as Pipeline.Down is.
func (s *Stack) Down(ctx context.Context, app string, pr int) error {
	if err := preview.ValidateDNSLabel(app); err != nil || pr <= 0 {
		return preview.Errorf(preview.InvalidArgument, "no preview %s #%d: want an app name and a positive pull request number", app, pr)
	}
	owner, base, commit, err := s.ownerOf(ctx, app, pr)
	if err != nil {
		return err
	}
	pl := &preview.Pipeline{Runtime: s.Runtime, Router: s.Edge, Assets: s.Assets, Owner: owner, BaseDomain: base}
	if err := pl.Down(ctx, app, pr); err != nil {
		return err
	}
	s.history.Forget(app, pr)
	if f := s.afterDown.Load(); f != nil {
		(*f)(app, pr, commit)
	}
	return nil
}

// SetAfterDown makes Down call f with the preview and the commit it
// served once the preview is down: the GitHub loop parks the PR at that
// commit, so that its reconcile does not build the same head again (a
// push does). It is safe to call while Down runs.
func (s *Stack) SetAfterDown(f func(app string, pr int, commit string)) {
	s.afterDown.Store(&f)
}

// ownerOf returns the owner label of the preview's route (or, without a
// route, its function), the base domain of its route's host and the
// commit it serves.
func (s *Stack) ownerOf(ctx context.Context, app string, pr int) (owner, base, commit string, err error) {
	sel := preview.Selector(preview.AnyOwner, app, pr)
	routes, err := s.Edge.Routes(ctx, sel)
	if err != nil {
		return "", "", "", err
	}
	for _, r := range routes {
		if !r.Deleted {
			return r.Labels[preview.LabelOwner], strings.TrimPrefix(strings.TrimPrefix(r.Host, preview.Host(app, pr, "")), "."), r.Labels[preview.LabelCommit], nil
		}
	}
	fns, err := s.Runtime.List(ctx, sel)
	if err != nil {
		return "", "", "", err
	}
	if len(fns) > 0 {
		return fns[0].Labels[preview.LabelOwner], "localhost", fns[0].Labels[preview.LabelCommit], nil
	}
	return "", "", "", preview.Errorf(preview.NotFound, "%s: pull request #%d has no preview", app, pr)
}

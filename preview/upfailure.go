package preview

import (
	"context"
	"errors"
	"strings"
)

// maxFailure bounds the reason an Up records on its route.
const maxFailure = 500

// recordFailure writes err (one line, at most maxFailure bytes) into
// Route.Failure while the stored route is still this Up's claim, so that
// List reports a preview that nothing is served for yet as failed, with
// the reason, rather than as an Up in progress. It is best effort: a
// concurrent claim or Down (the compare-and-swap fails) or a failed
// read or write leaves the route as it is. A cancelled Up records
// nothing: it was stopped, it did not fail.
func (u *upRun) recordFailure(ctx context.Context, err error) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || u.p.Router == nil {
		return
	}
	cur, exists, rerr := u.p.storedRoute(ctx, u.plan.Host)
	if rerr != nil || !exists || cur.Deleted || cur.Version != u.claim.Version {
		return
	}
	cur.Failure = failureLine(err)
	_, _ = u.p.Router.SetRoute(ctx, cur)
}

func failureLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > maxFailure {
		s = strings.ToValidUTF8(s[:maxFailure], "") + "…" // not a rune cut in two
	}
	return s
}

package preview

import (
	"context"
	"fmt"
	"strconv"
)

// Ordering: the Ups and Downs of one pull request are ordered by a
// generation, an integer that only grows, held by the one piece of state
// every provider set already has for the preview: its stored Route. An Up
// claims a generation by a compare-and-swap on the route (Router.SetRoute
// with the Version it read) before it builds anything; it stamps the
// generation on what it creates (the function's AnnotationGeneration, the
// manifest's LabelGeneration, the asset prefix); it switches the route to
// its content with a second compare-and-swap on the Version of its own
// claim, which fails when anybody claimed since. So of two Ups the one that
// claimed later wins, whichever finishes first, and no machine's clock is
// read. A Down claims the next generation by writing a tombstone route:
// every Up that claimed before it can no longer route, and removes what it
// deployed after the Down looked.
//
// Where the generation comes from:
//   - UpRequest.Generation 0 (the CLI's default): the next one, so Ups are
//     ordered by when they start.
//   - A positive UpRequest.Generation (a CI run number such as
//     GITHUB_RUN_NUMBER, which a re-run of an old commit keeps, or the
//     daemon's webhook sequence): it must be at least the stored one, so a
//     re-run of an older commit fails with ErrSuperseded and changes
//     nothing. Equal generations re-take an unfinished claim (a retry after
//     a crash).
//   - UpRequest.Force claims past whatever is stored.

// AnnotationGeneration on a function and LabelGeneration on an asset
// manifest record the generation of the Up that wrote them (decimal).
const (
	AnnotationGeneration = LabelPrefix + "generation"
	LabelGeneration      = AnnotationGeneration
)

// ErrSuperseded is the error (code FailedPrecondition) of an Up whose
// generation is older than the preview's: a newer Up or a Down claimed
// after it. What it wrote is removed or left for the winner's clean-up.
var ErrSuperseded = Errorf(FailedPrecondition, "a newer up or a down of this pull request came after this one")

// ErrStaleGeneration is the error (code FailedPrecondition) of a runtime's
// Apply refusing to replace a function deployed by a newer generation.
var ErrStaleGeneration = Errorf(FailedPrecondition, "a newer generation of this function is deployed")

// GenerationOf parses the generation recorded in annotations or labels
// under AnnotationGeneration; 0 when absent or malformed.
func GenerationOf(m map[string]string) int64 {
	g, err := strconv.ParseInt(m[AnnotationGeneration], 10, 64)
	if err != nil || g < 0 {
		return 0
	}
	return g
}

// CheckGeneration returns an error wrapping ErrStaleGeneration when the
// deployed function's generation is greater than next's, so that runtimes
// can refuse a roll-back in Apply. Equal generations pass (a repeated
// Apply).
func CheckGeneration(deployed, next Function) error {
	if d, n := GenerationOf(deployed.Annotations), GenerationOf(next.Annotations); d > n {
		return fmt.Errorf("%w: %s runs generation %d, refusing generation %d", ErrStaleGeneration, next.Name, d, n)
	}
	return nil
}

// claimGeneration decides the generation an Up claims on the stored route
// cur (exists false: none stored). want is UpRequest.Generation. It is pure.
// A retake (want equal to the stored generation) is refused when the
// stored claim is another commit's: two different commits never share a
// generation (a CI run number colliding with an earlier automatic one).
func claimGeneration(cur Route, exists bool, want int64, force bool, commit string) (int64, error) {
	stored := int64(0)
	if exists {
		stored = cur.Generation
	}
	switch {
	case want < 0:
		return 0, Errorf(InvalidArgument, "generation must not be negative, got %d", want)
	case force:
		return max(want, stored+1), nil
	case want == 0:
		return stored + 1, nil
	case want < stored:
		return 0, fmt.Errorf("%w: generation %d is older than the preview's generation %d (use --force to deploy it anyway)", ErrSuperseded, want, stored)
	case want == stored && exists && cur.ClaimedCommit != "" && cur.ClaimedCommit != commit:
		return 0, fmt.Errorf("%w: generation %d is already claimed by commit %s (use a newer generation, or --force)", ErrSuperseded, want, shortOf(cur.ClaimedCommit))
	}
	return want, nil
}

func shortOf(commit string) string {
	if len(commit) > ShortCommitLen {
		return commit[:ShortCommitLen]
	}
	return commit
}

// claimRoute is the route an Up writes to claim gen: the stored route with
// only its Generation raised (it keeps serving what it served), or, for a
// host without a route or with a tombstone, an empty route carrying the
// preview's labels and serving no generation (the edge serves it as "no
// published assets", List as partial, until the first Up switches it).
func claimRoute(cur Route, exists bool, host string, labels Labels, gen int64) Route {
	if !exists || cur.Deleted {
		return Route{Host: host, Labels: labels, Generation: gen, ClaimedCommit: labels[LabelCommit], Version: cur.Version}
	}
	next := cur
	next.Generation, next.ClaimedCommit, next.Failure = gen, labels[LabelCommit], ""
	return next
}

// tombstone is the route a Down writes over cur: nothing served, the next
// generation claimed.
func tombstone(cur Route, exists bool, host string, labels Labels) Route {
	gen := int64(1)
	if exists {
		gen = cur.Generation + 1
	}
	return Route{Host: host, Labels: labels, Generation: gen, Served: cur.Served, Deleted: true, Version: cur.Version}
}

// PutRoute stores r for r.Host whatever is stored (last writer wins),
// through Router's compare-and-swap: read, swap, again on a concurrent
// change. It is for tools and tests that own a host outright; the Pipeline
// never uses it, since it would bypass the ordering of Ups and Downs.
func PutRoute(ctx context.Context, router Router, r Route) error {
	for range maxClaimAttempts {
		cur, err := router.Route(ctx, r.Host)
		switch {
		case IsNotFound(err):
			r.Version = ""
		case err != nil:
			return err
		default:
			r.Version = cur.Version
		}
		_, err = router.SetRoute(ctx, r)
		if CodeOf(err) != Aborted {
			return err
		}
	}
	return Errorf(Aborted, "route %s changed %d times while writing it; try again", r.Host, maxClaimAttempts)
}

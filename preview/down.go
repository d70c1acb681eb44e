package preview

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Down takes the app's pull request down. It first claims the next
// generation by replacing the route with a tombstone (compare-and-swap, see
// Ordering), so no Up that claimed before it can route any more; then it
// removes every resource that carries the Pipeline owner's labels and was
// written before the tombstone: functions and asset manifests stamped with
// an older generation than the tombstone of the host under the current
// base domain, and the DNS records of hosts whose route is a tombstone (it
// tombstones any other route of the pull request, from an earlier base
// domain, too). The tombstone stays: it
// serves nothing, and it is what makes the Down final for Ups still in
// flight.
//
// What an Up that claimed after the tombstone writes is that Up's: Down
// leaves functions and manifests stamped with the tombstone's generation
// or a newer one (removing a function only while it is older, see
// GenerationRemover), and makes each DNS record follow its host's route
// (see syncDNS), so that a slow Down never breaks the preview of an Up
// that came after it. When the tombstone cannot be written, Down removes
// nothing and returns that error: without it the route may still serve
// what would be removed.
//
// Down is idempotent (a preview already gone is success) and, once the
// tombstone is written, does not stop at the first failure: it removes
// what it can and returns the failures joined. The preview's database
// (Pipeline.Database) is dropped after its function, unless an Up that
// claimed after the tombstone stamped it with a newer generation (read,
// then dropped: an Up that ensures it between the two loses it, and its
// next Up makes it again). Image tags are left to
// garbage collection, since an image may be shared by previews with the
// same source.
func (p *Pipeline) Down(ctx context.Context, app string, pr int) error {
	if err := ValidateDNSLabel(app); err != nil {
		return Errorf(InvalidArgument, "app name %q: %v", app, err)
	}
	if pr <= 0 {
		return Errorf(InvalidArgument, "pull request number must be a positive integer, got %d", pr)
	}
	sel := Selector(p.Owner, app, pr)
	labels := OwnerLabels(p.Owner, Target{App: app, PR: pr})
	// below: functions and manifests stamped with an older generation were
	// written before the tombstone, and are this Down's to remove.
	below := int64(math.MaxInt64)
	if p.Router != nil {
		if err := p.step(StepRoute, func() (string, bool, error) {
			hosts := []string{Host(app, pr, p.BaseDomain)}
			routes, err := p.Router.Routes(ctx, sel)
			if err != nil {
				return "", false, err
			}
			for _, r := range routes {
				if r.Host != hosts[0] && !r.Deleted {
					hosts = append(hosts, r.Host)
				}
			}
			n := 0
			for i, h := range hosts {
				gen, changed, err := p.bury(ctx, h, labels)
				if err != nil {
					return "", false, err
				}
				if i == 0 {
					below = gen
				}
				if changed {
					n++
				}
			}
			return countMsg(n, "route"), n == 0, nil
		}); err != nil {
			return err
		}
	}
	var errs []error
	if p.DNS != nil {
		errs = append(errs, p.step(StepDNS, func() (string, bool, error) {
			hosts, err := p.DNS.Hosts(ctx, sel)
			if err != nil {
				return "", false, err
			}
			n := 0
			for _, h := range hosts {
				if p.Router == nil {
					if err := p.DNS.Remove(ctx, h); err != nil {
						return "", false, err
					}
					n++
					continue
				}
				// An Up that claimed since keeps the host's record.
				kept, err := p.syncDNS(ctx, h, "", nil)
				if err != nil {
					return "", false, err
				}
				if !kept {
					n++
				}
			}
			return countMsg(n, "record"), n == 0, nil
		}))
	}
	if p.Runtime != nil {
		errs = append(errs, p.step(StepDeploy, func() (string, bool, error) {
			fns, err := p.Runtime.List(ctx, sel)
			if err != nil {
				return "", false, err
			}
			n := 0
			for _, f := range fns {
				// Functions of the tombstone's generation or newer were
				// deployed by Ups that claimed after this Down.
				removed, err := p.removeOlder(ctx, f.Name, below)
				if err != nil {
					return "", false, err
				}
				if removed {
					n++
				}
			}
			return countMsg(n, "function"), n == 0, nil
		}))
	}
	if p.Database != nil {
		// After the function, so that no process of the preview still
		// uses the database when it is dropped.
		errs = append(errs, p.step(StepDatabase, func() (string, bool, error) {
			return p.dropDatabase(ctx, app, pr, below)
		}))
	}
	if p.Assets != nil {
		errs = append(errs, p.step(StepAssets, func() (string, bool, error) {
			ms, err := p.Assets.List(ctx, sel)
			if err != nil {
				return "", false, err
			}
			n := 0
			for _, m := range ms {
				if GenerationOf(m.Labels) >= below {
					continue // published by an Up that claimed after this Down
				}
				if err := p.Assets.Delete(ctx, m.Prefix); err != nil {
					return "", false, err
				}
				n++
			}
			return countMsg(n, "asset manifest"), n == 0, nil
		}))
	}
	return errors.Join(errs...)
}

// bury writes a tombstone over host's route by compare-and-swap. A host
// without a route gets one too, so an Up that read "no route" before the
// Down and claims after it still loses (its create-if-absent fails).
// It returns the tombstone's generation (that of the tombstone already
// there, when there is one); changed is false when there was no route or
// already a tombstone.
func (p *Pipeline) bury(ctx context.Context, host string, labels Labels) (gen int64, changed bool, err error) {
	for range maxClaimAttempts {
		cur, exists, err := p.storedRoute(ctx, host)
		if err != nil {
			return 0, false, err
		}
		if exists && cur.Deleted {
			return cur.Generation, false, nil // a claim since would have replaced the tombstone
		}
		stored, err := p.Router.SetRoute(ctx, tombstone(cur, exists, host, labels))
		if CodeOf(err) == Aborted {
			continue
		}
		return stored.Generation, exists && !cur.Deleted, err
	}
	return 0, false, Errorf(Aborted, "route %s changed %d times while taking it down; try again", host, maxClaimAttempts)
}

// countMsg says how many things a step removed.
func countMsg(n int, what string) string {
	if n == 0 {
		return "no " + what + "s"
	}
	if n == 1 {
		return "removed 1 " + what
	}
	return fmt.Sprintf("removed %d %ss", n, what)
}

// removeOlder removes the function name if its generation is lower than
// below, atomically when the runtime is a GenerationRemover, else by a Get
// and a Remove (a function deployed in between is lost). A missing
// function is success.
func (p *Pipeline) removeOlder(ctx context.Context, name string, below int64) (bool, error) {
	if gr, ok := p.Runtime.(GenerationRemover); ok {
		return gr.RemoveOlder(ctx, name, below)
	}
	f, err := p.Runtime.Get(ctx, name)
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if GenerationOf(f.Annotations) >= below {
		return false, nil
	}
	return true, p.Runtime.Remove(ctx, name)
}

// syncDNS makes host's DNS record follow its stored route: a record while
// the route is not a tombstone, none once it is (or when there is no
// route). The record is labelled with labels while the route's version is
// mine, and with the route's labels otherwise. After writing, syncDNS reads
// the route again and writes again while what the route wants changed
// meanwhile. Every Up and Down syncs after its own route write, so of
// those racing for the host the last to write the route also decides the
// record: whoever wrote the record after that route write read the route
// again after its write, saw the change and corrected. It reports whether
// the record exists when it is done.
func (p *Pipeline) syncDNS(ctx context.Context, host, mine string, labels Labels) (bool, error) {
	cur, exists, err := p.storedRoute(ctx, host)
	if err != nil {
		return false, err
	}
	for range maxClaimAttempts {
		want := exists && !cur.Deleted
		if want {
			l := cur.Labels
			if mine != "" && cur.Version == mine {
				l = labels
			}
			err = p.DNS.Ensure(ctx, host, l)
		} else {
			err = p.DNS.Remove(ctx, host)
		}
		if err != nil {
			return false, err
		}
		if cur, exists, err = p.storedRoute(ctx, host); err != nil {
			return false, err
		}
		if (exists && !cur.Deleted) == want {
			return want, nil
		}
	}
	return false, Errorf(Aborted, "route %s changed %d times while writing its DNS record; try again", host, maxClaimAttempts)
}

// dropDatabase drops the preview's database unless a database of
// generation below or newer (an Up that claimed after the Down) is among
// those listed for it.
func (p *Pipeline) dropDatabase(ctx context.Context, app string, pr int, below int64) (string, bool, error) {
	dbs, err := p.Database.Databases(ctx, Selector(p.Owner, app, pr))
	if err != nil {
		return "", false, err
	}
	if len(dbs) == 0 {
		return "no databases", true, nil
	}
	for _, d := range dbs {
		if d.Generation >= below {
			return "kept database " + d.Name + ": an up that came after this down made it", true, nil
		}
	}
	if err := p.Database.Remove(ctx, app, pr); err != nil {
		return "", false, err
	}
	return countMsg(len(dbs), "database"), false, nil
}

package preview

import (
	"fmt"
	"strconv"
	"time"
)

// A preview's lifetime: glimpse.yaml's ttl (how long a preview may live
// after its last deploy) and the time of that deploy ride on the route an
// Up switches (LabelTTL, LabelDeployedAt), so that `glimpse gc` and a
// restarted daemon read them from the infrastructure, not from memory.
// Lifetime.Expired is the one rule both apply.

// ParseTTL parses a ttl such as "7d", "36h", "90m", "1d12h" or "30s": one
// or more whole numbers, each followed by d (24h), h, m or s. It returns
// a positive duration or an error (a message without the key, for the
// caller to prefix).
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty ttl")
	}
	if len(s) > 32 { // it is written as a label value (at most 63)
		return 0, fmt.Errorf("%q is too long for a duration such as 7d, 36h or 90m", s)
	}
	var total time.Duration
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j == len(s) {
			return 0, fmt.Errorf("%q is not a duration such as 7d, 36h or 90m (units d, h, m, s)", s)
		}
		n, err := strconv.ParseInt(s[i:j], 10, 64)
		var unit time.Duration
		switch s[j] {
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		case 's':
			unit = time.Second
		default:
			return 0, fmt.Errorf("%q is not a duration such as 7d, 36h or 90m (units d, h, m, s)", s)
		}
		if err != nil || n > int64((1<<63-1)/unit) || total > 1<<63-1-time.Duration(n)*unit {
			return 0, fmt.Errorf("%q is too long", s)
		}
		total += time.Duration(n) * unit
		i = j + 1
	}
	if total <= 0 {
		return 0, fmt.Errorf("%q must be longer than zero", s)
	}
	return total, nil
}

// lifetimeLabels returns labels with the lifetime of an Up that routes at
// now: LabelDeployedAt (Unix seconds) and, when ttl is set, LabelTTL (as
// written in glimpse.yaml; both values are valid Kubernetes label values).
// Only the route carries them: on the function they would make every Up
// a redeploy.
func lifetimeLabels(labels Labels, ttl string, now time.Time) Labels {
	out := labels.With(LabelDeployedAt, strconv.FormatInt(now.Unix(), 10))
	if ttl != "" {
		out[LabelTTL] = ttl
	} else {
		delete(out, LabelTTL)
	}
	return out
}

// readLifetime fills pv's TTL and DeployedAt from a route's labels;
// malformed values (written by hand) are ignored.
func readLifetime(pv *Preview, l Labels) {
	pv.TTL, pv.DeployedAt = "", nil
	if _, err := ParseTTL(l[LabelTTL]); err == nil {
		pv.TTL = l[LabelTTL]
	}
	if n, err := strconv.ParseInt(l[LabelDeployedAt], 10, 64); err == nil && n > 0 {
		t := time.Unix(n, 0)
		pv.DeployedAt = &t
	}
}

// Lifetime is what decides whether a preview has expired.
type Lifetime struct {
	// TTL is how long the preview may live after Pushed; 0 means no ttl.
	TTL time.Duration
	// Pushed is the preview's last deploy (its last push); zero when
	// unknown, which never expires a TTL.
	Pushed time.Time
	// Active is the newest of Pushed and the preview's last request
	// (function or static); zero when unknown, which never makes it
	// stale.
	Active time.Time
}

// Lifetime returns the preview's lifetime from what List read: its ttl
// and last deploy from the route, its last request from the edge.
func (pv Preview) Lifetime() Lifetime {
	var l Lifetime
	if pv.TTL != "" {
		l.TTL, _ = ParseTTL(pv.TTL)
	}
	if pv.DeployedAt != nil {
		l.Pushed, l.Active = *pv.DeployedAt, *pv.DeployedAt
	}
	if pv.LastRequest != nil && pv.LastRequest.After(l.Active) {
		l.Active = *pv.LastRequest
	}
	return l
}

// ExpiryKind says which limit a preview passed.
type ExpiryKind string

// Expiry kinds.
const (
	// ExpiredTTL: longer than its glimpse.yaml ttl since its last deploy.
	ExpiredTTL ExpiryKind = "ttl"
	// ExpiredStale: longer than the daemon's stale-after without a deploy
	// or a request.
	ExpiredStale ExpiryKind = "stale"
)

// Expiry is why a preview expired: the limit it passed and how long ago.
type Expiry struct {
	Kind ExpiryKind `json:"kind"`
	// Limit is the ttl or the stale-after duration.
	Limit time.Duration `json:"limit"`
	// Ago is how long ago the limit passed.
	Ago time.Duration `json:"ago"`
}

// String says why, for people: "ttl 7d expired 8d ago", or "no push or
// request for 3d (stale after 2d)".
func (e Expiry) String() string {
	if e.Kind == ExpiredTTL {
		return fmt.Sprintf("ttl %s expired %s ago", ShortDuration(e.Limit), ShortDuration(e.Ago))
	}
	return fmt.Sprintf("no push or request for %s (stale after %s)", ShortDuration(e.Limit+e.Ago), ShortDuration(e.Limit))
}

// Expired reports whether a preview with lifetime l has expired at now:
// its TTL passed since Pushed, or (staleAfter > 0) staleAfter passed since
// Active. The TTL is checked first. Unknown times never expire. It is
// pure; `glimpse gc` and the daemon's reconcile both decide with it.
func (l Lifetime) Expired(now time.Time, staleAfter time.Duration) (Expiry, bool) {
	if l.TTL > 0 && !l.Pushed.IsZero() {
		if over := now.Sub(l.Pushed) - l.TTL; over > 0 {
			return Expiry{Kind: ExpiredTTL, Limit: l.TTL, Ago: over}, true
		}
	}
	if staleAfter > 0 && !l.Active.IsZero() {
		if over := now.Sub(l.Active) - staleAfter; over > 0 {
			return Expiry{Kind: ExpiredStale, Limit: staleAfter, Ago: over}, true
		}
	}
	return Expiry{}, false
}

// ShortDuration writes d in its largest whole unit, rounded down: "8d",
// "3h", "12m", "5s" ("0s" below a second).
func ShortDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d >= time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(max(d, 0)/time.Second), 10) + "s"
}

// Package idle decides when preview functions go to sleep and puts them
// there. Policy is the pure decision (no I/O, time passed in); the
// controller observes activity, asks the policy and scales through
// preview.FunctionRuntime.
package idle

import (
	"sort"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// DefaultAfter is how long a preview may go without a request before the
// default policy puts it to sleep.
const DefaultAfter = 15 * time.Minute

// Policy is the default preview.IdlePolicy. A function is idle when it has
// replicas, nothing in flight, is not always-on, and its last activity is
// at least its idle-after (Observation.IdleAfter, else After, else
// DefaultAfter) before now. A zero LastActivity counts as long ago.
//
// When MaxAwake is positive and more functions would stay awake than that,
// the least recently active ones that are neither always-on nor busy are
// put to sleep too, oldest first. Policy is a value: safe for concurrent use.
type Policy struct {
	After    time.Duration
	MaxAwake int
}

var _ preview.IdlePolicy = Policy{}

// Idle returns the names of the functions in obs to scale to zero, in the
// order of obs for idle ones, then oldest first for those over MaxAwake.
func (p Policy) Idle(now time.Time, obs []preview.Observation) []string {
	after := p.After
	if after <= 0 {
		after = DefaultAfter
	}
	var out []string
	var awake []preview.Observation
	for _, o := range obs {
		if o.Replicas <= 0 {
			continue
		}
		if o.AlwaysOn || o.InFlight > 0 {
			awake = append(awake, o)
			continue
		}
		a := after
		if o.IdleAfter > 0 {
			a = o.IdleAfter
		}
		if !now.Before(o.LastActivity.Add(a)) {
			out = append(out, o.Function)
			continue
		}
		awake = append(awake, o)
	}
	if p.MaxAwake <= 0 || len(awake) <= p.MaxAwake {
		return out
	}
	sort.SliceStable(awake, func(i, j int) bool { return awake[i].LastActivity.Before(awake[j].LastActivity) })
	excess := len(awake) - p.MaxAwake
	for _, o := range awake {
		if excess == 0 {
			break
		}
		if o.AlwaysOn || o.InFlight > 0 {
			continue
		}
		out = append(out, o.Function)
		excess--
	}
	return out
}

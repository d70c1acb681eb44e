package preview

import (
	"strconv"
)

// Ownership labels. Every resource Glimpse creates carries them; Down, gc
// and a restarted daemon find resources by them. LabelVersion records the
// format so that a future change can still recognise older resources.
const (
	LabelPrefix     = "glimpse.dev/"
	LabelManagedBy  = LabelPrefix + "managed-by"
	LabelVersion    = LabelPrefix + "labels-version"
	LabelOwner      = LabelPrefix + "owner"
	LabelApp        = LabelPrefix + "app"
	LabelPR         = LabelPrefix + "pr"
	LabelCommit     = LabelPrefix + "commit"
	LabelSourceHash = LabelPrefix + "source-hash"

	// AnnotationRoutes on a function lists its route paths, comma
	// separated.
	AnnotationRoutes = LabelPrefix + "routes"
	// AnnotationIdleAfter on a function overrides the idle duration
	// ("2s", "15m"); the idle controller reads it.
	AnnotationIdleAfter = LabelPrefix + "idle-after"
	// AnnotationAlwaysOn ("true") on a function keeps it awake: the
	// per-function opt-out of scale to zero.
	AnnotationAlwaysOn = LabelPrefix + "always-on"
	// LabelTTL on a route is the preview's glimpse.yaml ttl ("7d"), and
	// LabelDeployedAt the Unix second its last Up switched the route; gc
	// and the daemon expire previews by them (see Lifetime).
	LabelTTL        = LabelPrefix + "ttl"
	LabelDeployedAt = LabelPrefix + "deployed-at"

	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "glimpse"
	// LabelsVersionValue is the current ownership label format.
	LabelsVersionValue = "1"
	// DefaultOwner is the owner of resources when none is configured.
	DefaultOwner = "default"
)

// Labels are key/value pairs attached to resources.
type Labels map[string]string

// OwnerLabels returns the ownership labels of a target's resources.
func OwnerLabels(owner string, t Target) Labels {
	if owner == "" {
		owner = DefaultOwner
	}
	return Labels{
		LabelManagedBy: ManagedByValue,
		LabelVersion:   LabelsVersionValue,
		LabelOwner:     owner,
		LabelApp:       t.App,
		LabelPR:        strconv.Itoa(t.PR),
		LabelCommit:    t.Commit,
	}
}

// AnyOwner, as the owner of Selector (and of a Pipeline that only lists),
// selects the resources of every owner: the daemon's dashboard and
// metrics show every Glimpse preview on their providers. It is not a valid
// owner to deploy with (owners are DNS labels).
const AnyOwner = "*"

// Selector returns the labels that select every resource of owner (every
// owner's for AnyOwner), narrowed to app when app is not empty and to pr
// when pr is positive.
func Selector(owner, app string, pr int) Labels {
	if owner == "" {
		owner = DefaultOwner
	}
	s := Labels{LabelManagedBy: ManagedByValue, LabelOwner: owner}
	if owner == AnyOwner {
		delete(s, LabelOwner)
	}
	if app != "" {
		s[LabelApp] = app
	}
	if pr > 0 {
		s[LabelPR] = strconv.Itoa(pr)
	}
	return s
}

// Matches reports whether l has every key of selector with the same value.
// An empty selector matches everything.
func (l Labels) Matches(selector Labels) bool {
	for k, v := range selector {
		if got, ok := l[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Target reads the target back from ownership labels. ok is false when the
// labels are not Glimpse's or are incomplete.
func (l Labels) Target() (t Target, ok bool) {
	if l[LabelManagedBy] != ManagedByValue {
		return Target{}, false
	}
	pr, err := strconv.Atoi(l[LabelPR])
	if err != nil || l[LabelApp] == "" {
		return Target{}, false
	}
	return Target{App: l[LabelApp], PR: pr, Commit: l[LabelCommit]}, true
}

// Clone returns a copy of l (nil for nil).
func (l Labels) Clone() Labels {
	if l == nil {
		return nil
	}
	c := make(Labels, len(l))
	for k, v := range l {
		c[k] = v
	}
	return c
}

// With returns a copy of l with the given key set to value.
func (l Labels) With(key, value string) Labels {
	c := l.Clone()
	if c == nil {
		c = Labels{}
	}
	c[key] = value
	return c
}

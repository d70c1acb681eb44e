package preview

import (
	"strings"
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"7d", 7 * 24 * time.Hour, ""},
		{"36h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"1s", time.Second, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"", 0, "empty"},
		{"7", 0, "not a duration such as 7d"},
		{"d", 0, "not a duration such as 7d"},
		{"7w", 0, "(units d, h, m, s)"},
		{"0d", 0, "longer than zero"},
		{"-1d", 0, "not a duration"},
		{"1.5d", 0, "not a duration"},
		{"99999999999999d", 0, "too long"},
		{"1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d", 0, "too long for a duration"}, // a label value is at most 63
	} {
		got, err := ParseTTL(c.in)
		if c.err == "" && (err != nil || got != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v, %q", c.in, got, err, c.want, c.err)
		}
	}
}

// A bad ttl in glimpse.yaml is one line naming the key.
func TestSpecTTLValidated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := Spec{App: "a", Assets: &AssetsSpec{Dir: "."}, TTL: "7 days"}
	err := s.Validate(dir)
	if err == nil || CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), `glimpse.yaml: ttl: "7 days" is not a duration such as 7d, 36h or 90m`) {
		t.Fatalf("Validate with ttl %q: %v", s.TTL, err)
	}
	s.TTL = "7d"
	if err := s.Validate(dir); err != nil {
		t.Fatal(err)
	}
}

func TestLifetimeExpired(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	day := 24 * time.Hour
	for _, c := range []struct {
		name  string
		l     Lifetime
		stale time.Duration
		want  string // "" not expired
	}{
		{"ttl passed", Lifetime{TTL: 7 * day, Pushed: t0.Add(-15 * day), Active: t0.Add(-time.Hour)}, 0, "ttl 7d expired 8d ago"},
		{"ttl passed, recent requests do not count", Lifetime{TTL: 7 * day, Pushed: t0.Add(-8 * day), Active: t0}, 30 * day, "ttl 7d expired 1d ago"},
		{"ttl not yet", Lifetime{TTL: 7 * day, Pushed: t0.Add(-6 * day), Active: t0.Add(-6 * day)}, 0, ""},
		{"no ttl", Lifetime{Pushed: t0.Add(-100 * day), Active: t0.Add(-100 * day)}, 0, ""},
		{"unknown push never expires a ttl", Lifetime{TTL: time.Second}, 0, ""},
		{"stale", Lifetime{Pushed: t0.Add(-5 * day), Active: t0.Add(-3 * day)}, 2 * day, "no push or request for 3d (stale after 2d)"},
		{"requested: not stale", Lifetime{Pushed: t0.Add(-5 * day), Active: t0.Add(-time.Hour)}, 2 * day, ""},
		{"unknown activity is never stale", Lifetime{}, time.Second, ""},
	} {
		e, ok := c.l.Expired(t0, c.stale)
		if got := map[bool]string{true: e.String()}[ok]; got != c.want {
			t.Errorf("%s: expired %v %q, want %q", c.name, ok, got, c.want)
		}
	}
}

// The route carries the lifetime; List reads it back, and a preview's
// Lifetime is the newer of its deploy and its last request.
func TestLifetimeLabelsRoundTrip(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	l := lifetimeLabels(Labels{LabelApp: "a", LabelTTL: "old"}, "7d", t0)
	if l[LabelTTL] != "7d" || l[LabelDeployedAt] != "1800000000" {
		t.Fatalf("labels %v", l)
	}
	if l2 := lifetimeLabels(l, "", t0); l2[LabelTTL] != "" {
		t.Fatalf("a spec without ttl keeps %q", l2[LabelTTL])
	}
	var pv Preview
	readLifetime(&pv, l)
	req := t0.Add(time.Hour)
	pv.LastRequest = &req
	if got := pv.Lifetime(); got.TTL != 7*24*time.Hour || !got.Pushed.Equal(t0) || !got.Active.Equal(req) {
		t.Fatalf("lifetime %+v", got)
	}
	readLifetime(&pv, Labels{LabelTTL: "soon", LabelDeployedAt: "yesterday"})
	if pv.TTL != "" || pv.DeployedAt != nil {
		t.Fatalf("malformed labels read as %q, %v", pv.TTL, pv.DeployedAt)
	}
}

package preview

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	commitRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	// The OCI distribution spec's tag grammar.
	ociTagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	hex8RE   = regexp.MustCompile(`-[0-9a-f]{8}$`)
)

// FuzzNames checks the names Glimpse derives from a target: the
// validators agree with the grammars they implement; for every valid
// target the function name, host, image tag, asset prefix and ownership
// labels are valid, within their length limits, deterministic and
// unchanged when short enough; Shorten keeps its contract for any name
// and limit; SanitizeLabel always yields a DNS label and is idempotent.
func FuzzNames(f *testing.F) {
	f.Fuzz(func(t *testing.T, app string, pr int, commit, domain, name string, max uint8) {
		// The validators implement their grammars.
		if (ValidateDNSLabel(app) == nil) != dnsLabelRE.MatchString(app) {
			t.Fatalf("ValidateDNSLabel(%q) = %v, grammar says %v", app, ValidateDNSLabel(app), dnsLabelRE.MatchString(app))
		}
		if (ValidateCommit(commit) == nil) != commitRE.MatchString(commit) {
			t.Fatalf("ValidateCommit(%q) = %v, grammar says %v", commit, ValidateCommit(commit), commitRE.MatchString(commit))
		}
		if err := ValidateCommit(commit); err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Fatalf("ValidateCommit error is not one line: %q", err)
		}

		// Shorten, for any name and limit.
		m := int(max)
		s := Shorten(name, m)
		if s != Shorten(name, m) {
			t.Fatalf("Shorten(%q, %d) is not deterministic", name, m)
		}
		if len(name) <= m {
			if s != name {
				t.Fatalf("Shorten(%q, %d) = %q, want it unchanged", name, m, s)
			}
		} else {
			if len(s) > m {
				t.Fatalf("Shorten(%q, %d) = %q: too long", name, m, s)
			}
			if strings.HasSuffix(s, "-") {
				t.Fatalf("Shorten(%q, %d) = %q ends in '-'", name, m, s)
			}
			if m > hashSuffixLen && !hex8RE.MatchString(s) {
				t.Fatalf("Shorten(%q, %d) = %q: no hash suffix", name, m, s)
			}
			if other := name + "x"; Shorten(other, m) == s && m > hashSuffixLen {
				t.Fatalf("Shorten(%q) = Shorten(%q) = %q", name, other, s)
			}
		}

		// SanitizeLabel turns anything into a DNS label, and labels into
		// themselves.
		l := SanitizeLabel(name)
		if !dnsLabelRE.MatchString(l) {
			t.Fatalf("SanitizeLabel(%q) = %q: not a DNS label", name, l)
		}
		if again := SanitizeLabel(l); again != l {
			t.Fatalf("SanitizeLabel(%q) = %q, but SanitizeLabel(%q) = %q", name, l, l, again)
		}
		if dnsLabelRE.MatchString(name) && !strings.Contains(name, "--") && l != name {
			t.Fatalf("SanitizeLabel(%q) = %q, want the label unchanged", name, l)
		}

		tg := Target{App: app, PR: pr, Commit: commit}
		if err := tg.Validate(); err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") || CodeOf(err) != InvalidArgument {
				t.Fatalf("Validate(%+v) = %q (code %v)", tg, err, CodeOf(err))
			}
			return
		}

		fn := FunctionName(app, pr)
		if !dnsLabelRE.MatchString(fn) || fn != FunctionName(app, pr) {
			t.Fatalf("FunctionName(%q, %d) = %q: not a stable DNS label", app, pr, fn)
		}
		if full := app + "-pr-" + strconv.Itoa(pr); len(full) <= MaxDNSLabel && fn != full {
			t.Fatalf("FunctionName(%q, %d) = %q, want %q", app, pr, fn, full)
		}
		if (Function{Name: fn, Image: "i"}).Validate() != nil {
			t.Fatalf("Function.Validate refuses FunctionName %q", fn)
		}
		if pr < 1<<31 && FunctionName(app, pr+1) == fn {
			t.Fatalf("FunctionName(%q, %d) = FunctionName(.., %d) = %q", app, pr, pr+1, fn)
		}

		tag := ImageTag(tg)
		if !ociTagRE.MatchString(tag) || tag != ImageTag(tg) {
			t.Fatalf("ImageTag(%+v) = %q: not a stable OCI tag", tg, tag)
		}
		if tag != strings.ToLower(tag) || !strings.HasSuffix(tag, "-"+tg.ShortCommit()) && len("pr-"+strconv.Itoa(pr)+"-"+tg.ShortCommit()) <= MaxTag {
			t.Fatalf("ImageTag(%+v) = %q", tg, tag)
		}

		if ap := AssetPrefix(app, pr); ValidateAssetPrefix(ap) != nil {
			t.Fatalf("AssetPrefix(%q, %d) = %q: %v", app, pr, ap, ValidateAssetPrefix(ap))
		}

		labels := OwnerLabels(domain, tg)
		if back, ok := labels.Target(); !ok || back != tg {
			t.Fatalf("OwnerLabels(%+v).Target() = %+v, %v", tg, back, ok)
		}
		if !labels.Matches(Selector(domain, app, pr)) || !labels.Matches(Selector(domain, "", 0)) {
			t.Fatalf("OwnerLabels(%q, %+v) do not match their selector", domain, tg)
		}
		for k, v := range labels {
			if k == LabelOwner {
				continue // configured, not derived
			}
			if len(v) > MaxLabelValue || v != "" && !commitRE.MatchString(v) {
				t.Fatalf("label %s=%q is longer than %d", k, v, MaxLabelValue)
			}
		}

		// Hosts: every label Glimpse adds is a DNS label, and the host
		// is already normalised (the edge looks routes up by the
		// normalised Host header).
		for _, d := range []string{domain, "", "localhost", "previews.example.com."} {
			h := Host(app, pr, d)
			if h != Host(app, pr, d) {
				t.Fatalf("Host(%q, %d, %q) is not deterministic", app, pr, d)
			}
			labels := strings.SplitN(h, ".", 3)
			if len(labels) < 2 || labels[0] != "pr-"+strconv.Itoa(pr) || !dnsLabelRE.MatchString(labels[1]) {
				t.Fatalf("Host(%q, %d, %q) = %q", app, pr, d, h)
			}
			dd := strings.TrimSuffix(d, ".")
			if dd == "" || ValidateHost(dd) != nil {
				continue
			}
			if len(h) <= 253 {
				if err := ValidateHost(h); err != nil {
					t.Fatalf("Host(%q, %d, %q) = %q: %v", app, pr, d, h, err)
				}
			}
			if NormalizeHost(h) != h || NormalizeHost(h+".") != h || NormalizeHost(strings.ToUpper(h)+":8080") != h {
				t.Fatalf("Host(%q, %d, %q) = %q is not normalised", app, pr, d, h)
			}
		}
	})
}

package preview

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the names Glimpse derives.
const (
	// MaxDNSLabel is the longest RFC 1123 label (and Kubernetes name of the
	// DNS-label kind): 63 characters.
	MaxDNSLabel = 63
	// MaxTag is the longest OCI tag: 128 characters.
	MaxTag = 128
	// MaxLabelValue is the longest Kubernetes label value.
	MaxLabelValue = 63
	// ShortCommitLen is how many characters of a commit go into tags.
	ShortCommitLen = 7
	// hashSuffixLen is the length of the stable hash that replaces the tail
	// of a name that is too long.
	hashSuffixLen = 8
)

// Target identifies one preview: an app's pull request at a commit.
type Target struct {
	App    string `json:"app"`
	PR     int    `json:"pr"`
	Commit string `json:"commit"`
}

// Validate checks that the app is a DNS label, the PR number is positive and
// the commit is a plausible revision (letters, digits, '.', '_', '-', at
// most 63 characters, so it fits a label value). It returns an
// InvalidArgument error naming the bad field.
func (t Target) Validate() error {
	if err := ValidateDNSLabel(t.App); err != nil {
		return Errorf(InvalidArgument, "app name %q: %v", t.App, err)
	}
	if t.PR <= 0 {
		return Errorf(InvalidArgument, "pull request number must be a positive integer, got %d", t.PR)
	}
	if err := ValidateCommit(t.Commit); err != nil {
		return err
	}
	return nil
}

// ValidateCommit checks a commit identifier (see Target.Validate).
func ValidateCommit(c string) error {
	if c == "" {
		return Errorf(InvalidArgument, "commit must not be empty")
	}
	if len(c) > MaxLabelValue {
		return Errorf(InvalidArgument, "commit %q is longer than %d characters", c, MaxLabelValue)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		ok := isAlnum(b) || (i > 0 && (b == '.' || b == '_' || b == '-'))
		if !ok {
			return Errorf(InvalidArgument, "commit %q may only hold letters, digits, '.', '_' and '-'", c)
		}
	}
	return nil
}

// ShortCommit returns the first ShortCommitLen characters of the commit,
// lower-cased.
func (t Target) ShortCommit() string {
	c := strings.ToLower(t.Commit)
	if len(c) > ShortCommitLen {
		c = c[:ShortCommitLen]
	}
	return c
}

// String returns "app#pr@commit" for messages.
func (t Target) String() string {
	return fmt.Sprintf("%s#%d@%s", t.App, t.PR, t.ShortCommit())
}

// FunctionName returns the function (and Kubernetes object) name of the
// target's preview, "hello-pr-42": a DNS label, shortened with a stable hash
// when the app name makes it too long.
func FunctionName(app string, pr int) string {
	return Shorten(app+"-pr-"+strconv.Itoa(pr), MaxDNSLabel)
}

// Host returns the preview's host name under baseDomain, "pr-42.hello.example.com".
// Each label is kept within MaxDNSLabel.
func Host(app string, pr int, baseDomain string) string {
	h := "pr-" + strconv.Itoa(pr) + "." + Shorten(app, MaxDNSLabel)
	if baseDomain != "" {
		h += "." + strings.TrimSuffix(baseDomain, ".")
	}
	return h
}

// ImageTag returns the image tag of the target, "pr-42-3f2c1ab", a valid OCI tag.
func ImageTag(t Target) string {
	return Shorten("pr-"+strconv.Itoa(t.PR)+"-"+t.ShortCommit(), MaxTag)
}

// AssetPrefix returns the key prefix under which the asset manifests of a
// pull request live, "hello/pr-42". Each Up publishes its own manifest below
// it, "hello/pr-42/7-3f2c1ab" (generation and short commit), so that no two
// Ups write the same manifest; the route names the one it serves.
func AssetPrefix(app string, pr int) string {
	return app + "/pr-" + strconv.Itoa(pr)
}

// Shorten returns name unchanged when it has at most max characters;
// otherwise it keeps a prefix and appends "-" and a stable 8-hex-digit hash
// of the whole name, so that distinct long names stay distinct and the same
// name always shortens the same way. The result never ends in '-'.
func Shorten(name string, max int) string {
	if len(name) <= max {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:hashSuffixLen]
	keep := max - hashSuffixLen - 1
	if keep < 0 {
		return suffix[:max]
	}
	prefix := strings.TrimRight(name[:keep], "-.")
	return prefix + "-" + suffix
}

// ValidateDNSLabel checks s against RFC 1123 label rules as Kubernetes
// applies them: 1 to 63 characters, lower-case letters, digits and '-',
// starting and ending with a letter or digit.
func ValidateDNSLabel(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > MaxDNSLabel {
		return fmt.Errorf("must be at most %d characters, has %d", MaxDNSLabel, len(s))
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case b == '-' && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit")
		}
	}
	return nil
}

// SanitizeLabel turns an arbitrary string (a branch name, say) into a DNS
// label: lower-cased, every run of other characters replaced by one '-',
// trimmed, shortened with Shorten. It returns "x" for an empty result.
func SanitizeLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out == "" {
		return "x"
	}
	return strings.TrimRight(Shorten(out, MaxDNSLabel), "-")
}

func isAlnum(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

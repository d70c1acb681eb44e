package preview

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
)

// SecretsDir is where a function finds its secrets, one file per secret
// named like it, as OpenFaaS delivers them. A runtime that cannot put them
// there (faas/localfaas without its sandbox) says where in the function's
// environment variable EnvSecretsDir.
const SecretsDir = "/var/openfaas/secrets"

// EnvSecretsDir, when a runtime sets it, overrides SecretsDir for the
// function (see SecretsDir). Functions read a secret from
// $GLIMPSE_SECRETS_DIR/<name>, or SecretsDir/<name> when it is unset.
const EnvSecretsDir = "GLIMPSE_SECRETS_DIR"

// AnnotationSecretsHash on a function is SecretsHash of its secrets: what
// the deployed function says of its secrets instead of their values, so an
// unchanged Up stays a no-op and a changed value redeploys.
const AnnotationSecretsHash = LabelPrefix + "secrets-hash"

// SecretsRuntime is an optional interface of a FunctionRuntime: one that
// delivers Function.Secrets and SecretNames as Function says (files in
// SecretsDir that only the function reads) answers true. The Pipeline
// refuses to deploy a function with secrets (function.secrets,
// function.database) to a runtime without it, with FailedPrecondition, so
// that a runtime that would drop them fails the Up instead of deploying a
// function without its database. Wrappers forward their runtime's answer.
type SecretsRuntime interface {
	DeliversSecrets() bool
}

// deliversSecrets reports whether rt is a SecretsRuntime that says so.
func deliversSecrets(rt FunctionRuntime) bool {
	sr, ok := rt.(SecretsRuntime)
	return ok && sr.DeliversSecrets()
}

// maxSecretName is the longest secret name: a DNS-1123 subdomain, what
// Kubernetes Secrets (faas-netes) accept.
const maxSecretName = 253

// ValidateSecretName checks that name can name a secret on every runtime
// and as a file: 1 to 253 characters of lower-case letters, digits, '-'
// and '.', starting and ending with a letter or digit (a DNS-1123
// subdomain, as faas-netes requires).
func ValidateSecretName(name string) error {
	if name == "" || len(name) > maxSecretName {
		return Errorf(InvalidArgument, "secret name %q must have 1 to %d characters", name, maxSecretName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' && c != '.' || i == 0 || i == len(name)-1) {
			return Errorf(InvalidArgument, "secret name %q: only lower-case letters, digits, '-' and '.' are allowed, starting and ending with a letter or digit", name)
		}
	}
	return nil
}

func (f Function) validateSecrets() error {
	seen := map[string]bool{}
	check := func(name string) error {
		if err := ValidateSecretName(name); err != nil {
			return Errorf(InvalidArgument, "function %s: %v", f.Name, err)
		}
		if seen[name] {
			return Errorf(InvalidArgument, "function %s: secret %q is given twice", f.Name, name)
		}
		seen[name] = true
		return nil
	}
	for _, name := range secretKeys(f.Secrets) {
		if err := check(name); err != nil {
			return err
		}
	}
	for _, name := range f.SecretNames {
		if err := check(name); err != nil {
			return err
		}
	}
	return nil
}

// SecretsHash returns "sha256:<hex>" over the function's name, its
// Secrets (names and values) and its SecretNames (names only: their values
// are the runtime's), or "" when it has none. It changes whenever a value
// Glimpse supplies changes. The values Glimpse supplies are random
// credentials (a database password), so the hash does not let anybody
// recover them; do not put guessable values in Function.Secrets.
func SecretsHash(f Function) string {
	if len(f.Secrets) == 0 && len(f.SecretNames) == 0 {
		return ""
	}
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	field("glimpse-secrets-v1")
	field(f.Name)
	for _, k := range secretKeys(f.Secrets) {
		field("value")
		field(k)
		field(f.Secrets[k])
	}
	names := slices.Clone(f.SecretNames)
	sort.Strings(names)
	for _, n := range names {
		field("name")
		field(n)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// AllSecretNames returns the names of f's secrets, Secrets and SecretNames
// together, sorted.
func AllSecretNames(f Function) []string {
	out := append(secretKeys(f.Secrets), f.SecretNames...)
	sort.Strings(out)
	return out
}

func secretKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

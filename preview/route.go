package preview

import (
	"strings"
)

// Validate checks a route: the host is a dotted name of DNS labels (lower
// case, no port), function paths are absolute and need a function. Routers
// call it before storing a route; errors have code InvalidArgument.
func (r Route) Validate() error {
	if err := ValidateHost(r.Host); err != nil {
		return err
	}
	if len(r.FunctionPaths) > 0 && r.Function == "" {
		return Errorf(InvalidArgument, "route %s: function paths %v need a function", r.Host, r.FunctionPaths)
	}
	if r.Function != "" {
		if err := ValidateDNSLabel(r.Function); err != nil {
			return Errorf(InvalidArgument, "route %s: function %q: %v", r.Host, r.Function, err)
		}
	}
	for _, p := range r.FunctionPaths {
		if !ValidFunctionPath(p) {
			return Errorf(InvalidArgument, "route %s: function path %q must be an absolute path such as /graphql, of letters, digits and / - _ . ~ %%", r.Host, p)
		}
	}
	return nil
}

// ValidFunctionPath reports whether p may be a function path prefix
// (glimpse.yaml's function.routes, Route.FunctionPaths): absolute, at
// most 256 bytes, and only letters, digits and "/-_.~%". The set is
// narrow on purpose: the paths come from the pull request, and routers
// write them into other systems' configuration (an ingress-nginx regex
// location, an HTTPRoute match), where a quote, semicolon, brace or
// newline could inject configuration.
func ValidFunctionPath(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > 256 {
		return false
	}
	for _, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("/-_.~%", c):
		default:
			return false
		}
	}
	return true
}

// ValidateHost checks that h is a lower-case host name made of DNS labels,
// without a port, at most 253 characters.
func ValidateHost(h string) error {
	if h == "" || len(h) > 253 {
		return Errorf(InvalidArgument, "host %q must be 1 to 253 characters", h)
	}
	for _, l := range strings.Split(h, ".") {
		if err := ValidateDNSLabel(l); err != nil {
			return Errorf(InvalidArgument, "host %q: label %q %v", h, l, err)
		}
	}
	return nil
}

// NormalizeHost lower-cases a Host header value and strips its port and a
// trailing dot, without allocating when nothing changes.
func NormalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// Validate checks a function before a runtime deploys it: the name is a DNS
// label, the image is set, Resources are valid (Resources.Validate), and
// every secret name (Secrets and SecretNames) is valid
// (ValidateSecretName) and given once. Runtimes call it first in
// Apply; errors have code InvalidArgument and never hold a secret's value.
func (f Function) Validate() error {
	if err := ValidateDNSLabel(f.Name); err != nil {
		return Errorf(InvalidArgument, "function name %q: %v", f.Name, err)
	}
	if f.Image == "" {
		return Errorf(InvalidArgument, "function %s: image must not be empty", f.Name)
	}
	if err := f.Resources.Validate("function " + f.Name + ": resources"); err != nil {
		return err
	}
	return f.validateSecrets()
}

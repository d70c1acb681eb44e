package preview

import (
	"math/big"
	"regexp"
	"strings"
)

// Resources are the CPU and memory a function's replicas reserve
// (Requests) and may not exceed (Limits), in Kubernetes quantity syntax
// ("100m", "0.5", "64Mi", "1G"). An empty field sets nothing: the
// runtime's (or the cluster's LimitRange's) default applies, and Glimpse
// adds none of its own. faas/kubefaas sets them on the container,
// faas/openfaas sends them as the deploy request's requests and limits,
// faas/localfaas ignores them (see its package comment).
type Resources struct {
	// Requests is what each replica reserves: the scheduler places a
	// replica only where this much is free.
	Requests ResourceList `json:"requests,omitzero" yaml:"requests,omitempty"`
	// Limits is the most each replica may use: a replica over its memory
	// limit is killed, one over its CPU limit is throttled.
	Limits ResourceList `json:"limits,omitzero" yaml:"limits,omitempty"`
}

// ResourceList is an amount of CPU and memory, each a Kubernetes quantity
// or empty (not set).
type ResourceList struct {
	// CPU in cores: "100m" is a tenth of a core, "2" two cores.
	CPU string `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	// Memory in bytes: "64Mi" (mebibytes), "128M" (megabytes), "1Gi".
	Memory string `json:"memory,omitempty" yaml:"memory,omitempty"`
}

// AnnotationResources on a function is its Resources.String() (absent
// when it sets none): what makes a changed resource a changed function
// for the Pipeline, whatever the runtime reports back.
const AnnotationResources = LabelPrefix + "resources"

// IsZero reports whether r sets nothing.
func (r Resources) IsZero() bool { return r == Resources{} }

// IsZero reports whether l sets nothing.
func (l ResourceList) IsZero() bool { return l == ResourceList{} }

// String is r in one canonical line, "requests.cpu=100m,limits.memory=128Mi"
// (only the fields set, in the order requests.cpu, requests.memory,
// limits.cpu, limits.memory), "" when r sets nothing. It is the value of
// AnnotationResources, so that a changed resource is a changed function.
func (r Resources) String() string {
	var parts []string
	for _, f := range r.fields() {
		if f.value != "" {
			parts = append(parts, f.key+"="+f.value)
		}
	}
	return strings.Join(parts, ",")
}

type resourceField struct {
	key, value string
	memory     bool
}

func (r Resources) fields() []resourceField {
	return []resourceField{
		{"requests.cpu", r.Requests.CPU, false},
		{"requests.memory", r.Requests.Memory, true},
		{"limits.cpu", r.Limits.CPU, false},
		{"limits.memory", r.Limits.Memory, true},
	}
}

// quantityRE is the grammar of a Kubernetes quantity without a sign
// (k8s.io/apimachinery/pkg/api/resource): a decimal number followed by a
// binary suffix (Ki..Ei), a decimal suffix (m, k, M..E) or an exponent.
var quantityRE = regexp.MustCompile(`^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$`)

var quantitySuffix = map[string]*big.Rat{
	"": big.NewRat(1, 1), "m": big.NewRat(1, 1000),
	"k": pow(10, 3), "M": pow(10, 6), "G": pow(10, 9), "T": pow(10, 12), "P": pow(10, 15), "E": pow(10, 18),
	"Ki": pow(2, 10), "Mi": pow(2, 20), "Gi": pow(2, 30), "Ti": pow(2, 40), "Pi": pow(2, 50), "Ei": pow(2, 60),
}

func pow(base, exp int64) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
}

// parseQuantity returns the value of q, a Kubernetes quantity, or false
// when q is not one.
func parseQuantity(q string) (*big.Rat, bool) {
	m := quantityRE.FindStringSubmatch(q)
	if m == nil {
		return nil, false
	}
	num, suffix := m[1], m[3]
	if strings.HasSuffix(num, ".") {
		num += "0"
	}
	if strings.HasPrefix(num, ".") {
		num = "0" + num
	}
	if len(suffix) > 1 && suffix[1] != 'i' { // an exponent, not E or Ei
		num, suffix = num+suffix, ""
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, false
	}
	return v.Mul(v, quantitySuffix[suffix]), true
}

// Validate checks r: every field set is a Kubernetes quantity, memory is
// at least one byte and CPU at least 1m when set, and no request is
// above its limit (the API server would refuse the function's pods).
// Errors have code InvalidArgument and name the key under where
// ("glimpse.yaml: function.resources", say): "where.limits.memory: ...".
func (r Resources) Validate(where string) error {
	vals := map[string]*big.Rat{}
	for _, f := range r.fields() {
		if f.value == "" {
			continue
		}
		v, ok := parseQuantity(f.value)
		example := "100m or 0.5 (cores)"
		if f.memory {
			example = "64Mi or 1Gi (bytes)"
		}
		if !ok {
			return Errorf(InvalidArgument, "%s.%s: %q is not a quantity such as %s", where, f.key, f.value, example)
		}
		min := big.NewRat(1, 1000)
		if f.memory {
			min = big.NewRat(1, 1)
		}
		if v.Cmp(min) < 0 {
			return Errorf(InvalidArgument, "%s.%s: %q is less than the least amount (%s)", where, f.key, f.value, map[bool]string{false: "1m", true: "1 byte"}[f.memory])
		}
		vals[f.key] = v
	}
	for _, k := range []string{"cpu", "memory"} {
		req, lim := vals["requests."+k], vals["limits."+k]
		if req != nil && lim != nil && req.Cmp(lim) > 0 {
			return Errorf(InvalidArgument, "%s.requests.%s: %s is more than limits.%s (%s)", where, k, r.get("requests."+k), k, r.get("limits."+k))
		}
	}
	return nil
}

func (r Resources) get(key string) string {
	for _, f := range r.fields() {
		if f.key == key {
			return f.value
		}
	}
	return ""
}

// Package yamlkeys is the one place that knows which YAML keys a Go type
// accepts, as gopkg.in/yaml.v3 decodes it: package config uses it to name
// the key of an error and to suggest a near key, and the reference
// generator (config/internal/refgen) to list every key with its type.
package yamlkeys

import (
	"reflect"
	"strings"
)

// Field is one key of a struct type as yaml.v3 decodes it.
type Field struct {
	// Key is the YAML key.
	Key string
	// Field is the struct field; for a field of an inlined struct, its
	// Index is relative to that struct (Path holds the full index).
	Field reflect.StructField
	// Path is the index sequence of the field from the outer struct
	// (reflect.Value.FieldByIndex).
	Path []int
	// Owner is the struct type that declares the field (an inlined
	// struct's type for its fields).
	Owner reflect.Type
}

// Fields returns the keys of struct type t (a pointer is dereferenced) in
// declaration order, with ",inline" structs flattened in place, "-" and
// unexported fields left out, and an untagged field keyed by its lower-case
// name, as yaml.v3 does (which inlines an embedded struct only with
// ",inline" too, and reads it even when its type is unexported). A non-struct type has no fields.
func Fields(t reflect.Type) []Field {
	t = Deref(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue // yaml.v3 reads embedded structs even when unexported
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if hasOpt(opts, "inline") {
			for _, in := range Fields(f.Type) {
				in.Path = append([]int{i}, in.Path...)
				out = append(out, in)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, Field{Key: name, Field: f, Path: []int{i}, Owner: t})
	}
	return out
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// Lookup returns the field of struct type t with key.
func Lookup(t reflect.Type, key string) (Field, bool) {
	for _, f := range Fields(t) {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Keys returns the keys of struct type t, in declaration order.
func Keys(t reflect.Type) []string {
	fs := Fields(t)
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.Key
	}
	return keys
}

// Deref strips pointers from t.
func Deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Suggest returns the candidate closest to key, when it is close enough to
// be what was meant: equal ignoring case, '-' and '_', or within an edit
// distance of 2 (1 for keys of up to 4 characters). It returns "" when no
// candidate is close. Ties go to the earlier candidate.
func Suggest(key string, candidates []string) string {
	k := fold(key)
	limit := 2
	if len(k) <= 4 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == key {
			continue
		}
		if d := distance(k, fold(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func fold(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// distance is the Levenshtein distance of a and b (insertions, deletions
// and substitutions of one byte cost 1; a swap of two adjacent bytes too).
func distance(a, b string) int {
	// d[i][j] over prefixes, three rows for the transposition rule.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Formats names the keys (dotted paths from the file's root) whose string
// values have a format beyond "any string"; the loader's errors and the
// JSON Schema say so: "duration" (a Go duration such as 15m) and
// "dns-label" (lower case letters, digits and '-', at most 63).
var Formats = map[string]string{
	"app":             "dns-label",
	"idle.after":      "duration",
	"providers.owner": "dns-label",
}

package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/config/internal/yamlkeys"
)

// yamlError turns an error of yaml.v3 decoding src into a value of type
// typ into one line that names the key by its dotted path and says what
// was wanted, in the file's terms: yaml.v3's own messages name Go types
// ("field route not found in type preview.FunctionSpec", "cannot unmarshal
// !!str into bool"). An unknown key gets "did you mean X?" when a key at
// its level is close (see yamlkeys.Suggest). Each of yaml.v3's decode
// error shapes is translated; any other message loses its "yaml: " prefix
// and, should it still hold a Go type name, is replaced by a plain one.
func yamlError(err error, src []byte, typ reflect.Type) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(plainYAML(err.Error()))
	}
	idx := indexYAML(src, typ)
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		msgs = append(msgs, idx.translate(m))
	}
	return errors.New(strings.Join(msgs, "; "))
}

var (
	reNotFound   = regexp.MustCompile("^line (\\d+): field (.+) not found in type \\S+$")
	reUnmarshal  = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into .+$")
	reDuplicate  = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	reAlreadySet = regexp.MustCompile("^line (\\d+): field (.+) already set in type \\S+$")
	reLine       = regexp.MustCompile(`^line (\d+): `)
	// reGoType finds what yaml.v3 prints of a Go type or value: a
	// qualified name (preview.Spec), a composite ([]string, map[string]x,
	// interface {}) or a Go-syntax value (%#v).
	reGoType = regexp.MustCompile(`\b[a-z][a-z0-9]*\.[A-Z]\w*|\[\]|map\[|interface \{|struct \{`)
)

// plainYAML is a yaml.v3 message that is not a *yaml.TypeError (syntax,
// anchors, aliases, merges) without its "yaml: " prefix, one line.
func plainYAML(s string) string {
	s = oneLine(s)
	if strings.HasPrefix(s, "invalid map key:") {
		return "a mapping key is a list or a mapping; keys must be plain text"
	}
	if reGoType.MatchString(s) {
		line := reLine.FindString(s)
		return line + "the YAML does not have the expected shape"
	}
	return s
}

// yamlEntry is a key or list item of the document, with the Go type the
// loader decodes its value into.
type yamlEntry struct {
	line  int
	key   string // the mapping key; "" for a list item
	path  string // dotted path from the root: function.routes[0]
	value *yaml.Node
	typ   reflect.Type // nil for an unknown key
	// keys are the keys allowed beside this one (for an unknown key).
	keys []string
	// badKey marks a key that is a list or a mapping (value is the key).
	badKey bool
}

type yamlIndex []yamlEntry

// indexYAML walks the first document of src along typ. It never fails: a
// document it cannot parse has an empty index.
func indexYAML(src []byte, typ reflect.Type) yamlIndex {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	var idx yamlIndex
	idx.walk(doc.Content[0], typ, "")
	return idx
}

func (idx *yamlIndex) walk(n *yaml.Node, typ reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		return // checked where the anchor is defined
	}
	t := yamlkeys.Deref(typ)
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		keys := yamlkeys.Keys(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if idx.badKey(k, path) {
				continue
			}
			e := yamlEntry{line: k.Line, key: k.Value, path: join(path, k.Value), value: v, keys: keys}
			if f, ok := yamlkeys.Lookup(t, k.Value); ok {
				e.typ = f.Field.Type
			}
			*idx = append(*idx, e)
			if e.typ != nil {
				idx.walk(v, e.typ, e.path)
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if idx.badKey(k, path) {
				continue
			}
			e := yamlEntry{line: k.Line, key: k.Value, path: join(path, k.Value), value: v, typ: t.Elem()}
			*idx = append(*idx, e)
			idx.walk(v, t.Elem(), e.path)
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			*idx = append(*idx, yamlEntry{line: v.Line, path: p, value: v, typ: t.Elem()})
			idx.walk(v, t.Elem(), p)
		}
	}
}

// badKey records key k of the mapping at path when it is not a scalar.
func (idx *yamlIndex) badKey(k *yaml.Node, path string) bool {
	if k.Kind == yaml.ScalarNode || k.Kind == yaml.AliasNode {
		return false
	}
	*idx = append(*idx, yamlEntry{line: k.Line, path: path, value: k, badKey: true})
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// find returns the entry whose key is on line (whose value starts on
// line, with byValue) and whose key is key, when key is set; with byValue,
// its value also has tag and, when value is set, starts with value (which
// yaml.v3 may have cut to "first chars...").
func (idx yamlIndex) find(line int, key string, byValue bool, tag, value string) (yamlEntry, bool) {
	for _, e := range idx {
		if key != "" && e.key != key {
			continue
		}
		if !byValue {
			if e.line == line {
				return e, true
			}
			continue
		}
		if e.value.Line != line || e.value.ShortTag() != tag {
			continue
		}
		if value != "" && !strings.HasPrefix(e.value.Value, strings.TrimSuffix(value, "...")) {
			continue
		}
		return e, true
	}
	return yamlEntry{}, false
}

// unknownKeys are the entries of keys the type does not have.
func (idx yamlIndex) unknownKeys() yamlIndex {
	var out yamlIndex
	for _, e := range idx {
		if e.typ == nil {
			out = append(out, e)
		}
	}
	return out
}

// translate rewrites one of a *yaml.TypeError's messages (formats from
// yaml.v3's decode.go: d.terror, d.mappingStruct, d.mapping).
func (idx yamlIndex) translate(m string) string {
	if s := reNotFound.FindStringSubmatch(m); s != nil {
		line, _ := strconv.Atoi(s[1])
		e, ok := idx.unknownKeys().find(line, s[2], false, "", "")
		if !ok {
			return fmt.Sprintf("line %s: unknown key %s", s[1], s[2])
		}
		msg := fmt.Sprintf("line %d: unknown key %s", line, e.path)
		if near := yamlkeys.Suggest(e.key, e.keys); near != "" {
			return msg + " (did you mean " + near + "?)"
		}
		return msg + " (known keys here: " + strings.Join(e.keys, ", ") + ")"
	}
	if s := reUnmarshal.FindStringSubmatch(m); s != nil {
		line, _ := strconv.Atoi(s[1])
		got := tagWords[s[2]]
		if got == "" {
			got = "a " + strings.TrimPrefix(s[2], "!!")
		}
		e, ok := idx.find(line, "", true, s[2], s[3])
		if !ok {
			return fmt.Sprintf("line %d: a value of the wrong type (%s)", line, got)
		}
		if e.badKey {
			where := "at the top level"
			if e.path != "" {
				where = "in " + e.path
			}
			return fmt.Sprintf("line %d: a mapping key %s is %s; keys must be plain text", line, where, got)
		}
		return fmt.Sprintf("line %d: %s: want %s, got %s", line, e.path, wantWords(e.path, e.typ), got)
	}
	if s := reDuplicate.FindStringSubmatch(m); s != nil {
		line, _ := strconv.Atoi(s[1])
		key, err := strconv.Unquote(s[2])
		if err != nil {
			key = s[2]
		}
		path := key
		if e, ok := idx.find(line, key, false, "", ""); ok {
			path = e.path
		}
		return fmt.Sprintf("line %d: key %s is given twice (first on line %s)", line, path, s[3])
	}
	if s := reAlreadySet.FindStringSubmatch(m); s != nil {
		line, _ := strconv.Atoi(s[1])
		path := s[2]
		if e, ok := idx.find(line, s[2], false, "", ""); ok {
			path = e.path
		}
		return fmt.Sprintf("line %d: key %s is given twice", line, path)
	}
	return plainYAML(m)
}

// tagWords describe what a YAML tag holds.
var tagWords = map[string]string{
	"!!str":       "text",
	"!!int":       "a number",
	"!!float":     "a number",
	"!!bool":      "true or false",
	"!!null":      "nothing",
	"!!seq":       "a list",
	"!!map":       "a mapping",
	"!!timestamp": "a timestamp",
	"!!binary":    "binary data",
}

// wantWords describes what the key at path holds, of Go type t.
func wantWords(path string, t reflect.Type) string {
	switch yamlkeys.Formats[path] {
	case "duration":
		return "a duration such as 15m"
	case "dns-label":
		return "a name of lower case letters, digits and -"
	}
	t = yamlkeys.Deref(t)
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(t.Elem())
	case reflect.Map:
		return "a mapping of names to " + plural(t.Elem())
	case reflect.Struct:
		return "a mapping with the keys " + strings.Join(yamlkeys.Keys(t), ", ")
	}
	return "another kind of value"
}

func plural(t reflect.Type) string {
	switch yamlkeys.Deref(t).Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Struct, reflect.Map:
		return "mappings"
	}
	return "numbers"
}

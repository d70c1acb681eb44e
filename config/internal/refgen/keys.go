package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/config/internal/yamlkeys"
	"github.com/glimpse-dev/glimpse/preview"
)

// key is one key of glimpse.yaml as the reference shows it.
type key struct {
	Path  string // dotted: function.routes
	Field yamlkeys.Field
	Type  reflect.Type
	// Doc is the meaning: the note's, else the field's Go doc comment
	// in the file's terms. Empty is a defect the test reports.
	Doc string
	// Default is what the reference shows as the default (Markdown);
	// DefaultValue is the same as a value for the schema, nil when the
	// default is not a literal value.
	Default      string
	DefaultValue any
	// Example is a value of the key's type (decoded from YAML), as the
	// note wrote it in ExampleText.
	Example     any
	ExampleText string
	Required    bool
	Children    []*key
}

// keys walks the keys of typ (config.File) with their documentation,
// reading doc comments from the Go sources under moduleDir.
func keys(moduleDir string) ([]*key, error) {
	docs := &docReader{moduleDir: moduleDir, files: map[string][]*ast.File{}}
	defaults := computedDefaults()
	var walk func(prefix string, t reflect.Type) ([]*key, error)
	walk = func(prefix string, t reflect.Type) ([]*key, error) {
		var out []*key
		for _, f := range yamlkeys.Fields(t) {
			k := &key{Path: prefix + f.Key, Field: f, Type: f.Field.Type}
			n := notes[k.Path]
			k.Doc = n.Doc
			if k.Doc == "" {
				d, err := docs.fieldDoc(f)
				if err != nil {
					return nil, err
				}
				k.Doc = goDocToReference(d, f)
			}
			k.Required = n.Required
			if v, ok := defaults[k.Path]; ok {
				if n.Default != "" {
					return nil, fmt.Errorf("note for %s gives a default, but Spec.Defaults sets %v: drop the note's", k.Path, v)
				}
				k.DefaultValue = v
				k.Default = "`" + flowYAML(v) + "`"
			} else if n.DefaultValue != "" {
				if err := yaml.Unmarshal([]byte(n.DefaultValue), &k.DefaultValue); err != nil {
					return nil, fmt.Errorf("note for %s: default %q: %v", k.Path, n.DefaultValue, err)
				}
				k.Default = "`" + n.DefaultValue + "`"
				if n.Default != "" {
					k.Default += " " + n.Default
				}
			} else {
				k.Default = n.Default
			}
			if n.Example != "" {
				if err := decodeStrict(n.Example, k.Type); err != nil {
					return nil, fmt.Errorf("note for %s: example %q is not a %s: %v", k.Path, n.Example, k.Type, err)
				}
				if err := yaml.Unmarshal([]byte(n.Example), &k.Example); err != nil {
					return nil, err
				}
				k.ExampleText = n.Example
			}
			if et := yamlkeys.Deref(k.Type); et.Kind() == reflect.Struct {
				c, err := walk(k.Path+".", et)
				if err != nil {
					return nil, err
				}
				k.Children = c
			}
			out = append(out, k)
		}
		return out, nil
	}
	return walk("", reflect.TypeOf(config.File{}))
}

// computedDefaults are the defaults Spec.Defaults fills in, by key path:
// the reference shows what the code does, so they cannot drift.
func computedDefaults() map[string]any {
	s := preview.Spec{Function: &preview.FunctionSpec{}, Assets: &preview.AssetsSpec{}}
	s.Defaults()
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		for _, f := range yamlkeys.Fields(v.Type()) {
			fv := v.FieldByIndex(f.Path)
			switch {
			case yamlkeys.Deref(fv.Type()).Kind() == reflect.Struct:
				walk(prefix+f.Key+".", fv)
			case !fv.IsZero():
				out[prefix+f.Key] = fv.Interface()
			}
		}
	}
	walk("", reflect.ValueOf(s))
	return out
}

func flowYAML(v any) string {
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	n.Style = yaml.FlowStyle
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}

// decodeStrict decodes YAML text into a new value of type t, refusing
// unknown keys.
func decodeStrict(text string, t reflect.Type) error {
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	return dec.Decode(reflect.New(t).Interface())
}

// docReader reads the doc comments of struct fields from Go source.
type docReader struct {
	moduleDir string
	files     map[string][]*ast.File // by package path
}

const modulePath = "github.com/glimpse-dev/glimpse"

// fieldDoc returns the doc comment of f (its own, or the comment after it
// on the same line), as text.
func (r *docReader) fieldDoc(f yamlkeys.Field) (string, error) {
	pkg, typeName := f.Owner.PkgPath(), f.Owner.Name()
	files, ok := r.files[pkg]
	if !ok {
		rel, found := strings.CutPrefix(pkg, modulePath)
		if !found {
			return "", fmt.Errorf("type %s.%s is outside the module", pkg, typeName)
		}
		dir := filepath.Join(r.moduleDir, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
		fset := token.NewFileSet()
		matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, m := range matches {
			if strings.HasSuffix(m, "_test.go") {
				continue
			}
			src, err := os.ReadFile(m)
			if err != nil {
				return "", err
			}
			af, err := parser.ParseFile(fset, m, src, parser.ParseComments)
			if err != nil {
				return "", err
			}
			files = append(files, af)
		}
		r.files[pkg] = files
	}
	for _, af := range files {
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if ts.Name.Name != typeName || !ok {
					continue
				}
				for _, fl := range st.Fields.List {
					for _, n := range fl.Names {
						if n.Name == f.Field.Name {
							return fl.Doc.Text() + fl.Comment.Text(), nil
						}
					}
				}
			}
		}
	}
	return "", fmt.Errorf("no declaration of %s.%s.%s in %s", pkg, typeName, f.Field.Name, r.moduleDir)
}

var reSeeIdent = regexp.MustCompile(` ?\(see [A-Z]\w*(\.\w+)?\)`)

// goDocToReference turns a field's Go doc comment into the reference's
// words: one paragraph, the leading field name dropped ("Dir is the
// directory" becomes "The directory"), the Go names of the struct's other
// fields replaced by their keys, and "(see GoName)" removed.
func goDocToReference(doc string, f yamlkeys.Field) string {
	s := strings.Join(strings.Fields(doc), " ")
	if s == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(s, f.Field.Name+" "); ok {
		for _, verb := range []string{"is ", "are "} {
			rest = strings.TrimPrefix(rest, verb)
		}
		rest = strings.TrimPrefix(rest, ", ")
		s = upperFirst(rest)
	}
	s = reSeeIdent.ReplaceAllString(s, "")
	for _, o := range yamlkeys.Fields(f.Owner) {
		if o.Field.Name == f.Field.Name {
			continue
		}
		s = regexp.MustCompile(`\b`+o.Field.Name+`\b`).ReplaceAllString(s, "`"+o.Key+"`")
	}
	return s
}

func upperFirst(s string) string {
	for i, r := range s {
		return string(unicode.ToUpper(r)) + s[i+len(string(r)):]
	}
	return s
}

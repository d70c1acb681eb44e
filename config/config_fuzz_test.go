package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// FuzzParse feeds arbitrary glimpse.yaml content to Parse and Load (in an
// app directory with a function, assets and stack files) and checks that
// they never panic, that every error is one non-empty line (with code
// InvalidArgument from Load), that a key the File type does not know
// (or a null key) is always an error, that parsing is deterministic with
// the defaults applied, and that what Load accepts has a valid app name
// and something to deploy.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	for name, content := range map[string]string{
		"function/main.go":  "package main",
		"public/index.html": "hi",
		"fn/main.go":        "package main",
		"stack.yml":         "version: 1.0\nprovider: {name: openfaas, gateway: http://127.0.0.1:8080}\nfunctions:\n  shop:\n    lang: golang-middleware\n    handler: ./fn\n    environment: {A: \"1\"}\n    environment_file: [env.yml]\n    labels: {team: a}\n  other:\n    handler: ./function\n",
		"env.yml":           "environment: {B: \"2\"}\n",
		"bad-stack.yml":     "provider: {name: swarm}\nfunctions: {a: {}}\n",
		"escape-stack.yml":  "provider: {name: openfaas}\nfunctions:\n  shop:\n    handler: ../..\n    environment_file: [../../etc/passwd]\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	yml := filepath.Join(dir, FileName)
	lookup := func(k string) (string, bool) {
		if k == "SET" {
			return "value", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			checkOneLine(t, "Parse", err)
		} else {
			if key := unknownKey(data); key != "" {
				t.Fatalf("Parse accepted unknown key %s in\n%q", key, data)
			}
			// Parsing is deterministic and applies the defaults once for
			// all. (No yaml.Marshal round trip: Glimpse never writes the
			// file, and yaml.v3 writes "\n" as a block scalar that reads
			// back empty; see seed bc87655f3bbee028.)
			again, err := Parse(data)
			if err != nil || !reflect.DeepEqual(p, again) {
				t.Fatalf("Parse(%q) is not deterministic: %+v, then %+v, %v", data, p, again, err)
			}
			again.Spec.Defaults()
			if !reflect.DeepEqual(p, again) {
				t.Fatalf("Parse(%q) left defaults to apply: %+v, then %+v", data, p, again)
			}
		}
		if err := os.WriteFile(yml, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := load(dir, lookup)
		if err != nil {
			checkOneLine(t, "Load", err)
			if c := preview.CodeOf(err); c != preview.InvalidArgument {
				t.Fatalf("Load(%q): code %v, want InvalidArgument: %v", data, c, err)
			}
			return
		}
		if p == nil {
			t.Fatalf("Load accepted %q, which Parse refuses", data)
		}
		if verr := preview.ValidateDNSLabel(l.App); verr != nil {
			t.Fatalf("Load accepted app %q: %v", l.App, verr)
		}
		if l.Function == nil && l.Assets == nil {
			t.Fatalf("Load accepted %q with nothing to deploy", data)
		}
	})
}

func checkOneLine(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("%s error is not one line: %q", what, msg)
	}
	if goTypeName.MatchString(msg) {
		t.Fatalf("%s error shows a Go type: %q", what, msg)
	}
}

// goTypeName matches what yaml.v3 prints of Go types and values.
var goTypeName = regexp.MustCompile(`\b(preview|config|yaml)\.[A-Z]\w*|map\[|\[\]\w|interface \{|in type |into (u?int|bool|string|float)`)

// unknownKey returns the path of the first key, in any YAML document of
// data, that type File has no field for; "" when there is none or data
// is not YAML.
func unknownKey(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return ""
			}
			return ""
		}
		if i > 0 && v != nil {
			return fmt.Sprintf("(in YAML document %d)", i+1)
		}
		if k := walkKeys(v, reflect.TypeOf(File{}), ""); k != "" {
			return k
		}
	}
}

// walkKeys checks the mapping keys of a generically decoded value v
// against the yaml tags of type t.
func walkKeys(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m := toMap(v)
		if m == nil {
			return ""
		}
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for k, sub := range m {
			ft, ok := fields[k]
			if !ok {
				return path + "." + k
			}
			if p := walkKeys(sub, ft, path+"."+k); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if s, ok := v.([]any); ok {
			for i, e := range s {
				if p := walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
					return p
				}
			}
		}
	case reflect.Map:
		for k, sub := range toMap(v) {
			if p := walkKeys(sub, t.Elem(), path+"."+k); p != "" {
				return p
			}
		}
	}
	return ""
}

func toMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case map[any]any:
		out := map[string]any{}
		for k, e := range m {
			out[fmt.Sprint(k)] = e
		}
		return out
	}
	return nil
}

func yamlFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			yamlFields(sf.Type, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out[name] = sf.Type
	}
}

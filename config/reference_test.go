package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// TestReferenceListsEveryKey keeps docs/glimpse-yaml.md in step with the
// loader: every key File accepts (walked from its yaml tags) has a row.
func TestReferenceListsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/glimpse-yaml.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")
			switch {
			case tag[0] == "-":
				continue
			case len(tag) > 1 && tag[1] == "inline":
				walk(prefix, f.Type)
				continue
			case tag[0] == "":
				continue
			}
			key := prefix + tag[0]
			keys = append(keys, key)
			if f.Type != reflect.TypeOf(preview.Labels{}) && f.Type.Kind() != reflect.Map {
				walk(key+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(File{}))
	if len(keys) < 10 {
		t.Fatalf("walked only %v: the walk is broken", keys)
	}
	for _, k := range keys {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("docs/glimpse-yaml.md has no row for key %q", k)
		}
	}
}

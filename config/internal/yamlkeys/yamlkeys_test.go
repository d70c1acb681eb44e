package yamlkeys

import (
	"reflect"
	"slices"
	"testing"
)

func TestSuggest(t *testing.T) {
	keys := []string{"source", "routes", "env", "labels", "stack", "stackFunction"}
	for _, c := range []struct{ key, want string }{
		{"route", "routes"},                 // one deletion
		{"soruce", "source"},                // a swap
		{"stack_function", "stackFunction"}, // case and underscore
		{"STACK", "stack"},
		{"evn", "env"},   // short key, a swap
		{"envs", "env"},  // short key, one insertion
		{"emb", ""},      // short key, two edits: too far
		{"database", ""}, // nothing near
		{"routes", ""},   // the key itself is not a suggestion
	} {
		if got := Suggest(c.key, keys); got != c.want {
			t.Errorf("Suggest(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

func TestFields(t *testing.T) {
	type inner struct {
		A string `yaml:"a"`
		B string `yaml:"-"`
	}
	type outer struct {
		inner  `yaml:",inline"`
		Plain  int
		Tagged []string `yaml:"tagged,omitempty"`
		hidden string
	}
	if got, want := Keys(reflect.TypeOf(&outer{})), []string{"a", "plain", "tagged"}; !slices.Equal(got, want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	type Inner struct {
		A string `yaml:"a"`
	}
	type outer2 struct {
		Inner `yaml:",inline"`
		C     bool `yaml:"c"`
	}
	fs := Fields(reflect.TypeOf(outer2{}))
	if len(fs) != 2 || fs[0].Key != "a" || !slices.Equal(fs[0].Path, []int{0, 0}) || fs[0].Owner != reflect.TypeOf(Inner{}) || fs[1].Key != "c" {
		t.Fatalf("Fields = %+v", fs)
	}
}

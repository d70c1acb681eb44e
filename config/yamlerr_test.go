package config

import (
	"regexp"
	"strings"
	"testing"
)

// TestYAMLErrorsNameKeys covers each shape of error yaml.v3's decoder
// reports (decode.go: d.terror "cannot unmarshal", d.mappingStruct "field
// not found" / "already set", d.mapping "mapping key already defined",
// failf messages, parser errors): each becomes one line naming the key by
// its path, with no Go type name.
func TestYAMLErrorsNameKeys(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key, near", "app: a\nfunction:\n  route: [/x]\n", "line 3: unknown key function.route (did you mean routes?)"},
		{"unknown root key, near", "app: a\nasets: {dir: public}\n", "line 2: unknown key asets (did you mean assets?)"},
		{"unknown key, case and underscore", "app: a\nfunction:\n  stack_function: x\n", "line 3: unknown key function.stack_function (did you mean stackFunction?)"},
		{"unknown key, nothing near", "app: a\nidle: {sleepy: true}\n", "line 2: unknown key idle.sleepy (known keys here: after, alwaysOn)"},
		{"unknown key in flow mapping, deep", "app: a\nfunction: {database: {templat: t}}\n", "line 2: unknown key function.database.templat (did you mean template?)"},
		{"unknown provider", "app: a\nproviders:\n  runtim: local://\n", "line 3: unknown key providers.runtim (did you mean runtime?)"},
		{"two unknown keys", "app: a\nasets: {}\nidel: {}\n", "line 2: unknown key asets (did you mean assets?); line 3: unknown key idel (did you mean idle?)"},
		{"text for a bool", "app: a\nidle: {alwaysOn: maybe}\n", "line 2: idle.alwaysOn: want true or false, got text"},
		{"list for a duration", "app: a\nidle:\n  after: [15m]\n", "line 3: idle.after: want a duration such as 15m, got a list"},
		{"text for a list", "app: a\nfunction:\n  routes: /graphql\n", "line 3: function.routes: want a list of strings, got text"},
		{"list for a mapping", "app: a\nfunction:\n  env: [A=1]\n", "line 3: function.env: want a mapping of names to strings, got a list"},
		{"list inside a map", "app: a\nfunction: {env: {A: [x]}}\n", "line 2: function.env.A: want text, got a list"},
		{"text for a struct", "app: a\nassets: public\n", "line 2: assets: want a mapping with the keys dir, got text"},
		{"mapping for a list item", "app: a\nfunction:\n  routes:\n    - {path: /x}\n", "line 4: function.routes[0]: want text, got a mapping"},
		{"duplicate key", "app: a\nassets: {dir: x}\nassets: {dir: y}\n", "line 3: key assets is given twice (first on line 2)"},
		{"duplicate nested key", "app: a\nidle:\n  after: 1m\n  after: 2m\n", "line 4: key idle.after is given twice (first on line 3)"},
		{"syntax", "app: a\n  function: x\n", "line 2: mapping values are not allowed in this context"},
		{"unknown anchor", "app: *nope\n", "unknown anchor 'nope' referenced"},
		{"list as key", "app: a\n? [x]\n: y\n", "line 2: a mapping key at the top level is a list; keys must be plain text"},
		{"list as key in a later document", "app: a\nassets: {}\n---\n? [x]\n: y\n", "a mapping key is a list or a mapping; keys must be plain text"},
		{"key set twice through an alias", "? &k app\n: a\nassets: {}\n*k : b\n", "line 4: key app is given twice"},
		{"merge of a scalar", "app: a\nassets: {}\n<<: 3\n", "map merge requires map or sequence of maps as the value"},
		{"bad base64", "app: a\nassets: {dir: !!binary '%%%'}\n", "!!binary value contains invalid base64 data"},
	}
	goType := regexp.MustCompile(`\b(preview|config)\.[A-Z]|\[\]|map\[|interface \{| in type | into `)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("got nil error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q\nwant it to contain %q", msg, c.want)
			}
			if goType.MatchString(msg) || strings.Contains(msg, "\n") || strings.HasPrefix(msg, "yaml:") {
				t.Errorf("error %q: want one line without Go type names or a yaml: prefix", msg)
			}
		})
	}
}

// TestStackFileErrorsNameKeys: the stack file's type errors name the key
// too (faas-cli's stack.yml, read leniently: unknown keys are allowed).
func TestStackFileErrorsNameKeys(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "fn/main.go", "package main")
	write(t, dir, "stack.yml", "version: 1.0\nprovider: {name: openfaas}\nfunctions:\n  shop:\n    handler: ./fn\n    environment: [A=1]\n")
	write(t, dir, "glimpse.yaml", "app: shop\nfunction: {stack: stack.yml}\n")
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "line 6: functions.shop.environment: want a mapping of names to strings, got a list") || strings.Contains(err.Error(), "map[") {
		t.Fatalf("stack file with a list for environment: %v", err)
	}
}

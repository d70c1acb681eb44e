package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

const (
	docPath    = "../../../docs/glimpse-yaml.md"
	schemaPath = "../../../docs/glimpse.schema.json"
	servePath  = "../../../docs/glimpse-serve-yaml.md"
)

func loadKeys(t *testing.T) []*key {
	t.Helper()
	mod, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys(mod)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestCommittedFilesAreGenerated fails when docs/glimpse-yaml.md's key
// table or docs/glimpse.schema.json differ from what the generator writes
// from the Go types today.
func TestCommittedFilesAreGenerated(t *testing.T) {
	ks := loadKeys(t)
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := updatePage(page, ks)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, want) {
		t.Errorf("%s is out of date: run go generate ./config", docPath)
	}
	sch, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	wantSch, err := schemaJSON(ks)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sch, wantSch) {
		t.Errorf("%s is out of date: run go generate ./config", schemaPath)
	}
	servePage, err := os.ReadFile(servePath)
	if err != nil {
		t.Fatal(err)
	}
	if want, err := updateServePage(servePage); err != nil || !bytes.Equal(servePage, want) {
		t.Errorf("%s is out of date (%v): run go generate ./config", servePath, err)
	}
	for _, k := range config.ServeKeys {
		if serveKinds[k.Kind] == "" || k.Usage == "" {
			t.Errorf("serve key %s: kind %q has no words or it has no usage", k.Key, k.Kind)
		}
	}
	// Every key is in the table: the walk is the loader's (yamlkeys).
	for _, k := range flatten(ks) {
		if !bytes.Contains(page, []byte("| `"+k.Path+"` |")) {
			t.Errorf("%s has no row for %s", docPath, k.Path)
		}
	}
}

// TestEveryKeyIsDocumented: each key has words, a default and an example,
// no note names a key that does not exist, and no words speak Go.
func TestEveryKeyIsDocumented(t *testing.T) {
	ks := flatten(loadKeys(t))
	if len(ks) < 25 {
		t.Fatalf("walked only %d keys: the walk is broken", len(ks))
	}
	paths := map[string]bool{}
	goName := regexp.MustCompile(`\b(preview|config)\.[A-Z]|\bSpec\b|\bPipeline\b`)
	for _, k := range ks {
		paths[k.Path] = true
		if k.Doc == "" {
			t.Errorf("key %s has no doc: write a doc comment on its field or a note in notes.go", k.Path)
		}
		if goName.MatchString(k.Doc) {
			t.Errorf("key %s: doc %q names Go identifiers", k.Path, k.Doc)
		}
		if k.Default == "" {
			t.Errorf("key %s has no default (a note's Default, or \"none\")", k.Path)
		}
		if k.Example == nil {
			t.Errorf("key %s has no example", k.Path)
		}
	}
	for p := range notes {
		if !paths[p] {
			t.Errorf("notes.go has a note for %s, which glimpse.yaml does not have", p)
		}
	}
	if got := notes["providers.owner"].DefaultValue; got != preview.DefaultOwner {
		t.Errorf("providers.owner's default is %q in notes.go, %q in code", got, preview.DefaultOwner)
	}
}

func TestDocCommentInFileTerms(t *testing.T) {
	ks := flatten(loadKeys(t))
	byPath := map[string]*key{}
	for _, k := range ks {
		byPath[k.Path] = k
	}
	// From preview.DatabaseSpec's doc comment, with no note.
	if got, want := byPath["function.database.readOnly"].Doc, "Adds a second, read-only role for the function."; got != want {
		t.Errorf("function.database.readOnly doc = %q, want %q", got, want)
	}
	// From config.Providers' doc comment.
	if got := byPath["providers.router"].Doc; got != "`edge://HOST:PORT` (`GLIMPSE_PASSWORD`)." {
		t.Errorf("providers.router doc = %q", got)
	}
	// Defaults the code computes.
	if got := byPath["function.routes"].Default; got != "`[/graphql]`" {
		t.Errorf("function.routes default = %q, want Spec.Defaults' [/graphql]", got)
	}
}

// yamlBlock returns the first ```yaml block of the reference page.
func yamlBlock(t *testing.T) []byte {
	t.Helper()
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the reference page")
	}
	return []byte(block)
}

// examplesDocument is a glimpse.yaml with every key's example.
func examplesDocument(ks []*key) map[string]any {
	m := map[string]any{}
	for _, k := range ks {
		if len(k.Children) > 0 {
			m[k.Field.Key] = examplesDocument(k.Children)
		} else {
			m[k.Field.Key] = k.Example
		}
	}
	return m
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4) // $schema must select 2020-12 itself
	if err := c.AddResource("glimpse.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("glimpse.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	if s.DraftVersion != 2020 {
		t.Fatalf("schema draft %d, want 2020-12", s.DraftVersion)
	}
	return s
}

// instance turns YAML into what a JSON Schema validator reads.
func instance(t *testing.T, y []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaAgreesWithLoader checks the committed schema with a JSON
// Schema 2020-12 validator: the files the loader accepts (the page's
// example, a document of every key's example, the repository's apps)
// validate, and documents the loader refuses do not.
func TestSchemaAgreesWithLoader(t *testing.T) {
	s := compileSchema(t)
	all, err := yaml.Marshal(examplesDocument(loadKeys(t)))
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string][]byte{"the page's example": yamlBlock(t), "every key's example": all}
	apps, _ := filepath.Glob("../../../examples/*/glimpse.yaml")
	more, _ := filepath.Glob("../../../*/testdata/*/glimpse.yaml")
	for _, p := range append(apps, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		valid[p] = b
	}
	if len(valid) < 4 {
		t.Fatalf("only %d valid documents found", len(valid))
	}
	for name, y := range valid {
		if _, err := config.Parse(y); err != nil {
			t.Errorf("%s: the loader refuses it: %v", name, err)
		}
		if err := s.Validate(instance(t, y)); err != nil {
			t.Errorf("%s: the schema refuses it: %v", name, err)
		}
	}
	invalid := []struct{ name, yaml string }{
		{"unknown root key", "app: a\nassets: {}\nasets: {}\n"},
		{"unknown nested key", "app: a\nfunction: {route: [/x]}\n"},
		{"no app", "assets: {dir: public}\n"},
		{"app not a DNS label", "app: My_App\nassets: {dir: public}\n"},
		{"bool as text", "app: a\nassets: {dir: public}\nidle: {alwaysOn: maybe}\n"},
		{"routes as text", "app: a\nfunction: {routes: /graphql}\n"},
		{"not a duration", "app: a\nassets: {dir: public}\nidle: {after: soon}\n"},
		{"duration without a unit", "app: a\nassets: {dir: public}\nidle: {after: \"15\"}\n"},
		{"env value a list", "app: a\nfunction: {env: {A: [x]}}\n"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			if err := s.Validate(instance(t, []byte(c.yaml))); err == nil {
				t.Errorf("the schema accepts %q", c.yaml)
			}
			dir := t.TempDir()
			for _, d := range []string{"public", "function"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(dir); err == nil {
				t.Errorf("the loader accepts %q", c.yaml)
			}
		})
	}
}

// TestGenerateIsIdempotent runs the generator on a copy of the page: the
// first run writes the generated files, the second changes nothing, and
// the rest of the page is kept.
func TestGenerateIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	doc, sch, serve := filepath.Join(dir, "page.md"), filepath.Join(dir, "schema.json"), filepath.Join(dir, "serve.md")
	page := "# Title\n\nProse above.\n\n" + beginMarker + "\nstale table\n" + endMarker + "\n\nProse below.\n"
	if err := os.WriteFile(doc, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serve, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(doc, sch, serve); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(doc)
	if !strings.HasPrefix(string(first), "# Title\n\nProse above.\n\n"+beginMarker) || !strings.HasSuffix(string(first), endMarker+"\n\nProse below.\n") || strings.Contains(string(first), "stale table") || !strings.Contains(string(first), "| `idle.after` | duration |") {
		t.Fatalf("generated page:\n%s", first)
	}
	if err := run(doc, sch, serve); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(doc)
	if !bytes.Equal(first, second) {
		t.Fatal("a second run changed the page")
	}
	if s, _ := os.ReadFile(serve); !strings.Contains(string(s), "| `idle.after` | `--idle-after` | `GLIMPSE_SERVE_IDLE_AFTER` | duration |") {
		t.Fatalf("generated serve page:\n%s", s)
	}
	if err := os.WriteFile(doc, []byte("# no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(doc, sch, serve); err == nil || !strings.Contains(err.Error(), "GENERATED") {
		t.Fatalf("run on a page without markers = %v, want an error naming them", err)
	}
}

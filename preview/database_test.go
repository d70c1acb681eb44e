package preview

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDatabaseRequestValidate(t *testing.T) {
	l := func(app string, pr int) Labels { return OwnerLabels("o", Target{App: app, PR: pr, Commit: "c1"}) }
	m := []SQLScript{{Name: "1.sql", SQL: "SELECT 1"}}
	ok := []DatabaseRequest{
		{App: "a", PR: 1, Labels: l("a", 1)},
		{App: "a", PR: 1, Labels: l("a", 1), Template: "t", ReadOnly: true},
		{App: "a", PR: 1, Labels: l("a", 1), Migrations: m, Seed: m, Generation: 3},
		{App: "a", PR: 1, Labels: l("a", 1), Shared: "s"},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", r, err)
		}
	}
	bad := map[string]DatabaseRequest{
		"app":             {App: "A_b", PR: 1, Labels: l("A_b", 1)},
		"pr":              {App: "a", PR: -1, Labels: l("a", -1)},
		"generation":      {App: "a", PR: 1, Labels: l("a", 1), Generation: -2},
		"no labels":       {App: "a", PR: 1},
		"other labels":    {App: "a", PR: 1, Labels: l("b", 1)},
		"template+migr":   {App: "a", PR: 1, Labels: l("a", 1), Template: "t", Migrations: m},
		"shared+seed":     {App: "a", PR: 1, Labels: l("a", 1), Shared: "s", Seed: m},
		"shared+template": {App: "a", PR: 1, Labels: l("a", 1), Shared: "s", Template: "t"},
		"unnamed":         {App: "a", PR: 1, Labels: l("a", 1), Migrations: []SQLScript{{SQL: "x"}}},
		"duplicate":       {App: "a", PR: 1, Labels: l("a", 1), Seed: append(slices.Clone(m), m...)},
	}
	for name, r := range bad {
		if err := r.Validate(); CodeOf(err) != InvalidArgument {
			t.Errorf("Validate(%s) = %v, want InvalidArgument", name, err)
		}
	}
}

func TestReadSQLDir(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"002_b.sql": "B", "001_a.sql": "A", "README.md": "no", "010_c.sql": "C"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "sub.sql"), 0o755)
	got, err := ReadSQLDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names, bodies []string
	for _, s := range got {
		names, bodies = append(names, s.Name), append(bodies, s.SQL)
	}
	if strings.Join(names, " ") != "001_a.sql 002_b.sql 010_c.sql" || strings.Join(bodies, "") != "ABC" {
		t.Fatalf("ReadSQLDir = %v %v", names, bodies)
	}
	if _, err := ReadSQLDir(filepath.Join(dir, "missing")); CodeOf(err) != NotFound {
		t.Errorf("missing dir: %v, want NotFound", err)
	}
	if _, err := ReadSQLDir(t.TempDir()); CodeOf(err) != InvalidArgument {
		t.Errorf("empty dir: %v, want InvalidArgument", err)
	}
}

func TestDatabaseInfoHidesURLs(t *testing.T) {
	info := DatabaseInfo{DatabaseStatus: DatabaseStatus{Name: "db"}, URL: "postgres://u:secret@h/db", ReadOnlyURL: "postgres://r:secret2@h/db"}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"name":"db"`) {
		t.Fatalf("DatabaseInfo marshals as %s", b)
	}
}

// fakeDB is the smallest Database for CollectDatabases: a fixed listing
// and a Remove that records calls and fails for one PR.
type fakeDB struct {
	found   []DatabaseStatus
	removed []int
	failPR  int
}

func (f *fakeDB) Ensure(context.Context, DatabaseRequest) (DatabaseInfo, error) {
	return DatabaseInfo{}, Errorf(Unimplemented, "no")
}

func (f *fakeDB) Databases(_ context.Context, sel Labels) ([]DatabaseStatus, error) {
	var out []DatabaseStatus
	for _, d := range f.found {
		if d.Labels.Matches(sel) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeDB) Remove(_ context.Context, app string, pr int) error {
	if pr == f.failPR {
		return Errorf(Unavailable, "server went away")
	}
	f.removed = append(f.removed, pr)
	return nil
}

func TestCollectDatabases(t *testing.T) {
	st := func(owner string, pr int, name string) DatabaseStatus {
		return DatabaseStatus{Name: name, App: "a", PR: pr, Labels: OwnerLabels(owner, Target{App: "a", PR: pr, Commit: "c"})}
	}
	f := &fakeDB{failPR: 4, found: []DatabaseStatus{
		st("o", 1, "a-pr-1"), st("o", 1, "a-pr-1-building"), st("o", 2, "a-pr-2"),
		st("o", 3, "a-pr-3"), st("other", 5, "a-pr-5"), st("o", 4, "a-pr-4"),
	}}
	live := func(app string, pr int) bool { return pr == 2 }
	dropped, err := CollectDatabases(context.Background(), f, "o", live)
	if CodeOf(err) != Unavailable || !strings.Contains(err.Error(), "a-pr-4") {
		t.Fatalf("error = %v, want Unavailable naming a-pr-4", err)
	}
	if !slices.Equal(f.removed, []int{1, 3}) {
		t.Fatalf("Remove called for %v, want [1 3] (once each, not the live one, not another owner's)", f.removed)
	}
	var names []string
	for _, d := range dropped {
		names = append(names, d.Name)
	}
	if strings.Join(names, " ") != "a-pr-1 a-pr-1-building a-pr-3" {
		t.Fatalf("dropped %v", names)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatal("the joined error has no *Error")
	}
}

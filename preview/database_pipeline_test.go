package preview_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// memDB is an in-memory preview.Database for the Pipeline's tests: one
// database per preview, its URL holding a password that changes when
// rotate is called.
type memDB struct {
	mu       sync.Mutex
	dbs      map[string]preview.DatabaseStatus
	password int
	ensures  []preview.DatabaseRequest
	removed  []string
}

func newMemDB() *memDB { return &memDB{dbs: map[string]preview.DatabaseStatus{}} }

func dbKey(app string, pr int) string { return fmt.Sprintf("%s-pr-%d", app, pr) }

func (m *memDB) Ensure(ctx context.Context, req preview.DatabaseRequest) (preview.DatabaseInfo, error) {
	if err := req.Validate(); err != nil {
		return preview.DatabaseInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := dbKey(req.App, req.PR)
	cur, exists := m.dbs[k]
	if exists && cur.Generation > req.Generation {
		return preview.DatabaseInfo{}, fmt.Errorf("%w: database %s", preview.ErrStaleGeneration, k)
	}
	m.ensures = append(m.ensures, req)
	st := preview.DatabaseStatus{Name: k, App: req.App, PR: req.PR, Generation: req.Generation, Labels: req.Labels.Clone()}
	for _, s := range req.Migrations {
		st.Applied = append(st.Applied, s.Name)
	}
	m.dbs[k] = st
	url := fmt.Sprintf("postgres://%s:pw%d-secret@db.invalid/%s", k, m.password, k)
	info := preview.DatabaseInfo{DatabaseStatus: st, URL: url, Created: !exists}
	if req.ReadOnly {
		info.ReadOnlyURL = strings.Replace(url, k+":", k+"-ro:", 1)
	}
	return info, nil
}

func (m *memDB) Databases(ctx context.Context, sel preview.Labels) ([]preview.DatabaseStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []preview.DatabaseStatus
	for _, d := range m.dbs {
		if d.Labels.Matches(sel) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memDB) Remove(ctx context.Context, app string, pr int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.dbs, dbKey(app, pr))
	m.removed = append(m.removed, dbKey(app, pr))
	return nil
}

func (m *memDB) rotate() { m.mu.Lock(); m.password++; m.mu.Unlock() }

// dbApp is app with a database section built from migrations and seed.
func dbApp(t *testing.T) (string, preview.Spec) {
	dir, spec := app(t, "notes")
	for _, d := range []string{"migrations", "seed"} {
		os.MkdirAll(filepath.Join(dir, "db", d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "db", "migrations", "001_notes.sql"), []byte("CREATE TABLE notes (body text);"), 0o644)
	os.WriteFile(filepath.Join(dir, "db", "seed", "001_notes.sql"), []byte("INSERT INTO notes VALUES ('hello');"), 0o644)
	spec.Function.Database = &preview.DatabaseSpec{Migrations: "db/migrations", Seed: "db/seed", ReadOnly: true}
	return dir, spec
}

func TestUpDeliversTheDatabaseAsASecret(t *testing.T) {
	s := newMemStack()
	db := newMemDB()
	s.pl.Database = db
	var events []preview.Event
	s.pl.OnEvent = func(e preview.Event) { events = append(events, e) }
	dir, spec := dbApp(t)
	ctx := context.Background()
	if _, err := s.pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 7, Commit: commit('a')}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(db.ensures) != 1 || len(db.ensures[0].Migrations) != 1 || len(db.ensures[0].Seed) != 1 || !db.ensures[0].ReadOnly || db.ensures[0].Generation != 1 {
		t.Fatalf("Ensure requests = %+v; want one with the migration, the seed, read-only, generation 1", db.ensures)
	}
	name := preview.FunctionName("hello", 7)
	st, err := s.rt.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	secret := st.Env[preview.EnvDatabaseURLSecret]
	if secret != name+"-database-url" || st.Env[preview.EnvDatabaseReadOnlyURLSecret] != name+"-database-readonly-url" {
		t.Fatalf("function env %v does not name the database secrets", st.Env)
	}
	if got, ok := s.rt.Secret(name, secret); !ok || !strings.HasPrefix(got, "postgres://hello-pr-7:pw0-secret@") {
		t.Fatalf("the function sees DATABASE_URL as %q (found %v)", got, ok)
	}
	if got, ok := s.rt.Secret(name, name+"-database-readonly-url"); !ok || !strings.Contains(got, "hello-pr-7-ro:") {
		t.Fatalf("the function sees the read-only URL as %q (found %v)", got, ok)
	}
	hash := st.Annotations[preview.AnnotationSecretsHash]
	if !strings.HasPrefix(hash, "sha256:") {
		t.Fatalf("annotations %v lack the secrets hash", st.Annotations)
	}
	for _, e := range events {
		if strings.Contains(e.Message, "secret") && strings.Contains(e.Message, "pw0") {
			t.Fatalf("event %+v carries the password", e)
		}
	}
	list, err := s.pl.List(ctx, "hello")
	if err != nil || strings.Contains(fmt.Sprintf("%+v", list), "pw0") {
		t.Fatalf("List = %+v, %v: carries the password", list, err)
	}

	// Unchanged: no redeploy. A new password: redeployed with it.
	events = nil
	if _, err := s.pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 7, Commit: commit('a')}); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if !hasEvent(events, preview.StepDeploy, preview.EventSkipped) || !hasEvent(events, preview.StepDatabase, preview.EventSkipped) {
		t.Fatalf("an unchanged Up redeployed: %+v", events)
	}
	db.rotate()
	events = nil
	if _, err := s.pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 7, Commit: commit('a')}); err != nil {
		t.Fatalf("Up after the password changed: %v", err)
	}
	if !hasEvent(events, preview.StepDeploy, preview.EventDone) {
		t.Fatalf("a changed database password did not redeploy: %+v", events)
	}
	st, _ = s.rt.Get(ctx, name)
	if got, _ := s.rt.Secret(name, secret); !strings.Contains(got, "pw1-secret") || st.Annotations[preview.AnnotationSecretsHash] == hash {
		t.Fatalf("after the redeploy the function sees %q, hash %s (was %s)", got, st.Annotations[preview.AnnotationSecretsHash], hash)
	}

	// Down drops the database after the function.
	if err := s.pl.Down(ctx, "hello", 7); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if dbs, _ := db.Databases(ctx, preview.Selector("test", "hello", 7)); len(dbs) != 0 {
		t.Fatalf("after Down the databases are %+v", dbs)
	}
	if _, ok := s.rt.Secret(name, secret); ok {
		t.Fatal("after Down the runtime still holds the function's secret")
	}
	if err := s.pl.Down(ctx, "hello", 7); err != nil {
		t.Fatalf("second Down: %v", err)
	}
}

func hasEvent(events []preview.Event, step string, state preview.EventState) bool {
	for _, e := range events {
		if e.Step == step && e.State == state {
			return true
		}
	}
	return false
}

func TestUpDatabaseStaleGenerationIsSuperseded(t *testing.T) {
	s := newMemStack()
	db := newMemDB()
	s.pl.Database = db
	dir, spec := dbApp(t)
	// A newer Up (generation 9) ensured the database already.
	labels := preview.OwnerLabels("test", preview.Target{App: "hello", PR: 3, Commit: commit('z')})
	if _, err := db.Ensure(context.Background(), preview.DatabaseRequest{App: "hello", PR: 3, Generation: 9, Labels: labels}); err != nil {
		t.Fatal(err)
	}
	_, err := s.pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: 3, Commit: commit('a'), Generation: 2})
	if !errors.Is(err, preview.ErrSuperseded) {
		t.Fatalf("Up under a newer database: %v, want ErrSuperseded", err)
	}
	if len(db.removed) != 0 {
		t.Fatalf("a superseded Up dropped %v", db.removed)
	}
	if _, err := s.rt.Get(context.Background(), preview.FunctionName("hello", 3)); !preview.IsNotFound(err) {
		t.Fatalf("a superseded Up deployed its function: %v", err)
	}
}

func TestUpDatabaseNeedsAProvider(t *testing.T) {
	s := newMemStack()
	dir, spec := dbApp(t)
	_, err := s.pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: 1, Commit: commit('a')})
	if preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Up with a database and no provider: %v, want FailedPrecondition", err)
	}
}

func TestGCDropsOrphanDatabases(t *testing.T) {
	s := newMemStack()
	db := newMemDB()
	s.pl.Database = db
	dir, spec := dbApp(t)
	ctx := context.Background()
	if _, err := s.pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: spec, PR: 1, Commit: commit('a')}); err != nil {
		t.Fatal(err)
	}
	// An orphan: a database a crashed Up left for PR 2, which has no
	// route and no function.
	if _, err := db.Ensure(ctx, preview.DatabaseRequest{App: "hello", PR: 2, Labels: preview.OwnerLabels("test", preview.Target{App: "hello", PR: 2, Commit: commit('b')})}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.pl.GC(ctx, preview.GCOptions{DryRun: true})
	if err != nil || len(rep.Databases) != 1 || rep.Databases[0].PR != 2 || len(db.removed) != 0 {
		t.Fatalf("dry-run GC = %+v, %v, removed %v; want PR 2's database reported, nothing dropped", rep.Databases, err, db.removed)
	}
	rep, err = s.pl.GC(ctx, preview.GCOptions{})
	if err != nil || len(rep.Databases) != 1 || rep.Databases[0].PR != 2 {
		t.Fatalf("GC = %+v, %v; want PR 2's database dropped", rep.Databases, err)
	}
	left, _ := db.Databases(ctx, preview.Selector("test", "", 0))
	if len(left) != 1 || left[0].PR != 1 {
		t.Fatalf("after GC the databases are %+v; want PR 1's only", left)
	}
}

// noSecrets is a runtime that does not deliver secrets.
type noSecrets struct{ preview.FunctionRuntime }

func (noSecrets) DeliversSecrets() bool { return false }

func TestUpRefusesARuntimeWithoutSecrets(t *testing.T) {
	s := newMemStack()
	s.pl.Database = newMemDB()
	s.pl.Runtime = noSecrets{s.rt}
	dir, spec := dbApp(t)
	_, err := s.pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: 1, Commit: commit('a')})
	if preview.CodeOf(err) != preview.FailedPrecondition || !strings.Contains(err.Error(), "cannot deliver secrets") {
		t.Fatalf("Up with a database on a runtime without secrets: %v, want FailedPrecondition", err)
	}
}

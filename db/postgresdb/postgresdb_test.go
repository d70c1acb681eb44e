package postgresdb

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func requireBindir(t testing.TB) {
	t.Helper()
	testenv.Require(t, "GLIMPSE_PG_BINDIR", "PostgreSQL server binaries (apt-get install postgresql; .ci/steps/30-postgres.sh)")
}

const templateRows = 5

var templateOnce sync.Once

// itemsTemplate creates, once, a database "tmpl_items" with a table items
// of templateRows rows, to copy from.
func itemsTemplate(t testing.TB, s *server) string {
	t.Helper()
	templateOnce.Do(func() {
		c := s.admin(t, "postgres")
		ctx := context.Background()
		if _, err := c.Exec(ctx, "CREATE DATABASE tmpl_items"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		c = s.admin(t, "tmpl_items")
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL); INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 5) g"); err != nil {
			t.Fatal(err)
		}
	})
	return "tmpl_items"
}

// sharedItems creates a database "shared_items" like tmpl_items, for the
// shared read-only mode (a separate one: a template must have no sessions
// while it is copied).
func sharedItems(t testing.TB, s *server) string {
	t.Helper()
	c := s.admin(t, "postgres")
	ctx := context.Background()
	if _, err := c.Exec(ctx, "CREATE DATABASE shared_items TEMPLATE "+itemsTemplate(t, s)); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	t.Cleanup(func() {
		c := s.admin(t, "postgres")
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS shared_items WITH (FORCE)")
	})
	return "shared_items"
}

func TestConformance(t *testing.T) {
	s := needServer(t)
	previewtest.RunDatabaseTests(t, previewtest.DatabaseHarness{
		New:          func(t *testing.T) preview.Database { return s.provider(t, nil) },
		Query:        query,
		Template:     itemsTemplate(t, s),
		TemplateRows: templateRows,
		Shared:       sharedItems(t, s),
	})
}

func labels(app string, pr int) preview.Labels {
	return preview.OwnerLabels("pgtest", preview.Target{App: app, PR: pr, Commit: "abc1234"})
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustEnsure(t *testing.T, p *Provider, req preview.DatabaseRequest) preview.DatabaseInfo {
	t.Helper()
	info, err := p.Ensure(ctx(t), req)
	if err != nil {
		t.Fatalf("Ensure(%s#%d): %v", req.App, req.PR, err)
	}
	t.Cleanup(func() { p.Remove(context.Background(), req.App, req.PR) })
	return info
}

// withDB returns u with its database replaced by db.
func withDB(t *testing.T, raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

func withUser(t *testing.T, raw string, user *url.Userinfo) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = user
	return u.String()
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// TestIsolation: preview A's role cannot connect to preview B's database
// (nor read it), cannot log in as B with its own password, and B's data
// stays B's.
func TestIsolation(t *testing.T) {
	s := needServer(t)
	p := s.provider(t, nil)
	tmpl := itemsTemplate(t, s)
	a := mustEnsure(t, p, preview.DatabaseRequest{App: "iso", PR: 1, Labels: labels("iso", 1), Template: tmpl, ReadOnly: true})
	b := mustEnsure(t, p, preview.DatabaseRequest{App: "iso", PR: 2, Labels: labels("iso", 2), Template: tmpl})
	if _, err := query(ctx(t), b.URL, "INSERT INTO items (name) VALUES ('only in b')"); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{
		"A's role on B's database":           withDB(t, a.URL, b.Name),
		"A's read-only role on B's database": withDB(t, a.ReadOnlyURL, b.Name),
	} {
		// Connecting is refused (not only reading a table).
		_, err := query(ctx(t), u, "SELECT 1")
		if sqlState(err) != "42501" || !strings.Contains(err.Error(), "permission denied for database") {
			t.Errorf("%s: %v, want permission denied for database (42501)", name, err)
		}
	}
	bu, _ := url.Parse(b.URL)
	au, _ := url.Parse(a.URL)
	pw, _ := au.User.Password()
	_, err := query(ctx(t), withUser(t, b.URL, url.UserPassword(bu.User.Username(), pw)), "SELECT 1")
	if sqlState(err) != "28P01" {
		t.Errorf("B's role with A's password: %v, want password authentication failed (28P01)", err)
	}
	rows, err := query(ctx(t), a.URL, "SELECT count(*) FROM items WHERE name = 'only in b'")
	if err != nil || len(rows) != 1 || rows[0] != "0" {
		t.Errorf("A sees B's row: %v %v", rows, err)
	}
	// The admin DSN never appears in what a function gets.
	if strings.Contains(a.URL, adminPassword) || strings.Contains(a.URL, "postgres:"+adminPassword) {
		t.Error("the function URL carries the admin's password")
	}
	if b, _ := json.Marshal(a); strings.Contains(string(b), "postgres://") {
		t.Errorf("DatabaseInfo marshals its URL: %s", b)
	}
}

// TestGCDropsOnlyOrphans: gc drops Glimpse's databases of dead previews,
// a half-built one and a role left without its database, and leaves live
// previews, another owner's and foreign databases alone.
func TestGCDropsOnlyOrphans(t *testing.T) {
	s := needServer(t)
	p := s.provider(t, nil)
	c := s.admin(t, "postgres")
	defer c.Close(context.Background())
	for pr := 1; pr <= 3; pr++ {
		mustEnsure(t, p, preview.DatabaseRequest{App: "gc", PR: pr, Labels: labels("gc", pr)})
	}
	other := preview.OwnerLabels("someone-else", preview.Target{App: "gc", PR: 9, Commit: "abc1234"})
	mustEnsure(t, p, preview.DatabaseRequest{App: "gc", PR: 9, Labels: other})
	// A crash after CREATE ROLE (PR 4) and one during a build (PR 5).
	crashed := record{Labels: labels("gc", 4)}
	for _, stmt := range []string{
		`CREATE ROLE "glimpse-gc-pr-4" LOGIN`,
		`COMMENT ON ROLE "glimpse-gc-pr-4" IS ` + literal(crashed.comment()),
		`CREATE DATABASE "glimpse-gc-pr-5-building"`,
		`COMMENT ON DATABASE "glimpse-gc-pr-5-building" IS ` + literal(record{Labels: labels("gc", 5), Incomplete: true}.comment()),
		`CREATE DATABASE "glimpse-gc-pr-6"`, // named like ours, no comment
		`CREATE DATABASE "glimpse-gc-pr-7"`, // a comment that is not ours
		`COMMENT ON DATABASE "glimpse-gc-pr-7" IS 'glimpse: not json'`,
	} {
		if _, err := c.Exec(ctx(t), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		c := s.admin(t, "postgres")
		defer c.Close(context.Background())
		c.Exec(context.Background(), `DROP DATABASE IF EXISTS "glimpse-gc-pr-6"; DROP DATABASE IF EXISTS "glimpse-gc-pr-7"`)
	})
	live := func(app string, pr int) bool { return app == "gc" && pr == 2 }
	dropped, err := preview.CollectDatabases(ctx(t), p, "pgtest", live)
	if err != nil {
		t.Fatalf("CollectDatabases: %v", err)
	}
	got := map[int]bool{}
	for _, d := range dropped {
		got[d.PR] = true
	}
	for _, pr := range []int{1, 3, 4, 5} {
		if !got[pr] {
			t.Errorf("gc did not drop PR %d (dropped %+v)", pr, dropped)
		}
	}
	if len(got) != 4 {
		t.Errorf("gc dropped %v, want PRs 1, 3, 4, 5", got)
	}
	var names []string
	rows, err := c.Query(ctx(t), `SELECT datname FROM pg_database WHERE datname LIKE 'glimpse-gc-%' UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'glimpse-gc-%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	want := "glimpse-gc-pr-2 glimpse-gc-pr-2 glimpse-gc-pr-6 glimpse-gc-pr-7 glimpse-gc-pr-9 glimpse-gc-pr-9"
	if strings.Join(names, " ") != want {
		t.Errorf("left after gc: %v, want %s (databases and roles)", names, want)
	}
	again, err := preview.CollectDatabases(ctx(t), p, "pgtest", live)
	if err != nil || len(again) != 0 {
		t.Errorf("second gc: dropped %+v, err %v; want nothing", again, err)
	}
	// A database of Glimpse's name that is not Glimpse's is never used
	// nor dropped.
	_, err = p.Ensure(ctx(t), preview.DatabaseRequest{App: "gc", PR: 6, Labels: labels("gc", 6)})
	if preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("Ensure over a foreign database: %v, want FailedPrecondition", err)
	}
	if err := p.Remove(ctx(t), "gc", 6); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Errorf("Remove of a foreign database: %v, want FailedPrecondition", err)
	}
}

func TestMaxDatabases(t *testing.T) {
	s := needServer(t)
	p := s.provider(t, &Options{Prefix: "capped", MaxDatabases: 2})
	mustEnsure(t, p, preview.DatabaseRequest{App: "cap", PR: 1, Labels: labels("cap", 1)})
	mustEnsure(t, p, preview.DatabaseRequest{App: "cap", PR: 2, Labels: labels("cap", 2)})
	_, err := p.Ensure(ctx(t), preview.DatabaseRequest{App: "cap", PR: 3, Labels: labels("cap", 3)})
	t.Cleanup(func() { p.Remove(context.Background(), "cap", 3) })
	if preview.CodeOf(err) != preview.ResourceExhausted || !strings.Contains(err.Error(), "maxDatabases") {
		t.Fatalf("third database past a limit of 2: %v, want ResourceExhausted naming maxDatabases", err)
	}
	if list, _ := p.Databases(ctx(t), preview.Selector("pgtest", "cap", 3)); len(list) != 0 {
		t.Fatalf("a refused Ensure left %+v", list)
	}
	// An existing database is not counted against itself.
	mustEnsure(t, p, preview.DatabaseRequest{App: "cap", PR: 2, Labels: labels("cap", 2)})
}

func TestLongNamesAndPasswords(t *testing.T) {
	s := needServer(t)
	p := s.provider(t, &Options{PasswordKey: []byte("k1")})
	app := strings.Repeat("a", 63)
	info := mustEnsure(t, p, preview.DatabaseRequest{App: app, PR: 123456, Labels: labels(app, 123456), ReadOnly: true})
	if len(info.Name) > maxBase || !strings.HasPrefix(info.Name, "glimpse-aaaa") {
		t.Fatalf("name %q (%d bytes), want a shortened glimpse-aaa... of at most %d", info.Name, len(info.Name), maxBase)
	}
	if _, err := query(ctx(t), info.ReadOnlyURL, "SELECT 1"); err != nil {
		t.Fatalf("read-only role of a long name: %v", err)
	}
	// The same key gives the same URL: a second provider's Ensure keeps
	// the deployed function's credentials valid.
	p2 := s.provider(t, &Options{PasswordKey: []byte("k1")})
	again := mustEnsure(t, p2, preview.DatabaseRequest{App: app, PR: 123456, Labels: labels(app, 123456)})
	if again.URL != info.URL {
		t.Fatal("a provider with the same password key returned another URL")
	}
	p3 := s.provider(t, &Options{PasswordKey: []byte("k2")})
	third := mustEnsure(t, p3, preview.DatabaseRequest{App: app, PR: 123456, Labels: labels(app, 123456)})
	if _, err := query(ctx(t), info.URL, "SELECT 1"); sqlState(err) != "28P01" {
		t.Fatalf("old password after a new key: %v, want refused", err)
	}
	if _, err := query(ctx(t), third.URL, "SELECT 1"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := needServer(t)
	bad := strings.Replace(s.adminDSN, adminPassword, "wrong-password", 1)
	p, err := New(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Databases(ctx(t), nil)
	if preview.CodeOf(err) != preview.PermissionDenied || strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong admin password: %v (code %v), want PermissionDenied, one line, no password", err, preview.CodeOf(err))
	}
	port, _ := freePort()
	p, err = New("postgres://postgres:x@127.0.0.1:"+strconv.Itoa(port)+"/postgres?connect_timeout=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Databases(ctx(t), nil)
	if preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("no server: %v (code %v), want Unavailable", err, preview.CodeOf(err))
	}
}

func TestOpenURL(t *testing.T) {
	s := needServer(t)
	u, _ := url.Parse(s.adminDSN)
	env := map[string]string{EnvUser: "postgres", EnvPassword: adminPassword}
	o := &preview.OpenOptions{Getenv: func(k string) string { return env[k] }}
	d, err := preview.DatabaseProviders.Open(ctx(t), "postgres://"+u.Host+"/postgres?prefix=viaurl&sslmode=disable&maxDatabases=5", o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.(*Provider).Close()
	info, err := d.Ensure(ctx(t), preview.DatabaseRequest{App: "url", PR: 1, Labels: labels("url", 1)})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	defer d.Remove(context.Background(), "url", 1)
	if info.Name != "viaurl-url-pr-1" || !strings.Contains(info.URL, "sslmode=disable") {
		t.Fatalf("Ensure via URL: name %q, URL has sslmode: %v", info.Name, strings.Contains(info.URL, "sslmode=disable"))
	}
	env = map[string]string{EnvURL: s.adminDSN}
	d2, err := preview.DatabaseProviders.Open(ctx(t), "postgres://?prefix=viaenv", o)
	if err != nil {
		t.Fatalf("Open from %s: %v", EnvURL, err)
	}
	defer d2.(*Provider).Close()
	if _, err := d2.Databases(ctx(t), nil); err != nil {
		t.Fatalf("Databases via %s: %v", EnvURL, err)
	}
	for _, bad := range []string{
		"postgres://h:5432/db?colour=blue",
		"postgres://user:pw@h:5432/db",
		"postgres://h:5432/db?maxDatabases=many",
		"postgres://h:5432/db?prefix=Not_A_Label",
	} {
		if _, err := preview.DatabaseProviders.Open(ctx(t), bad, o); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): %v, want InvalidArgument", bad, err)
		}
	}
}

// TestSeedCommand: the seed command gets the preview's own URL as
// DATABASE_URL and none of Glimpse's environment; a failing one leaves
// nothing behind.
func TestSeedCommand(t *testing.T) {
	s := needServer(t)
	p := s.provider(t, nil)
	t.Setenv(EnvPassword, adminPassword)
	psql := os.Getenv("GLIMPSE_PG_BINDIR") + "/psql"
	script := `test -z "$` + EnvPassword + `" || exit 3
exec "$1" "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "CREATE TABLE seeded AS SELECT current_user::text AS who, 42 AS x"`
	req := preview.DatabaseRequest{App: "seedcmd", PR: 1, Labels: labels("seedcmd", 1), Migrations: []preview.SQLScript{{Name: "1.sql", SQL: "CREATE TABLE t (x int)"}},
		SeedCommand: []string{"sh", "-c", script, "sh", psql}, SeedDir: t.TempDir(), ReadOnly: true}
	info := mustEnsure(t, p, req)
	rows, err := query(ctx(t), info.ReadOnlyURL, "SELECT who || ' ' || x FROM seeded")
	if err != nil || len(rows) != 1 || rows[0] != info.Name+" 42" {
		t.Fatalf("seeded rows %v (%v), want the preview role's row", rows, err)
	}
	again := mustEnsure(t, p, req)
	if again.Created {
		t.Fatal("second Ensure re-created the database")
	}

	bad := req
	bad.PR = 2
	bad.Labels = labels("seedcmd", 2)
	bad.SeedCommand = []string{"sh", "-c", `echo "cannot load fixtures from $DATABASE_URL" >&2; exit 1`}
	_, err = p.Ensure(ctx(t), bad)
	t.Cleanup(func() { p.Remove(context.Background(), "seedcmd", 2) })
	if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), "cannot load fixtures") || strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("failing seed command: %v, want InvalidArgument with its output and no URL", err)
	}
	if list, _ := p.Databases(ctx(t), preview.Selector("pgtest", "seedcmd", 2)); len(list) != 0 {
		t.Fatalf("a failed seed command left %+v", list)
	}
}

package previewtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// DatabaseHarness builds the Database provider under test.
type DatabaseHarness struct {
	// New returns a provider on a real server. Providers returned by
	// separate calls may share the server: the suite makes its apps unique
	// to each test.
	New func(t *testing.T) preview.Database
	// Query connects with url (a DatabaseInfo URL), runs one SQL statement
	// and returns the first column of every row as text (nil for a
	// statement without rows). It must fail when the connection is refused.
	Query func(ctx context.Context, url, sql string) ([]string, error)
	// Template, when not empty, names a database on the server holding a
	// table "items" with TemplateRows rows; the suite then checks Ensure
	// from a template.
	Template     string
	TemplateRows int
	// Shared, when not empty, names a database on the server holding a
	// table "items" of TemplateRows rows that the suite reads and never
	// changes; the suite then checks DatabaseRequest.Shared.
	Shared string
}

// RunDatabaseTests runs the Database conformance suite. It checks the
// contract of preview.Database: Ensure creates a database from migrations
// and seed (or a template) whose URL works, is idempotent (the seed runs
// once, a new migration is applied once), refuses a stale generation and
// an invalid request, and leaves nothing behind when a migration fails;
// Databases selects by labels; Remove drops the database (its URL stops
// working) and succeeds when it is gone; a read-only URL reads and cannot
// write; a shared database is read, never written, and outlives the
// previews reading it; CollectDatabases drops only the orphans; a cancelled context makes
// every method fail with Canceled or DeadlineExceeded; concurrent Ensures of
// one preview and of different previews do not interfere.
func RunDatabaseTests(t *testing.T, h DatabaseHarness) {
	query := func(t *testing.T, url, sql string) []string {
		t.Helper()
		rows, err := h.Query(ctxFor(t), url, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return rows
	}
	count := func(t *testing.T, url, table string) int {
		t.Helper()
		rows := query(t, url, "SELECT count(*) FROM "+table)
		if len(rows) != 1 {
			t.Fatalf("count(%s) returned %d rows", table, len(rows))
		}
		n, err := strconv.Atoi(rows[0])
		if err != nil {
			t.Fatalf("count(%s) = %q", table, rows[0])
		}
		return n
	}
	ensure := func(t *testing.T, d preview.Database, req preview.DatabaseRequest) preview.DatabaseInfo {
		t.Helper()
		info, err := d.Ensure(ctxFor(t), req)
		if err != nil {
			t.Fatalf("Ensure(%s#%d): %v", req.App, req.PR, err)
		}
		t.Cleanup(func() { d.Remove(context.Background(), req.App, req.PR) })
		if info.URL == "" || info.Name == "" || info.App != req.App || info.PR != req.PR {
			t.Fatalf("Ensure returned %+v (URL set: %v), want name, URL, app %s and pr %d", info.DatabaseStatus, info.URL != "", req.App, req.PR)
		}
		return info
	}
	listed := func(t *testing.T, d preview.Database, sel preview.Labels) []preview.DatabaseStatus {
		t.Helper()
		got, err := d.Databases(ctxFor(t), sel)
		if err != nil {
			t.Fatalf("Databases(%v): %v", sel, err)
		}
		return got
	}
	migrations := []preview.SQLScript{{Name: "001_items.sql", SQL: "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"}}
	seed := []preview.SQLScript{{Name: "seed.sql", SQL: "INSERT INTO items VALUES (1, 'one'), (2, 'two');"}}
	request := func(app string, pr int) preview.DatabaseRequest {
		return preview.DatabaseRequest{App: app, PR: pr, Labels: labelsFor(app, pr), Migrations: migrations, Seed: seed}
	}

	t.Run("MigrationsSeedIdempotent", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		req := request(app, 1)
		first := ensure(t, d, req)
		if !first.Created {
			t.Fatal("first Ensure: Created = false")
		}
		if n := count(t, first.URL, "items"); n != 2 {
			t.Fatalf("after the seed: %d rows, want 2", n)
		}
		query(t, first.URL, "INSERT INTO items VALUES (3, 'three')")
		again := ensure(t, d, req)
		if again.Created || again.Name != first.Name {
			t.Fatalf("second Ensure: Created %v, name %q; want false, %q", again.Created, again.Name, first.Name)
		}
		if n := count(t, again.URL, "items"); n != 3 {
			t.Fatalf("after a second Ensure: %d rows, want 3 (the seed runs once, data stays)", n)
		}
		req.Migrations = append(slices.Clone(migrations), preview.SQLScript{Name: "002_tags.sql", SQL: "CREATE TABLE tags (name text);"})
		third := ensure(t, d, req)
		if n := count(t, third.URL, "tags"); n != 0 {
			t.Fatalf("new migration: tags has %d rows", n)
		}
		if want := []string{"001_items.sql", "002_tags.sql"}; !slices.Equal(third.Applied, want) {
			t.Fatalf("Applied = %v, want %v", third.Applied, want)
		}
		if n := count(t, third.URL, "items"); n != 3 {
			t.Fatalf("after a new migration: items has %d rows, want 3 (old migrations not re-run)", n)
		}
		req.Migrations = append(req.Migrations,
			preview.SQLScript{Name: "003_ok.sql", SQL: "CREATE TABLE notes (body text);"},
			preview.SQLScript{Name: "004_bad.sql", SQL: "CREATE TABLE half (x int); SELECT no_such_function();"})
		_, err := d.Ensure(ctxFor(t), req)
		wantCode(t, err, preview.InvalidArgument, "Ensure with a failing new migration")
		got := listed(t, d, preview.Selector("conformance", app, 1))
		if want := []string{"001_items.sql", "002_tags.sql", "003_ok.sql"}; len(got) != 1 || !slices.Equal(got[0].Applied, want) {
			t.Fatalf("after a failing migration, Databases = %+v, want Applied %v", got, want)
		}
		if _, err := h.Query(ctxFor(t), third.URL, "SELECT count(*) FROM half"); err == nil {
			t.Fatal("a failed migration's statements stayed (each migration must be one transaction)")
		}
		if n := count(t, third.URL, "items"); n != 3 {
			t.Fatalf("after a failing migration: items has %d rows, want 3", n)
		}
	})

	t.Run("DatabasesByLabels", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		ensure(t, d, request(app, 1))
		ensure(t, d, request(app, 2))
		got := listed(t, d, preview.Selector("conformance", app, 0))
		var prs []int
		for _, s := range got {
			if s.App != app || s.Labels[preview.LabelApp] != app || s.Incomplete {
				t.Fatalf("Databases returned %+v", s)
			}
			prs = append(prs, s.PR)
		}
		slices.Sort(prs)
		if !slices.Equal(prs, []int{1, 2}) {
			t.Fatalf("Databases(app) PRs = %v, want [1 2]", prs)
		}
		if got := listed(t, d, preview.Selector("conformance", app, 2)); len(got) != 1 || got[0].PR != 2 {
			t.Fatalf("Databases(app, pr 2) = %+v, want PR 2 only", got)
		}
		if got := listed(t, d, preview.Selector("another-owner", app, 0)); len(got) != 0 {
			t.Fatalf("Databases(another owner) = %+v, want none", got)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		info := ensure(t, d, request(app, 1))
		ctx := ctxFor(t)
		if err := d.Remove(ctx, app, 1); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("after Remove, Databases = %+v", got)
		}
		if _, err := h.Query(ctx, info.URL, "SELECT 1"); err == nil {
			t.Fatal("the URL of a removed database still connects")
		}
		if err := d.Remove(ctx, app, 1); err != nil {
			t.Fatalf("Remove of a removed database: %v, want success", err)
		}
		if err := d.Remove(ctx, uniqueApp(t), 9); err != nil {
			t.Fatalf("Remove of a database that never existed: %v, want success", err)
		}
		again := ensure(t, d, request(app, 1))
		if !again.Created || count(t, again.URL, "items") != 2 {
			t.Fatal("Ensure after Remove did not create a fresh database")
		}
	})

	t.Run("FailedMigrationLeavesNothing", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		req := request(app, 1)
		req.Migrations = append(slices.Clone(migrations), preview.SQLScript{Name: "002_bad.sql", SQL: "CREATE TABLE broken (;"})
		_, err := d.Ensure(ctxFor(t), req)
		t.Cleanup(func() { d.Remove(context.Background(), app, 1) })
		wantCode(t, err, preview.InvalidArgument, "Ensure with a broken migration")
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("after a failed migration, Databases = %+v, want none", got)
		}
		req.Seed = []preview.SQLScript{{Name: "bad-seed.sql", SQL: "INSERT INTO nowhere VALUES (1);"}}
		req.Migrations = migrations
		_, err = d.Ensure(ctxFor(t), req)
		if err == nil {
			t.Fatal("Ensure with a broken seed: got nil error")
		}
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("after a failed seed, Databases = %+v, want none", got)
		}
		if info := ensure(t, d, request(app, 1)); !info.Created {
			t.Fatal("Ensure after failures: Created = false")
		}
	})

	t.Run("StaleGeneration", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		req := request(app, 1)
		req.Generation = 5
		ensure(t, d, req)
		req.Generation = 3
		_, err := d.Ensure(ctxFor(t), req)
		wantCode(t, err, preview.FailedPrecondition, "Ensure of an older generation")
		if !errors.Is(err, preview.ErrStaleGeneration) {
			t.Fatalf("Ensure of an older generation: %v, want ErrStaleGeneration", err)
		}
		req.Generation = 6
		if info := ensure(t, d, req); info.Generation != 6 {
			t.Fatalf("Generation = %d after Ensure of 6", info.Generation)
		}
	})

	t.Run("InvalidRequest", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		bad := map[string]preview.DatabaseRequest{
			"pr 0":            {App: app, PR: 0, Labels: labelsFor(app, 0)},
			"bad app":         {App: "Not_A_Label", PR: 1, Labels: labelsFor("Not_A_Label", 1)},
			"foreign labels":  {App: app, PR: 1, Labels: labelsFor(app, 2)},
			"template+migr.":  {App: app, PR: 1, Labels: labelsFor(app, 1), Template: "x", Migrations: migrations},
			"unnamed seed":    {App: app, PR: 1, Labels: labelsFor(app, 1), Seed: []preview.SQLScript{{SQL: "SELECT 1"}}},
			"negative gen":    {App: app, PR: 1, Labels: labelsFor(app, 1), Generation: -1},
			"missing templ.":  {App: app, PR: 1, Labels: labelsFor(app, 1), Template: "no_such_template_" + app},
			"duplicate migr.": {App: app, PR: 1, Labels: labelsFor(app, 1), Migrations: append(slices.Clone(migrations), migrations...)},
		}
		for name, req := range bad {
			_, err := d.Ensure(ctxFor(t), req)
			want := preview.InvalidArgument
			if name == "missing templ." {
				want = preview.NotFound
			}
			wantCode(t, err, want, "Ensure("+name+")")
		}
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("after refused requests, Databases = %+v", got)
		}
	})

	t.Run("ReadOnly", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		req := request(app, 1)
		req.ReadOnly = true
		info := ensure(t, d, req)
		if info.ReadOnlyURL == "" || info.ReadOnlyURL == info.URL {
			t.Fatal("ReadOnly: no separate read-only URL")
		}
		if n := count(t, info.ReadOnlyURL, "items"); n != 2 {
			t.Fatalf("read-only role reads %d rows, want 2", n)
		}
		if _, err := h.Query(ctxFor(t), info.ReadOnlyURL, "INSERT INTO items VALUES (9, 'nine')"); err == nil {
			t.Fatal("read-only role could insert")
		}
		query(t, info.URL, "CREATE TABLE later (x int); INSERT INTO later VALUES (1)")
		if n := count(t, info.ReadOnlyURL, "later"); n != 1 {
			t.Fatalf("read-only role reads %d rows of a table created later, want 1", n)
		}
		if plain := ensure(t, d, request(app, 2)); plain.ReadOnlyURL != "" {
			t.Fatal("ReadOnlyURL set without ReadOnly")
		}
	})

	if h.Template != "" {
		t.Run("Template", func(t *testing.T) {
			d := h.New(t)
			app := uniqueApp(t)
			req := preview.DatabaseRequest{App: app, PR: 1, Labels: labelsFor(app, 1), Template: h.Template, ReadOnly: true}
			info := ensure(t, d, req)
			if n := count(t, info.URL, "items"); n != h.TemplateRows {
				t.Fatalf("copy of the template has %d rows, want %d", n, h.TemplateRows)
			}
			query(t, info.URL, "DELETE FROM items")
			if n := count(t, info.ReadOnlyURL, "items"); n != 0 {
				t.Fatalf("read-only role sees %d rows after the owner deleted all", n)
			}
			other := ensure(t, d, preview.DatabaseRequest{App: app, PR: 2, Labels: labelsFor(app, 2), Template: h.Template})
			if n := count(t, other.URL, "items"); n != h.TemplateRows {
				t.Fatalf("a second copy has %d rows, want %d (copies are independent)", n, h.TemplateRows)
			}
		})
	}

	if h.Shared != "" {
		t.Run("Shared", func(t *testing.T) {
			d := h.New(t)
			app := uniqueApp(t)
			shared := func(pr int) preview.DatabaseRequest {
				return preview.DatabaseRequest{App: app, PR: pr, Labels: labelsFor(app, pr), Shared: h.Shared}
			}
			one := ensure(t, d, shared(1))
			two := ensure(t, d, shared(2))
			if one.URL == two.URL || one.ReadOnlyURL != one.URL || one.Shared != h.Shared || one.Name != h.Shared {
				t.Fatalf("shared Ensure: %+v, want name and Shared %q, own read-only URLs", one.DatabaseStatus, h.Shared)
			}
			for _, info := range []preview.DatabaseInfo{one, two} {
				if n := count(t, info.URL, "items"); n != h.TemplateRows {
					t.Fatalf("shared database read: %d rows, want %d", n, h.TemplateRows)
				}
				if _, err := h.Query(ctxFor(t), info.URL, "DELETE FROM items"); err == nil {
					t.Fatal("a preview could write the shared database")
				}
			}
			if again := ensure(t, d, shared(1)); again.Created || again.URL != one.URL {
				t.Fatalf("second shared Ensure: Created %v, same URL %v", again.Created, again.URL == one.URL)
			}
			if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 2 || got[0].Shared != h.Shared || got[1].Shared != h.Shared {
				t.Fatalf("Databases of shared previews = %+v", got)
			}
			own := request(app, 1)
			if _, err := d.Ensure(ctxFor(t), own); preview.CodeOf(err) != preview.FailedPrecondition {
				t.Fatalf("own database for a preview that shares: %v, want FailedPrecondition", err)
			}
			if err := d.Remove(ctxFor(t), app, 1); err != nil {
				t.Fatalf("Remove of a shared preview: %v", err)
			}
			if _, err := h.Query(ctxFor(t), one.URL, "SELECT 1"); err == nil {
				t.Fatal("a removed shared preview's URL still connects")
			}
			if n := count(t, two.URL, "items"); n != h.TemplateRows {
				t.Fatalf("after removing one preview the other reads %d rows, want %d", n, h.TemplateRows)
			}
			if err := d.Remove(ctxFor(t), app, 1); err != nil {
				t.Fatalf("second Remove of a shared preview: %v", err)
			}
			_, err := d.Ensure(ctxFor(t), preview.DatabaseRequest{App: app, PR: 3, Labels: labelsFor(app, 3), Shared: "no_such_db_" + app})
			wantCode(t, err, preview.NotFound, "Ensure of a missing shared database")
		})
	}

	t.Run("CollectOrphans", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		for pr := 1; pr <= 3; pr++ {
			ensure(t, d, request(app, pr))
		}
		live := func(a string, pr int) bool { return a != app || pr == 2 }
		dropped, err := preview.CollectDatabases(ctxFor(t), d, "conformance", live)
		if err != nil {
			t.Fatalf("CollectDatabases: %v", err)
		}
		var prs []int
		for _, s := range dropped {
			if s.App == app {
				prs = append(prs, s.PR)
			}
		}
		slices.Sort(prs)
		if !slices.Equal(prs, []int{1, 3}) {
			t.Fatalf("CollectDatabases dropped PRs %v of %s, want [1 3]", prs, app)
		}
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 1 || got[0].PR != 2 {
			t.Fatalf("after CollectDatabases, Databases = %+v, want PR 2 only", got)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		_, err := d.Ensure(cancelled(), request(app, 1))
		wantCancelled(t, err, "Ensure")
		_, err = d.Databases(cancelled(), preview.Selector("conformance", app, 0))
		wantCancelled(t, err, "Databases")
		wantCancelled(t, d.Remove(cancelled(), app, 1), "Remove")
		if got := listed(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("a cancelled Ensure left %+v", got)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		const n = 3
		var wg sync.WaitGroup
		errs := make([]error, 2*n)
		created := make([]bool, 2*n)
		for i := range 2 * n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pr := 1 // the first n race on one preview
				if i >= n {
					pr = i // the others each have their own
				}
				info, err := d.Ensure(ctxFor(t), request(app, pr))
				errs[i], created[i] = err, info.Created
			}()
		}
		wg.Wait()
		for pr := 1; pr < 2*n; pr++ {
			t.Cleanup(func() { d.Remove(context.Background(), app, pr) })
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent Ensure %d: %v", i, err)
			}
		}
		if c := countTrue(created[:n]); c != 1 {
			t.Fatalf("%d of %d concurrent Ensures of one preview report Created, want 1", c, n)
		}
		got := listed(t, d, preview.Selector("conformance", app, 0))
		if len(got) != n+1 {
			t.Fatalf("after concurrent Ensures, %d databases, want %d: %+v", len(got), n+1, got)
		}
		info := ensure(t, d, request(app, 1))
		if c := count(t, info.URL, "items"); c != 2 {
			t.Fatal(fmt.Sprintf("the raced preview has %d rows, want 2 (one seed)", c))
		}
	})
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

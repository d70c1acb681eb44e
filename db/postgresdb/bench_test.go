package postgresdb

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// Benchmarks against the real server, 10,000 rows per database:
//
//	go test ./db/postgresdb -run '^$' -bench . -benchtime 10x
//
// Create/template and Create/migrations+seed build the same database two
// ways; Drop/remove drops one; the raw baselines are the bare statements a
// hand-written script would run (CREATE DATABASE ... TEMPLATE, DROP
// DATABASE ... WITH (FORCE)), so the ratios show what Glimpse's roles,
// grants, labels and locks cost on top.

const benchRows = 10000

var benchOnce sync.Once

// benchTemplate creates, once, a template database tmpl_bench holding
// benchRows rows, built by the same migration and seed as the
// migrations+seed case.
func benchTemplate(b *testing.B, s *server) string {
	benchOnce.Do(func() {
		c := s.admin(b, "postgres")
		if _, err := c.Exec(context.Background(), "CREATE DATABASE tmpl_bench"); err != nil {
			b.Fatal(err)
		}
		c.Close(context.Background())
		c = s.admin(b, "tmpl_bench")
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), benchMigration[0].SQL+benchSeed()[0].SQL); err != nil {
			b.Fatal(err)
		}
	})
	return "tmpl_bench"
}

var benchMigration = []preview.SQLScript{{Name: "001_items.sql", SQL: "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));"}}

var (
	seedOnce sync.Once
	seedSQL  string
)

// benchSeed is a seed file as an app would ship it: one INSERT of
// benchRows literal rows.
func benchSeed() []preview.SQLScript {
	seedOnce.Do(func() {
		var b strings.Builder
		b.WriteString("INSERT INTO items (id, name, price) VALUES ")
		for i := 1; i <= benchRows; i++ {
			if i > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%d,'item number %d',%d.%02d)", i, i, i%1000, i%100)
		}
		b.WriteString(";")
		seedSQL = b.String()
	})
	return []preview.SQLScript{{Name: "seed.sql", SQL: seedSQL}}
}

// rawExec runs sql on an admin connection to the postgres database.
func rawExec(b *testing.B, s *server) func(sql string) {
	c := s.admin(b, "postgres")
	b.Cleanup(func() { c.Close(context.Background()) })
	return func(sql string) {
		if _, err := c.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate: raw is the baseline (the bare CREATE DATABASE ...
// TEMPLATE a script would run), then Ensure from the template and Ensure
// from migrations + seed, run one after the other so that the load of the
// machine is alike.
func BenchmarkCreate(b *testing.B) {
	s := needServer(b)
	tmpl := benchTemplate(b, s)
	p := s.provider(b, nil)
	exec := rawExec(b, s)
	b.Run("raw-template", func(b *testing.B) {
		for b.Loop() {
			exec("CREATE DATABASE raw_bench TEMPLATE " + tmpl)
			b.StopTimer()
			exec("DROP DATABASE raw_bench WITH (FORCE)")
			b.StartTimer()
		}
	})
	cases := []struct {
		name string
		req  func(app string, pr int) preview.DatabaseRequest
	}{
		{"template", func(app string, pr int) preview.DatabaseRequest {
			return preview.DatabaseRequest{App: app, PR: pr, Labels: labels(app, pr), Template: tmpl}
		}},
		{"migrations+seed", func(app string, pr int) preview.DatabaseRequest {
			return preview.DatabaseRequest{App: app, PR: pr, Labels: labels(app, pr), Migrations: benchMigration, Seed: benchSeed()}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				r := c.req("bench", i+1)
				info, err := p.Ensure(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if i == 0 {
					rows, err := query(ctx, info.URL, "SELECT count(*) FROM items")
					if err != nil || rows[0] != fmt.Sprint(benchRows) {
						b.Fatalf("built database has %v rows (%v), want %d", rows, err, benchRows)
					}
				}
				if err := p.Remove(ctx, r.App, r.PR); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDrop: raw DROP DATABASE ... WITH (FORCE) as the baseline, then
// Remove (database, roles, ownership checks, lock).
func BenchmarkDrop(b *testing.B) {
	s := needServer(b)
	tmpl := benchTemplate(b, s)
	p := s.provider(b, nil)
	exec := rawExec(b, s)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			exec("CREATE DATABASE raw_bench TEMPLATE " + tmpl)
			b.StartTimer()
			exec("DROP DATABASE raw_bench WITH (FORCE)")
		}
	})
	b.Run("remove", func(b *testing.B) {
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			if _, err := p.Ensure(ctx, preview.DatabaseRequest{App: "benchrm", PR: i + 1, Labels: labels("benchrm", i+1), Template: tmpl}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := p.Remove(ctx, "benchrm", i+1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

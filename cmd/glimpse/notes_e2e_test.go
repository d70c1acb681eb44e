package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/glimpse-dev/glimpse/internal/pgtest"
	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// TestNotesDatabasePerPreview runs examples/notes on the local stack with
// a real PostgreSQL: two previews get their own databases (built from the
// app's migrations and seed), see different data, the connection string
// reaches the function as a secret and no output shows it, an unchanged up
// redeploys nothing, and down drops the preview's database only.
func TestNotesDatabasePerPreview(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the whole stack")
	}
	bindir := testenv.Require(t, pgtest.EnvBindir, "PostgreSQL binaries (initdb, pg_ctl)")
	pg, err := pgtest.Start(bindir)
	if err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Stop)
	bin := buildBinary(t)
	s := startStackWith(t, bin, t.TempDir(), []string{"GLIMPSE_POSTGRES_URL=" + pg.AdminURL})
	c := s.client()

	urls := map[int]string{}
	var outputs []string
	for _, pr := range []int{1, 2} {
		stdout, stderr := s.run(t, "up", "../../examples/notes", "--pr", strconv.Itoa(pr), "--commit", "1111111aaaaaaa")
		urls[pr] = lastLine(stdout)
		outputs = append(outputs, stdout, stderr)
		if !strings.Contains(stderr, "created database") {
			t.Fatalf("up of PR %d does not report its database:\n%s", pr, stderr)
		}
	}
	notes := func(pr int) []string {
		t.Helper()
		code, body, _ := get(t, c, "GET", urls[pr]+"api/notes", "")
		var ns []struct{ Body string }
		if code != 200 || json.Unmarshal([]byte(body), &ns) != nil {
			t.Fatalf("GET PR %d's notes = %d %q", pr, code, body)
		}
		var out []string
		for _, n := range ns {
			out = append(out, n.Body)
		}
		return out
	}
	for _, pr := range []int{1, 2} {
		if got := notes(pr); len(got) != 1 || !strings.HasPrefix(got[0], "Welcome") {
			t.Fatalf("PR %d's notes = %q; want the seeded welcome note", pr, got)
		}
	}
	if code, body, _ := get(t, c, "POST", urls[1]+"api/notes", `{"body":"only in PR 1"}`); code != 201 {
		t.Fatalf("POST a note to PR 1 = %d %q", code, body)
	}
	if got := notes(1); len(got) != 2 || got[1] != "only in PR 1" {
		t.Fatalf("PR 1's notes = %q; want the welcome note and the new one", got)
	}
	if got := notes(2); len(got) != 1 {
		t.Fatalf("PR 2's notes = %q; PR 1's note leaked into PR 2's database", got)
	}

	// Unchanged: nothing redeployed, the data kept.
	_, stderr := s.run(t, "up", "../../examples/notes", "--pr", "1", "--commit", "1111111aaaaaaa")
	outputs = append(outputs, stderr)
	if !strings.Contains(stderr, "nothing deployed") {
		t.Errorf("an unchanged up redeployed:\n%s", stderr)
	}
	if got := notes(1); len(got) != 2 {
		t.Fatalf("after an unchanged up PR 1's notes = %q", got)
	}
	stdout, _ := s.run(t, "ls", "-o", "json")
	outputs = append(outputs, stdout)
	stdout, _ = s.run(t, "status", "../../examples/notes", "--pr", "1", "-o", "json")
	outputs = append(outputs, stdout)
	for _, out := range outputs {
		if strings.Contains(out, "postgres://") || strings.Contains(out, pgtest.AdminPassword) {
			t.Fatalf("command output shows a connection string:\n%s", out)
		}
	}

	s.run(t, "down", "../../examples/notes", "--pr", "1")
	if dbs := databases(t, pg.AdminURL); strings.Join(dbs, ",") != "glimpse-notes-pr-2" {
		t.Fatalf("databases after down of PR 1: %v; want PR 2's only", dbs)
	}
	if got := notes(2); len(got) != 1 {
		t.Fatalf("after PR 1's down PR 2's notes = %q", got)
	}
	s.run(t, "down", "../../examples/notes", "--pr", "2")
	if dbs := databases(t, pg.AdminURL); len(dbs) != 0 {
		t.Fatalf("databases after both downs: %v", dbs)
	}
	// gc sees the database provider and finds nothing left to drop.
	if _, stderr := s.run(t, "gc"); !strings.Contains(stderr, "gc: databases: none") {
		t.Fatalf("gc does not report the databases:\n%s", stderr)
	}
}

// databases lists the Glimpse databases on the server at adminURL.
func databases(t *testing.T, adminURL string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'glimpse-%' ORDER BY datname")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

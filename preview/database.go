package preview

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Database gives each preview its own database on a shared server, built
// from a template database or from the app's migrations and seed scripts.
// It follows the rules stated for every provider interface (see Builder):
// ctx is honoured, calls are safe for concurrent use, errors carry a Code,
// mutating calls are idempotent.
//
// Ownership lives in the server itself (a comment on the database, a
// catalog row: whatever the engine offers), so Databases finds every
// database Glimpse made, a half-built one left by a crash included, with
// no state outside the server.
//
// The credentials a database provider returns (DatabaseInfo.URL) are the
// preview's own: a role that can connect to its database only. The
// provider's administrative credentials never reach a function.
type Database interface {
	// Ensure creates the preview's database and role when they do not
	// exist, and otherwise brings them up to date: labels, generation and
	// the role's password are set again, migrations not yet applied to it
	// are applied (in name order); the seed runs only when the database is
	// created. It returns the connection details for the preview's
	// function.
	//
	// A database is created whole or not at all: when the template copy,
	// a migration or the seed fails, nothing of it is left under the
	// preview's name (a leftover of a crash is labelled, so Remove and
	// gc find it). When the stored generation is greater than
	// req.Generation, Ensure changes nothing and returns an error wrapping
	// ErrStaleGeneration (code FailedPrecondition). Concurrent Ensures of
	// one preview are serialised by the provider.
	Ensure(ctx context.Context, req DatabaseRequest) (DatabaseInfo, error)
	// Databases lists the databases whose ownership labels match selector.
	// It never returns credentials.
	Databases(ctx context.Context, selector Labels) ([]DatabaseStatus, error)
	// Remove drops the preview's database (closing the sessions still
	// connected to it) and its roles. A database or role already gone is
	// success; so is a preview that never had one.
	Remove(ctx context.Context, app string, pr int) error
}

// SQLScript is one SQL file of an app's migrations or seed.
type SQLScript struct {
	// Name identifies the script across Ups ("001_users.sql"); a
	// migration is applied to a database once per name.
	Name string `json:"name"`
	// SQL is the script's text; it may hold several statements.
	SQL string `json:"-"`
}

// DatabaseRequest is the input of Database.Ensure. At most one of Template
// and Migrations is set; neither means an empty database.
type DatabaseRequest struct {
	App string
	PR  int
	// Generation orders the Ups of one pull request (see Route); 0 means
	// unordered (never refused as stale, and never refuses a later one).
	Generation int64
	// Labels are the ownership labels (OwnerLabels) stored with the
	// database; they must name App and PR.
	Labels Labels
	// Template names an existing database to copy: the fast path for
	// large fixtures.
	Template string
	// Migrations build the schema, in name order.
	Migrations []SQLScript
	// Seed fills a new database after Migrations, in name order.
	Seed []SQLScript
	// SeedCommand, when set, runs once on a new database after Seed (a
	// program and its arguments, no shell), in SeedDir, with an
	// environment of PATH, HOME, LANG and DATABASE_URL, the preview role's
	// own URL of the database being built: never the provider's
	// credentials. A non-zero exit fails the Ensure as a failing seed
	// script does.
	SeedCommand []string
	SeedDir     string
	// ReadOnly asks for a second role that may read but not write the
	// database; its URL is DatabaseInfo.ReadOnlyURL.
	ReadOnly bool
	// Shared, when set, names an existing database that the previews of
	// an app share read-only: the preview gets no database of its own,
	// only a read-only role on Shared (DatabaseInfo.URL and ReadOnlyURL
	// both use it). Template, Migrations and Seed must be empty. Remove
	// drops the role and leaves the shared database alone.
	Shared string
}

// Validate checks the request: app a DNS label, PR positive, generation not
// negative, labels naming the same preview, at most one of Template and
// Migrations, nothing of the kind with Shared, script names unique and not
// empty. It returns an
// InvalidArgument error naming the first problem.
func (r DatabaseRequest) Validate() error {
	if err := ValidateDNSLabel(r.App); err != nil {
		return Errorf(InvalidArgument, "app name %q: %v", r.App, err)
	}
	if r.PR <= 0 {
		return Errorf(InvalidArgument, "pull request number must be a positive integer, got %d", r.PR)
	}
	if r.Generation < 0 {
		return Errorf(InvalidArgument, "generation must not be negative, got %d", r.Generation)
	}
	t, ok := r.Labels.Target()
	if !ok || t.App != r.App || t.PR != r.PR {
		return Errorf(InvalidArgument, "database labels must be Glimpse's ownership labels of %s#%d", r.App, r.PR)
	}
	if r.Template != "" && len(r.Migrations) > 0 {
		return Errorf(InvalidArgument, "a database comes from a template or from migrations, not both")
	}
	if r.Shared != "" && (r.Template != "" || len(r.Migrations) > 0 || len(r.Seed) > 0 || len(r.SeedCommand) > 0) {
		return Errorf(InvalidArgument, "a shared database takes no template, migrations or seed")
	}
	if len(r.SeedCommand) > 0 && r.SeedCommand[0] == "" {
		return Errorf(InvalidArgument, "the seed command names no program")
	}
	for _, set := range []struct {
		what    string
		scripts []SQLScript
	}{{"migration", r.Migrations}, {"seed script", r.Seed}} {
		seen := map[string]bool{}
		for _, s := range set.scripts {
			if s.Name == "" {
				return Errorf(InvalidArgument, "a %s has no name", set.what)
			}
			if seen[s.Name] {
				return Errorf(InvalidArgument, "%s %q is given twice", set.what, s.Name)
			}
			seen[s.Name] = true
		}
	}
	return nil
}

// DatabaseStatus is a database as Databases reports it: no credentials.
type DatabaseStatus struct {
	// Name is the database's name on the server.
	Name       string `json:"name"`
	App        string `json:"app"`
	PR         int    `json:"pr"`
	Generation int64  `json:"generation,omitempty"`
	Labels     Labels `json:"labels,omitempty"`
	// Applied are the names of the migrations applied, in order.
	Applied []string `json:"applied,omitempty"`
	// Shared is the shared database the preview reads (Name equals it),
	// empty when the preview has its own database.
	Shared string `json:"shared,omitempty"`
	// Incomplete marks a database whose build did not finish (a crash
	// during a template copy, a migration or the seed); Ensure replaces it
	// and Remove and gc drop it.
	Incomplete bool `json:"incomplete,omitempty"`
}

// DatabaseInfo is what Ensure returns. URL and ReadOnlyURL hold a password:
// they are secrets, given to the preview's function only (as DATABASE_URL),
// and never marshalled (json "-") so they cannot reach labels, logs or
// status output by accident.
type DatabaseInfo struct {
	DatabaseStatus
	// URL connects as the preview's role, which owns the database.
	URL string `json:"-"`
	// ReadOnlyURL connects as the preview's read-only role; empty unless
	// DatabaseRequest.ReadOnly.
	ReadOnlyURL string `json:"-"`
	// Created is true when this call created the database.
	Created bool `json:"created"`
}

// ReadSQLDir returns the *.sql files directly in dir as scripts, sorted by
// file name (so "001_init.sql" runs before "002_users.sql"). A missing
// directory is NotFound; a directory with no .sql file is InvalidArgument.
func ReadSQLDir(dir string) ([]SQLScript, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Errorf(NotFound, "SQL directory %s does not exist", dir)
	}
	if err != nil {
		return nil, Errorf(InvalidArgument, "reading SQL directory: %w", err)
	}
	var out []SQLScript
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, Errorf(InvalidArgument, "reading SQL file: %w", err)
		}
		out = append(out, SQLScript{Name: e.Name(), SQL: string(b)})
	}
	if len(out) == 0 {
		return nil, Errorf(InvalidArgument, "SQL directory %s holds no .sql file", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// OrphanDatabases returns the databases of found whose preview is not live:
// the ones a gc drops. It does no I/O. live reports whether app's pull
// request pr still has a preview.
func OrphanDatabases(found []DatabaseStatus, live func(app string, pr int) bool) []DatabaseStatus {
	var out []DatabaseStatus
	for _, d := range found {
		if !live(d.App, d.PR) {
			out = append(out, d)
		}
	}
	return out
}

// CollectDatabases drops the databases of owner that OrphanDatabases picks
// among those db lists, and returns the ones it dropped. A database it
// fails to drop does not stop the others: the errors are joined, each
// naming its database. It is idempotent: a second run finds nothing.
func CollectDatabases(ctx context.Context, db Database, owner string, live func(app string, pr int) bool) ([]DatabaseStatus, error) {
	found, err := db.Databases(ctx, Selector(owner, "", 0))
	if err != nil {
		return nil, err
	}
	var dropped []DatabaseStatus
	var errs []error
	done := map[string]bool{}
	for _, d := range OrphanDatabases(found, live) {
		key := fmt.Sprintf("%s#%d", d.App, d.PR)
		if done[key] {
			dropped = append(dropped, d)
			continue
		}
		if err := db.Remove(ctx, d.App, d.PR); err != nil {
			errs = append(errs, WithCode(codeOr(err, Internal), fmt.Errorf("dropping database %s: %w", d.Name, err)))
			continue
		}
		done[key] = true
		dropped = append(dropped, d)
	}
	return dropped, errors.Join(errs...)
}

// DatabaseProviders open Databases, "postgres://HOST:PORT/DB".
var DatabaseProviders = NewMux[Database]("database")

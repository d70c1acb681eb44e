// Package postgresdb is a preview.Database on a PostgreSQL server: each
// preview gets its own database, copied from a template database
// (CREATE DATABASE ... TEMPLATE, a fast file-level clone) or built from the
// app's migrations and seed SQL, and its own login role, which owns that
// database and can connect to no other preview's (CONNECT is revoked from
// PUBLIC on every preview database). A second, read-only role is made on
// request. In the shared mode (DatabaseRequest.Shared) a preview gets no
// database, only a read-only role on an existing database that every
// preview of the app reads; Remove revokes and drops that role and never
// touches the shared database.
//
// Migrations run in name order, each in its own transaction, once per name
// (the names applied are recorded with the database; a later Ensure
// applies only new ones); the seed scripts and then the seed command run
// once, when the database is created.
//
// Names follow one rule: prefix-app-pr-N ("glimpse-hello-pr-42"), shortened
// with preview.Shorten to fit PostgreSQL's 63-byte identifiers with room for
// the suffixes "-ro" (the read-only role) and "-building" (a database under
// construction). Every identifier is quoted. Ownership is recorded in the
// server: the database and its roles carry a comment "glimpse:" + JSON
// (labels, generation, applied migrations), so Databases, Remove and gc
// find everything a crash left, with no state elsewhere; a database or role
// of the same name without that comment is never touched (Ensure and
// Remove answer FailedPrecondition).
//
// A new database is built under its "-building" name and renamed when the
// copy, every migration and the seed succeeded; on failure it is dropped,
// so no half database carries the preview's name. Migrations and the seed
// run over a connection of the preview's own role, never the admin's, since
// they come from the pull request. Operations on one preview are
// serialised by a PostgreSQL advisory lock, so concurrent Ensures and
// Removes from several processes are safe; creations across previews are
// serialised briefly to enforce Options.MaxDatabases.
//
// Passwords are HMAC-SHA256(Options.PasswordKey, role name), sent to the
// server only as a SCRAM-SHA-256 verifier (never in a statement): stable for a
// given key, so Ensure returns the same URL every time; without a key a
// random one is drawn per Provider and every Ensure by a new Provider sets
// a new password (the Pipeline redeploys the function with it).
//
// URL (registered as postgres in preview.DatabaseProviders):
//
//	postgres://HOST[:PORT]/DB[?prefix=glimpse&maxDatabases=100&connectHost=H:P&sslmode=disable]
//	postgres:///?...   (the admin connection string from GLIMPSE_POSTGRES_URL)
//
// The admin credentials come from the environment: GLIMPSE_POSTGRES_USER
// and GLIMPSE_POSTGRES_PASSWORD, or a whole connection string in
// GLIMPSE_POSTGRES_URL; GLIMPSE_POSTGRES_PASSWORD_KEY sets PasswordKey.
// connectHost is the host:port functions use when it differs from the
// admin's. The admin role needs CREATEDB and CREATEROLE (or superuser).
//
// Errors: authentication and privilege failures are PermissionDenied; a
// server that cannot be reached, is shutting down or has the template in
// use is Unavailable; a migration or seed with an SQL error is
// InvalidArgument; a missing template is NotFound; MaxDatabases reached is
// ResourceExhausted. Messages are one line and never hold a password.
package postgresdb

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in
// preview.DatabaseProviders.
const Scheme = "postgres"

// Environment variables the URL opener reads.
const (
	EnvURL         = "GLIMPSE_POSTGRES_URL"
	EnvUser        = "GLIMPSE_POSTGRES_USER"
	EnvPassword    = "GLIMPSE_POSTGRES_PASSWORD"
	EnvPasswordKey = "GLIMPSE_POSTGRES_PASSWORD_KEY"
)

// Defaults of Options.
const (
	DefaultPrefix          = "glimpse"
	DefaultMaxDatabases    = 100
	DefaultConnectionLimit = 20
)

// commentPrefix begins the comment that marks a database or role as
// Glimpse's; the JSON after it is an ownership record.
const commentPrefix = "glimpse:"

// Suffixes of the names derived from a preview's base name.
const (
	suffixReadOnly = "-ro"
	suffixBuilding = "-building"
	// maxBase leaves room for the longest suffix within 63 bytes.
	maxBase = 63 - len(suffixBuilding)
)

func init() {
	preview.DatabaseProviders.Register(Scheme, openURL)
}

// Options configure a Provider. The zero value is usable.
type Options struct {
	// Prefix begins every database and role name; default "glimpse". It
	// must be a DNS label.
	Prefix string
	// MaxDatabases bounds the preview databases of this prefix on the
	// server; Ensure of a new one past it is ResourceExhausted. Zero means
	// DefaultMaxDatabases, negative means no limit.
	MaxDatabases int
	// ConnectionLimit bounds each preview role's connections; zero means
	// DefaultConnectionLimit.
	ConnectionLimit int
	// PasswordKey derives the preview roles' passwords; nil means a random
	// key drawn by New.
	PasswordKey []byte
	// ConnectHost is the host:port (or socket directory) put in the URLs
	// Ensure returns; empty means the admin connection's.
	ConnectHost string
	// SSLMode, when set, is put in the URLs Ensure returns ("require").
	SSLMode string
	// Logger receives the provider's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Provider is the PostgreSQL preview.Database. It is safe for concurrent
// use; Close releases its connections.
type Provider struct {
	pool    *pgxpool.Pool
	admin   *pgx.ConnConfig
	prefix  string
	max     int
	connLim int
	key     []byte
	host    string // host or socket directory in returned URLs
	port    string
	sslmode string
	log     *slog.Logger
}

var _ preview.Database = (*Provider)(nil)

// New returns a provider administering the server that adminDSN (a libpq
// connection string or postgres:// URL with the admin's credentials)
// names. It checks its arguments and connects lazily: the first call
// reports an unreachable server.
func New(adminDSN string, opts *Options) (*Provider, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg, err := pgxpool.ParseConfig(adminDSN)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "postgres admin connection string does not parse")
	}
	cfg.MaxConns = 8
	p := &Provider{
		admin:   cfg.ConnConfig,
		prefix:  opts.Prefix,
		max:     opts.MaxDatabases,
		connLim: opts.ConnectionLimit,
		key:     opts.PasswordKey,
		sslmode: opts.SSLMode,
		log:     opts.Logger,
	}
	if p.prefix == "" {
		p.prefix = DefaultPrefix
	}
	if err := preview.ValidateDNSLabel(p.prefix); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "postgres prefix %q: %v", p.prefix, err)
	}
	if p.max == 0 {
		p.max = DefaultMaxDatabases
	}
	if p.connLim <= 0 {
		p.connLim = DefaultConnectionLimit
	}
	if p.key == nil {
		p.key = make([]byte, 32)
		rand.Read(p.key)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.host, p.port = cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))
	if opts.ConnectHost != "" {
		p.host, p.port = opts.ConnectHost, ""
		if h, port, err := net.SplitHostPort(opts.ConnectHost); err == nil {
			p.host, p.port = h, port
		}
	}
	p.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "postgres admin connection: %v", err)
	}
	return p, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Database, error) {
	q, err := preview.QueryParams(u, "prefix", "maxDatabases", "connectHost", "sslmode")
	if err != nil {
		return nil, err
	}
	opts := &Options{Prefix: q.Get("prefix"), ConnectHost: q.Get("connectHost"), SSLMode: q.Get("sslmode"), Logger: o.Log()}
	if s := q.Get("maxDatabases"); s != "" {
		if opts.MaxDatabases, err = strconv.Atoi(s); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "maxDatabases %q is not a number", s)
		}
	}
	if k := o.Env(EnvPasswordKey); k != "" {
		opts.PasswordKey = []byte(k)
	}
	dsn := o.Env(EnvURL)
	if u.Host != "" || dsn == "" {
		if u.Host == "" {
			return nil, preview.Errorf(preview.InvalidArgument, "postgres URL names no server and %s is not set", EnvURL)
		}
		a := url.URL{Scheme: "postgres", Host: u.Host, Path: u.Path}
		if user := o.Env(EnvUser); user != "" {
			a.User = url.UserPassword(user, o.Env(EnvPassword))
		}
		if opts.SSLMode != "" {
			a.RawQuery = url.Values{"sslmode": {opts.SSLMode}}.Encode()
		}
		dsn = a.String()
	}
	return New(dsn, opts)
}

// Close releases the provider's connections. Calls after Close fail.
func (p *Provider) Close() { p.pool.Close() }

// names are the identifiers of one preview.
type names struct {
	base, db, building, role, ro string
}

func (p *Provider) names(app string, pr int) names {
	base := preview.Shorten(p.prefix+"-"+app+"-pr-"+strconv.Itoa(pr), maxBase)
	return names{base: base, db: base, building: base + suffixBuilding, role: base, ro: base + suffixReadOnly}
}

// record is the ownership record in a database's or role's comment.
type record struct {
	Labels     preview.Labels `json:"labels"`
	Generation int64          `json:"generation,omitempty"`
	Applied    []string       `json:"applied,omitempty"`
	Incomplete bool           `json:"incomplete,omitempty"`
	// Shared, on a read-only role, is the shared database it reads.
	Shared string `json:"shared,omitempty"`
}

func (r record) comment() string {
	b, _ := json.Marshal(r)
	return commentPrefix + string(b)
}

// parseRecord reads a comment; ok is false when it is not Glimpse's.
func parseRecord(comment string) (r record, ok bool) {
	s, found := strings.CutPrefix(comment, commentPrefix)
	if !found || json.Unmarshal([]byte(s), &r) != nil {
		return record{}, false
	}
	_, ok = r.Labels.Target()
	return r, ok
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes s as an SQL string constant (standard_conforming_strings
// is on on every supported server).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (p *Provider) password(role string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte("glimpse-postgres-password\x00" + role))
	return hex.EncodeToString(m.Sum(nil))
}

// scramVerifier returns the SCRAM-SHA-256 verifier of password (RFC 5802,
// RFC 7677, in PostgreSQL's stored format) with a random salt, so the
// password itself never travels to the server or into its statement logs.
// password is ASCII (hex), which SASLprep leaves unchanged.
func scramVerifier(password string) string {
	const iterations = 4096
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key")))
}

// url is the connection URL of role on db, for the function.
func (p *Provider) url(role, db string) string { return p.urlAt(p.host, p.port, role, db) }

// urlAt is the connection URL of role on db at host (a name, an address
// or a socket directory) and port.
func (p *Provider) urlAt(host, port, role, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, p.password(role)), Path: "/" + db}
	q := url.Values{}
	if strings.HasPrefix(host, "/") {
		q.Set("host", host)
		if port != "" {
			q.Set("port", port)
		}
	} else {
		u.Host = host
		if port != "" {
			u.Host = net.JoinHostPort(host, port)
		}
	}
	if p.sslmode != "" {
		q.Set("sslmode", p.sslmode)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// lock takes the session advisory lock named key on conn and returns its
// release.
func lock(ctx context.Context, conn *pgxpool.Conn, key string) (func(), error) {
	h := fnv.New64a()
	h.Write([]byte(key))
	id := int64(h.Sum64())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", id); err != nil {
			// A session that cannot unlock must not go back to the pool
			// holding the lock.
			conn.Conn().Close(ctx)
		}
	}, nil
}

// acquire returns an admin connection holding the lock of preview n.
func (p *Provider) acquire(ctx context.Context, n names) (*pgxpool.Conn, func(), error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, classify(ctx, err, "connecting to PostgreSQL")
	}
	unlock, err := lock(ctx, conn, "glimpse-db:"+n.base)
	if err != nil {
		conn.Release()
		return nil, nil, classify(ctx, err, "locking preview database "+n.db)
	}
	return conn, func() { unlock(); conn.Release() }, nil
}

// shared is a database or role found by name, with its comment.
type shared struct {
	exists  bool
	comment string
}

func lookupDB(ctx context.Context, conn *pgxpool.Conn, name string) (shared, error) {
	var c *string
	err := conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name).Scan(&c)
	return found(c, err)
}

func lookupRole(ctx context.Context, conn *pgxpool.Conn, name string) (shared, error) {
	var c *string
	err := conn.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", name).Scan(&c)
	return found(c, err)
}

func found(c *string, err error) (shared, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return shared{}, nil
	}
	if err != nil {
		return shared{}, err
	}
	s := shared{exists: true}
	if c != nil {
		s.comment = *c
	}
	return s, nil
}

// Ensure implements preview.Database.
func (p *Provider) Ensure(ctx context.Context, req preview.DatabaseRequest) (preview.DatabaseInfo, error) {
	if err := req.Validate(); err != nil {
		return preview.DatabaseInfo{}, err
	}
	n := p.names(req.App, req.PR)
	conn, release, err := p.acquire(ctx, n)
	if err != nil {
		return preview.DatabaseInfo{}, err
	}
	defer release()
	if req.Shared != "" {
		return p.ensureShared(ctx, conn, n, req)
	}

	cur, err := lookupDB(ctx, conn, n.db)
	if err != nil {
		return preview.DatabaseInfo{}, classify(ctx, err, "reading database "+n.db)
	}
	rec := record{Labels: req.Labels.Clone(), Generation: req.Generation}
	created := false
	if cur.exists {
		old, ok := parseRecord(cur.comment)
		if !ok {
			return preview.DatabaseInfo{}, preview.Errorf(preview.FailedPrecondition, "database %s exists and is not Glimpse's; refusing to use it", n.db)
		}
		if old.Generation > req.Generation && req.Generation > 0 {
			return preview.DatabaseInfo{}, fmt.Errorf("%w: database %s is at generation %d, refusing generation %d", preview.ErrStaleGeneration, n.db, old.Generation, req.Generation)
		}
		if req.Generation == 0 {
			rec.Generation = old.Generation
		}
		rec.Applied = old.Applied
		if err := p.ensureRoles(ctx, conn, n, req); err != nil {
			return preview.DatabaseInfo{}, err
		}
		applied, err := p.finish(ctx, n, n.db, req, rec.Applied, false)
		if err != nil {
			// Record the migrations that did apply, under the old labels
			// and generation: this Up did not take the database over.
			old.Applied = applied
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if cerr := p.comment(cctx, conn, "DATABASE", n.db, old); cerr != nil {
				p.log.Warn("recording applied migrations", "database", n.db, "err", cerr)
			}
			return preview.DatabaseInfo{}, err
		}
		rec.Applied = applied
		if err := p.comment(ctx, conn, "DATABASE", n.db, rec); err != nil {
			return preview.DatabaseInfo{}, err
		}
	} else {
		if rec.Applied, err = p.create(ctx, conn, n, req, rec); err != nil {
			return preview.DatabaseInfo{}, err
		}
		created = true
	}
	info := preview.DatabaseInfo{
		DatabaseStatus: preview.DatabaseStatus{Name: n.db, App: req.App, PR: req.PR, Generation: rec.Generation, Labels: rec.Labels, Applied: rec.Applied},
		URL:            p.url(n.role, n.db),
		Created:        created,
	}
	if req.ReadOnly {
		info.ReadOnlyURL = p.url(n.ro, n.db)
	}
	return info, nil
}

// create builds the preview's database under its building name and renames
// it when complete; on failure it drops it. conn holds the preview's lock.
func (p *Provider) create(ctx context.Context, conn *pgxpool.Conn, n names, req preview.DatabaseRequest, rec record) ([]string, error) {
	if err := p.dropDB(ctx, conn, n.building); err != nil {
		return nil, err
	}
	err := p.ensureRoles(ctx, conn, n, req)
	if err == nil {
		err = p.createDB(ctx, conn, n, req.Template, rec)
	}
	var applied []string
	if err == nil {
		applied, err = p.finish(ctx, n, n.building, req, nil, true)
	}
	if err == nil {
		rec.Applied = applied
		_, err = conn.Exec(ctx, "ALTER DATABASE "+ident(n.building)+" RENAME TO "+ident(n.db))
		err = classify(ctx, err, "renaming database "+n.building)
		if err == nil {
			err = p.comment(ctx, conn, "DATABASE", n.db, rec)
		}
	}
	if err != nil {
		// The build failed or was cancelled: leave nothing under either
		// name, even when ctx is done.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn.Conn().IsClosed() {
			// A cancelled statement can cost the session, and its lock
			// with it: take a new one.
			c, rel, aerr := p.acquire(cctx, n)
			if aerr != nil {
				p.log.Warn("cleaning up a failed preview database (Remove or gc will retry)", "database", n.db, "err", aerr)
				return nil, err
			}
			defer rel()
			conn = c
		}
		derr := errors.Join(p.dropDB(cctx, conn, n.building), p.dropDB(cctx, conn, n.db))
		if derr == nil {
			// No database of the preview exists, so its roles serve nothing.
			derr = p.dropRoles(cctx, conn, n)
		}
		if derr != nil {
			p.log.Warn("cleaning up a failed preview database (Remove or gc will retry)", "database", n.db, "err", derr)
		}
		return nil, err
	}
	return applied, nil
}

// createDB runs CREATE DATABASE for n.building, under the server-wide
// creation lock that makes MaxDatabases exact.
func (p *Provider) createDB(ctx context.Context, conn *pgxpool.Conn, n names, template string, rec record) error {
	if template != "" {
		t, err := lookupDB(ctx, conn, template)
		if err != nil {
			return classify(ctx, err, "reading template database "+template)
		}
		if !t.exists {
			return preview.Errorf(preview.NotFound, "template database %s does not exist", template)
		}
	}
	gconn, err := p.pool.Acquire(ctx)
	if err != nil {
		return classify(ctx, err, "connecting to PostgreSQL")
	}
	defer gconn.Release()
	unlock, err := lock(ctx, gconn, "glimpse-db-create:"+p.prefix)
	if err != nil {
		return classify(ctx, err, "taking the database creation lock")
	}
	defer unlock()
	if p.max > 0 {
		all, err := p.list(ctx, conn)
		if err != nil {
			return err
		}
		count := 0
		for _, d := range all {
			if !d.roleOnly {
				count++
			}
		}
		if count >= p.max {
			return preview.Errorf(preview.ResourceExhausted, "the server holds %d preview databases, the limit (maxDatabases); remove some or raise it", count)
		}
	}
	stmt := "CREATE DATABASE " + ident(n.building) + " OWNER " + ident(n.role)
	if template != "" {
		stmt += " TEMPLATE " + ident(template)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return classify(ctx, err, "creating database "+n.db)
	}
	building := rec
	building.Incomplete = true
	if err := p.comment(ctx, conn, "DATABASE", n.building, building); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "REVOKE ALL ON DATABASE "+ident(n.building)+" FROM PUBLIC")
	return classify(ctx, err, "restricting database "+n.db)
}

// ensureRoles creates the preview's role (and the read-only one when
// asked) or, when they exist, sets their password and comment again.
func (p *Provider) ensureRoles(ctx context.Context, conn *pgxpool.Conn, n names, req preview.DatabaseRequest) error {
	if cur, err := lookupRole(ctx, conn, n.ro); err != nil {
		return classify(ctx, err, "reading role "+n.ro)
	} else if old, ok := parseRecord(cur.comment); cur.exists && ok && old.Shared != "" {
		return preview.Errorf(preview.FailedPrecondition, "preview %s#%d reads the shared database %s; remove it before giving it its own", req.App, req.PR, old.Shared)
	}
	roles := []string{n.role}
	if req.ReadOnly {
		roles = append(roles, n.ro)
	}
	for _, role := range roles {
		if _, _, err := p.upsertRole(ctx, conn, role, record{Labels: req.Labels}, role == n.ro); err != nil {
			return err
		}
	}
	// A non-superuser admin (CREATEROLE) must be a member of the preview
	// role to create a database it owns; granting is harmless otherwise.
	_, err := conn.Exec(ctx, "GRANT "+ident(n.role)+" TO CURRENT_USER")
	return classify(ctx, err, "granting role "+n.role)
}

// upsertRole creates role, or sets its attributes and password again when
// it exists and is Glimpse's, and labels it with rec. It returns the
// role's previous record and whether it created it. A read-only role has
// default_transaction_read_only on (its privileges are what enforce it).
func (p *Provider) upsertRole(ctx context.Context, conn *pgxpool.Conn, role string, rec record, readOnly bool) (old record, created bool, err error) {
	cur, err := lookupRole(ctx, conn, role)
	if err != nil {
		return old, false, classify(ctx, err, "reading role "+role)
	}
	attrs := " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT " +
		strconv.Itoa(p.connLim) + " PASSWORD " + literal(scramVerifier(p.password(role)))
	if cur.exists {
		var ok bool
		if old, ok = parseRecord(cur.comment); !ok {
			return old, false, preview.Errorf(preview.FailedPrecondition, "role %s exists and is not Glimpse's; refusing to use it", role)
		}
		if old.Shared != rec.Shared {
			return old, false, nil // the caller decides
		}
		_, err = conn.Exec(ctx, "ALTER ROLE "+ident(role)+attrs)
	} else {
		_, err = conn.Exec(ctx, "CREATE ROLE "+ident(role)+attrs)
	}
	if err != nil {
		return old, false, classify(ctx, err, "creating role "+role)
	}
	if readOnly {
		if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(role)+" SET default_transaction_read_only = on"); err != nil {
			return old, !cur.exists, classify(ctx, err, "restricting role "+role)
		}
	}
	return old, !cur.exists, p.comment(ctx, conn, "ROLE", role, rec)
}

// ensureShared gives the preview a read-only role on req.Shared. conn
// holds the preview's lock.
func (p *Provider) ensureShared(ctx context.Context, conn *pgxpool.Conn, n names, req preview.DatabaseRequest) (preview.DatabaseInfo, error) {
	own, err := lookupDB(ctx, conn, n.db)
	if err != nil {
		return preview.DatabaseInfo{}, classify(ctx, err, "reading database "+n.db)
	}
	if own.exists {
		return preview.DatabaseInfo{}, preview.Errorf(preview.FailedPrecondition, "preview %s#%d has its own database %s; remove it before sharing %s", req.App, req.PR, n.db, req.Shared)
	}
	sh, err := lookupDB(ctx, conn, req.Shared)
	if err != nil {
		return preview.DatabaseInfo{}, classify(ctx, err, "reading database "+req.Shared)
	}
	if !sh.exists {
		return preview.DatabaseInfo{}, preview.Errorf(preview.NotFound, "shared database %s does not exist", req.Shared)
	}
	rec := record{Labels: req.Labels.Clone(), Generation: req.Generation, Shared: req.Shared}
	if cur, err := lookupRole(ctx, conn, n.ro); err != nil {
		return preview.DatabaseInfo{}, classify(ctx, err, "reading role "+n.ro)
	} else if old, ok := parseRecord(cur.comment); cur.exists && ok {
		if old.Generation > req.Generation && req.Generation > 0 {
			return preview.DatabaseInfo{}, fmt.Errorf("%w: preview %s#%d is at generation %d, refusing generation %d", preview.ErrStaleGeneration, req.App, req.PR, old.Generation, req.Generation)
		}
		if req.Generation == 0 {
			rec.Generation = old.Generation
		}
		if old.Shared != req.Shared {
			// Another shared database before (or a leftover of one of its
			// own): take the role's rights there away first.
			if err := p.dropRoles(ctx, conn, n); err != nil {
				return preview.DatabaseInfo{}, err
			}
		}
	}
	_, created, err := p.upsertRole(ctx, conn, n.ro, rec, true)
	if err == nil {
		err = p.grantShared(ctx, conn, n.ro, req.Shared)
	}
	if err != nil {
		if created {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if derr := p.dropRoles(cctx, conn, n); derr != nil {
				p.log.Warn("dropping a failed preview role (Remove or gc will retry)", "role", n.ro, "err", derr)
			}
		}
		return preview.DatabaseInfo{}, err
	}
	u := p.url(n.ro, req.Shared)
	return preview.DatabaseInfo{
		DatabaseStatus: preview.DatabaseStatus{Name: req.Shared, App: req.App, PR: req.PR, Generation: rec.Generation, Labels: rec.Labels, Shared: req.Shared},
		URL:            u,
		ReadOnlyURL:    u,
		Created:        created,
	}, nil
}

// grantShared lets role connect to db and read every table there now.
func (p *Provider) grantShared(ctx context.Context, conn *pgxpool.Conn, role, db string) error {
	// Membership lets a non-superuser admin DROP OWNED BY the role later.
	if _, err := conn.Exec(ctx, "GRANT "+ident(role)+" TO CURRENT_USER; GRANT CONNECT ON DATABASE "+ident(db)+" TO "+ident(role)); err != nil {
		return classify(ctx, err, "granting "+role+" access to "+db)
	}
	admin, err := p.connect(ctx, p.admin.User, p.admin.Password, db)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	return grantAll(ctx, admin, "SELECT", role)
}

func isOurs(comment string) bool {
	_, ok := parseRecord(comment)
	return ok
}

func (p *Provider) comment(ctx context.Context, conn *pgxpool.Conn, kind, name string, rec record) error {
	_, err := conn.Exec(ctx, "COMMENT ON "+kind+" "+ident(name)+" IS "+literal(rec.comment()))
	return classify(ctx, err, "labelling "+strings.ToLower(kind)+" "+name)
}

// finish brings database db (n.db or n.building) to the request: grants
// on objects copied from a template, the migrations not in applied, the
// seed when fresh, the read-only role's rights. It returns the applied
// migrations, also when a migration failed (those before it stay applied
// on an existing database: each runs in its own transaction).
func (p *Provider) finish(ctx context.Context, n names, db string, req preview.DatabaseRequest, applied []string, fresh bool) ([]string, error) {
	done := map[string]bool{}
	for _, a := range applied {
		done[a] = true
	}
	var pending []preview.SQLScript
	for _, m := range req.Migrations {
		if !done[m.Name] {
			pending = append(pending, m)
		}
	}
	var seed []preview.SQLScript
	if fresh {
		seed = req.Seed
	}
	grantTemplate := fresh && req.Template != ""
	// Connections to a new database cost tens of milliseconds: open only
	// those the request needs.
	var admin, own *pgx.Conn
	if grantTemplate || req.ReadOnly {
		c, err := p.connect(ctx, p.admin.User, p.admin.Password, db)
		if err != nil {
			return applied, err
		}
		defer c.Close(context.Background())
		admin = c
	}
	if len(pending) > 0 || len(seed) > 0 || req.ReadOnly {
		// (SeedCommand connects by itself.)
		c, err := p.connect(ctx, n.role, p.password(n.role), db)
		if err != nil {
			return applied, err
		}
		defer c.Close(context.Background())
		own = c
	}
	if grantTemplate {
		// Objects copied from the template keep the template's owner: give
		// the preview role every right on them.
		if err := grantAll(ctx, admin, "ALL", n.role); err != nil {
			return applied, err
		}
	}
	for _, m := range pending {
		if err := pgx.BeginFunc(ctx, own, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, m.SQL)
			return err
		}); err != nil {
			return applied, classify(ctx, err, "migration "+m.Name)
		}
		applied = append(applied, m.Name)
	}
	for _, s := range seed {
		if _, err := own.Exec(ctx, s.SQL); err != nil {
			return applied, classify(ctx, err, "seed "+s.Name)
		}
	}
	if fresh && len(req.SeedCommand) > 0 {
		if err := p.runSeedCommand(ctx, req, p.urlAt(p.admin.Host, strconv.Itoa(int(p.admin.Port)), n.role, db)); err != nil {
			return applied, err
		}
	}
	if req.ReadOnly {
		// Tables that exist now (the template's as the admin, the role's
		// own as the role), and those the role creates later.
		if _, err := admin.Exec(ctx, "GRANT CONNECT ON DATABASE "+ident(db)+" TO "+ident(n.ro)); err != nil {
			return applied, classify(ctx, err, "granting read access to "+n.ro)
		}
		if err := grantAll(ctx, admin, "SELECT", n.ro); err != nil {
			return applied, err
		}
		if _, err := own.Exec(ctx, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO "+ident(n.ro)+
			"; ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO "+ident(n.ro)); err != nil {
			return applied, classify(ctx, err, "granting read access to "+n.ro)
		}
	}
	return applied, nil
}

// runSeedCommand runs req.SeedCommand with DATABASE_URL set to dbURL and
// nothing else of Glimpse's environment (which holds the admin's
// credentials). Its failure is InvalidArgument with the last lines of its
// output.
func (p *Provider) runSeedCommand(ctx context.Context, req preview.DatabaseRequest, dbURL string) error {
	cmd := exec.CommandContext(ctx, req.SeedCommand[0], req.SeedCommand[1:]...)
	cmd.Dir = req.SeedDir
	cmd.Env = []string{"DATABASE_URL=" + dbURL}
	for _, k := range []string{"PATH", "HOME", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return classify(ctx, err, "seed command")
		}
		tail := strings.TrimSpace(out.String())
		if len(tail) > 300 {
			tail = "..." + tail[len(tail)-300:]
		}
		return preview.Errorf(preview.InvalidArgument, "seed command %s: %v: %s", req.SeedCommand[0], err, oneLine(strings.ReplaceAll(tail, dbURL, "$DATABASE_URL")))
	}
	return nil
}

// grantAll grants privs ("ALL" or "SELECT") on every user schema's tables
// and sequences (and USAGE, or ALL, on the schemas) to role.
func grantAll(ctx context.Context, conn *pgx.Conn, privs, role string) error {
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace
		WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'`)
	if err != nil {
		return classify(ctx, err, "listing schemas")
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return classify(ctx, err, "listing schemas")
	}
	schemaPrivs := "USAGE"
	if privs == "ALL" {
		schemaPrivs = "ALL"
	}
	var b strings.Builder
	for _, s := range schemas {
		fmt.Fprintf(&b, "GRANT %s ON SCHEMA %s TO %s; GRANT %s ON ALL TABLES IN SCHEMA %[2]s TO %[3]s; GRANT %[4]s ON ALL SEQUENCES IN SCHEMA %[2]s TO %[3]s;",
			schemaPrivs, ident(s), ident(role), privs)
	}
	if b.Len() == 0 {
		return nil
	}
	_, err = conn.Exec(ctx, b.String())
	return classify(ctx, err, "granting "+strings.ToLower(privs)+" rights to "+role)
}

// connect opens a connection to db on the admin's server as user.
func (p *Provider) connect(ctx context.Context, user, password, db string) (*pgx.Conn, error) {
	cfg := p.admin.Copy()
	cfg.User, cfg.Password, cfg.Database = user, password, db
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, err, "connecting to database "+db+" as "+user)
	}
	return conn, nil
}

// dropDB drops database name if it exists and is Glimpse's.
func (p *Provider) dropDB(ctx context.Context, conn *pgxpool.Conn, name string) error {
	cur, err := lookupDB(ctx, conn, name)
	if err != nil {
		return classify(ctx, err, "reading database "+name)
	}
	if !cur.exists {
		return nil
	}
	if !isOurs(cur.comment) {
		return preview.Errorf(preview.FailedPrecondition, "database %s exists and is not Glimpse's; refusing to drop it", name)
	}
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	return classify(ctx, err, "dropping database "+name)
}

// Remove implements preview.Database: it drops the database (and a
// half-built one), then the read-only role and the preview role. Objects
// or roles of those names without Glimpse's comment are left alone and
// reported as FailedPrecondition. A failure part-way leaves the rest for
// the next Remove or gc, which find it by its comment.
func (p *Provider) Remove(ctx context.Context, app string, pr int) error {
	if err := preview.ValidateDNSLabel(app); err != nil || pr <= 0 {
		return preview.Errorf(preview.InvalidArgument, "no preview database for app %q pull request %d", app, pr)
	}
	n := p.names(app, pr)
	conn, release, err := p.acquire(ctx, n)
	if err != nil {
		return err
	}
	defer release()
	for _, db := range []string{n.building, n.db} {
		if err := p.dropDB(ctx, conn, db); err != nil {
			return err
		}
	}
	return p.dropRoles(ctx, conn, n)
}

// dropRoles drops the preview's read-only role and role, when they exist
// and are Glimpse's. Their database must be gone.
func (p *Provider) dropRoles(ctx context.Context, conn *pgxpool.Conn, n names) error {
	for _, role := range []string{n.ro, n.role} {
		cur, err := lookupRole(ctx, conn, role)
		if err != nil {
			return classify(ctx, err, "reading role "+role)
		}
		if !cur.exists {
			continue
		}
		rec, ok := parseRecord(cur.comment)
		if !ok {
			return preview.Errorf(preview.FailedPrecondition, "role %s exists and is not Glimpse's; refusing to drop it", role)
		}
		if rec.Shared != "" {
			if err := p.revokeShared(ctx, conn, role, rec.Shared); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+ident(role)); err != nil {
			return classify(ctx, err, "dropping role "+role)
		}
	}
	return nil
}

// revokeShared takes role's rights on the shared database db away (DROP
// OWNED there revokes them, the database's CONNECT included; the role owns
// nothing). A shared database already gone is success.
func (p *Provider) revokeShared(ctx context.Context, conn *pgxpool.Conn, role, db string) error {
	sh, err := lookupDB(ctx, conn, db)
	if err != nil || !sh.exists {
		return classify(ctx, err, "reading database "+db)
	}
	c, err := p.connect(ctx, p.admin.User, p.admin.Password, db)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, "DROP OWNED BY "+ident(role))
	return classify(ctx, err, "revoking "+role+"'s access to "+db)
}

// listed is one entry of list: a database, or a role whose database is
// gone (roleOnly), as a crash between CREATE ROLE and CREATE DATABASE
// leaves.
type listed struct {
	preview.DatabaseStatus
	roleOnly bool
}

// Databases implements preview.Database. Besides complete databases it
// reports, as Incomplete, half-built ones and preview roles left without a
// database, so that gc and Remove clean them.
func (p *Provider) Databases(ctx context.Context, selector preview.Labels) ([]preview.DatabaseStatus, error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, classify(ctx, err, "connecting to PostgreSQL")
	}
	defer conn.Release()
	all, err := p.list(ctx, conn)
	if err != nil {
		return nil, err
	}
	var out []preview.DatabaseStatus
	for _, d := range all {
		if d.Labels.Matches(selector) {
			out = append(out, d.DatabaseStatus)
		}
	}
	return out, nil
}

func (p *Provider) list(ctx context.Context, conn *pgxpool.Conn) ([]listed, error) {
	const q = `SELECT 'd', datname, shobj_description(oid, 'pg_database') FROM pg_database
		WHERE starts_with(datname, $1) AND starts_with(shobj_description(oid, 'pg_database'), $2)
		UNION ALL
		SELECT 'r', rolname, shobj_description(oid, 'pg_authid') FROM pg_roles
		WHERE starts_with(rolname, $1) AND starts_with(shobj_description(oid, 'pg_authid'), $2)`
	rows, err := conn.Query(ctx, q, p.prefix+"-", commentPrefix)
	if err != nil {
		return nil, classify(ctx, err, "listing preview databases")
	}
	var out []listed
	have := map[string]bool{} // base names with a database
	var roles []listed
	for rows.Next() {
		var kind, name, comment string
		if err := rows.Scan(&kind, &name, &comment); err != nil {
			rows.Close()
			return nil, classify(ctx, err, "listing preview databases")
		}
		rec, ok := parseRecord(comment)
		if !ok {
			continue
		}
		t, _ := rec.Labels.Target()
		n := p.names(t.App, t.PR)
		s := preview.DatabaseStatus{Name: name, App: t.App, PR: t.PR, Generation: rec.Generation, Labels: rec.Labels, Applied: rec.Applied, Incomplete: rec.Incomplete}
		switch {
		case kind == "d" && (name == n.db || name == n.building):
			have[n.base] = true
			out = append(out, listed{DatabaseStatus: s})
		case kind == "r" && name == n.ro && rec.Shared != "":
			s.Name, s.Shared = rec.Shared, rec.Shared
			roles = append(roles, listed{DatabaseStatus: s, roleOnly: true})
		case kind == "r" && (name == n.role || name == n.ro):
			s.Name, s.Incomplete = n.db, true
			roles = append(roles, listed{DatabaseStatus: s, roleOnly: true})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, err, "listing preview databases")
	}
	seen := map[string]bool{}
	for _, r := range roles {
		base := p.names(r.App, r.PR).base
		if !have[base] && !seen[base] {
			seen[base] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// classify gives err a preview code and a one-line message beginning with
// what. A done ctx decides first: its error is the cause.
func classify(ctx context.Context, err error, what string) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return preview.WithCode(preview.CodeOf(cerr), fmt.Errorf("%s: %w", what, cerr))
	}
	var pe *preview.Error
	if errors.As(err, &pe) {
		return err
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return preview.WithCode(pgCode(pg.Code), fmt.Errorf("%s: %s (SQLSTATE %s)", what, oneLine(pg.Message), pg.Code))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return preview.WithCode(preview.CodeOf(err), fmt.Errorf("%s: %w", what, err))
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return preview.Errorf(preview.Unavailable, "%s: PostgreSQL server unreachable: %s", what, oneLine(rootCause(err).Error()))
	}
	return preview.Errorf(preview.Internal, "%s: %s", what, oneLine(err.Error()))
}

// pgCode maps an SQLSTATE to a preview code.
func pgCode(state string) preview.Code {
	switch state {
	case "3D000": // invalid_catalog_name
		return preview.NotFound
	case "42P04", "42710": // duplicate_database, duplicate_object
		return preview.AlreadyExists
	case "42501": // insufficient_privilege
		return preview.PermissionDenied
	case "55006", "57P01", "57P02", "57P03": // object_in_use, shutdowns, cannot_connect_now
		return preview.Unavailable
	case "57014": // query_canceled
		return preview.Canceled
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return preview.Aborted
	}
	switch state[:2] {
	case "28": // invalid authorization
		return preview.PermissionDenied
	case "53": // insufficient resources, too many connections
		return preview.ResourceExhausted
	case "08": // connection exception
		return preview.Unavailable
	case "42", "22", "23", "2B", "P0": // syntax, data, integrity, dependents, PL/pgSQL
		return preview.InvalidArgument
	}
	return preview.Internal
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

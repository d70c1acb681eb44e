package postgresdb

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/glimpse-dev/glimpse/internal/pgtest"
)

// server is the PostgreSQL cluster this package's tests share, started
// by internal/pgtest.
type server struct {
	*pgtest.Server
	adminDSN string
}

// testServer is set by TestMain when GLIMPSE_PG_BINDIR is set; startErr
// says why it is not when starting failed.
var (
	testServer *server
	startErr   error
)

const adminPassword = pgtest.AdminPassword

func TestMain(m *testing.M) {
	code := func() int {
		bindir := os.Getenv(pgtest.EnvBindir)
		if bindir == "" {
			return m.Run()
		}
		s, err := pgtest.Start(bindir)
		if err != nil {
			startErr = err
			return m.Run()
		}
		testServer = &server{Server: s, adminDSN: s.AdminURL}
		defer s.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

// needServer returns the shared server, skipping (or failing under CI)
// when GLIMPSE_PG_BINDIR is unset.
func needServer(t testing.TB) *server {
	t.Helper()
	if startErr != nil {
		t.Fatalf("starting PostgreSQL: %v", startErr)
	}
	if testServer == nil {
		requireBindir(t)
	}
	return testServer
}

// admin opens an admin connection to db.
func (s *server) admin(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = db
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("admin connection to %s: %v", db, err)
	}
	return c
}

func (s *server) provider(t testing.TB, opts *Options) *Provider {
	t.Helper()
	p, err := New(s.adminDSN, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// query connects with url, runs sql (one or more statements, simple
// protocol) and returns the first column of every row as text.
func query(ctx context.Context, url, sql string) ([]string, error) {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	results, err := c.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range results {
		for _, row := range r.Rows {
			out = append(out, string(row[0]))
		}
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

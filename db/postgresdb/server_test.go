package postgresdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// server is the PostgreSQL cluster this package's tests share: initdb'd
// into a temporary directory, listening on a unix socket there and on a
// free 127.0.0.1 port, password (SCRAM) authentication over TCP, fsync off.
type server struct {
	dir, data string
	port      int
	adminDSN  string
	cred      *syscall.Credential
	log       string
}

// testServer is set by TestMain when GLIMPSE_PG_BINDIR is set; startErr
// says why it is not when starting failed.
var (
	testServer *server
	startErr   error
)

const adminPassword = "admin-secret"

func TestMain(m *testing.M) {
	code := func() int {
		bindir := os.Getenv("GLIMPSE_PG_BINDIR")
		if bindir == "" {
			return m.Run()
		}
		s, err := startServer(bindir)
		if err != nil {
			startErr = err
			return m.Run()
		}
		testServer = s
		defer s.stop(bindir)
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

func startServer(bindir string) (*server, error) {
	dir, err := os.MkdirTemp("", "glimpse-pg-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log")}
	// initdb refuses to run as root: run the server as the postgres user
	// then, and as ourselves otherwise.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(adminPassword+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := s.run(bindir, "initdb", "--no-sync", "-D", s.data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return nil, err
	}
	os.Remove(pwfile)
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir, s.port)
	if err := s.run(bindir, "pg_ctl", "start", "-w", "-t", "30", "-D", s.data, "-l", s.log, "-o", opts); err != nil {
		b, _ := os.ReadFile(s.log)
		return nil, fmt.Errorf("%v: %s", err, lastLines(string(b), 10))
	}
	s.adminDSN = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", adminPassword, s.port)
	return s, nil
}

func (s *server) run(bindir, prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(bindir, prog), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", prog, err, lastLines(string(out), 5))
	}
	return nil
}

func (s *server) stop(bindir string) {
	s.run(bindir, "pg_ctl", "stop", "-m", "immediate", "-D", s.data)
	os.RemoveAll(s.dir)
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

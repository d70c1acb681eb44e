// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// binaries in GLIMPSE_PG_BINDIR (.ci/steps/30-postgres.sh sets it): initdb
// into a temporary directory (as the postgres user when the test runs as
// root, since initdb refuses root), listening on a unix socket there and
// on a free 127.0.0.1 port, SCRAM password authentication over TCP, fsync
// off. Each Start makes its own cluster; Stop removes it.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// EnvBindir names the directory of initdb, pg_ctl and postgres.
const EnvBindir = "GLIMPSE_PG_BINDIR"

// AdminPassword is the password of the server's superuser "postgres".
const AdminPassword = "admin-secret"

// Server is a running cluster.
type Server struct {
	// Dir holds the cluster, its socket and its log.
	Dir string
	// Port is its TCP port on 127.0.0.1.
	Port int
	// AdminURL connects as the superuser over TCP (sslmode=disable).
	AdminURL string

	bindir, data, log string
	cred              *syscall.Credential
}

// Start initialises and starts a cluster with the binaries in bindir and
// waits until it accepts connections (about a second).
func Start(bindir string) (*Server, error) {
	dir, err := os.MkdirTemp("", "glimpse-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bindir: bindir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(AdminPassword+"\n"), 0o644); err != nil {
		return fail(err)
	}
	if err := s.run("initdb", "--no-sync", "-D", s.data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		return fail(err)
	}
	os.Remove(pwfile)
	if s.Port, err = freePort(); err != nil {
		return fail(err)
	}
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir, s.Port)
	if err := s.run("pg_ctl", "start", "-w", "-t", "30", "-D", s.data, "-l", s.log, "-o", opts); err != nil {
		b, _ := os.ReadFile(s.log)
		return fail(fmt.Errorf("%v: %s", err, LastLines(string(b), 10)))
	}
	s.AdminURL = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", AdminPassword, s.Port)
	return s, nil
}

func (s *Server) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bindir, prog), args...)
	cmd.Dir = s.Dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", prog, err, LastLines(string(out), 5))
	}
	return nil
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() {
	s.run("pg_ctl", "stop", "-m", "immediate", "-D", s.data)
	os.RemoveAll(s.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LastLines returns the last n lines of s joined with " | ".
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

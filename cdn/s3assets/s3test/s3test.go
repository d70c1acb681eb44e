// Package s3test starts a real S3-compatible server for tests: versitygw
// (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0) found at
// $GLIMPSE_VERSITYGW_BIN, serving a temporary directory on 127.0.0.1 on a
// free port, stopped when the test ends. Without the variable the test
// skips, and fails under CI (see internal/testenv), since .ci/run builds
// the server.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/internal/testenv"
)

// EnvVersityBin names the versitygw binary.
const EnvVersityBin = "GLIMPSE_VERSITYGW_BIN"

// Server is a running versitygw.
type Server struct {
	// Endpoint is its base URL, "http://127.0.0.1:PORT".
	Endpoint string
	// AccessKey and SecretKey are its root credentials.
	AccessKey, SecretKey string
	// Dir is the directory its posix backend serves (one subdirectory per
	// bucket).
	Dir string

	pid int
}

// CPUTime returns the user and system CPU time the server process has
// used so far (from /proc; 0 where there is none), for benchmarks that
// report what a request costs the server.
func (s *Server) CPUTime() time.Duration {
	return ProcessCPUTime(s.pid)
}

// ProcessCPUTime returns the user + system CPU time of process pid from
// /proc/PID/stat, or 0 when it cannot be read.
func ProcessCPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is parenthesised and may hold spaces:
	// count fields after its closing parenthesis. utime and stime are
	// fields 14 and 15, in clock ticks (100 per second on Linux).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * (time.Second / 100)
}

// Start starts versitygw for the test, or skips it (fails it under CI)
// when GLIMPSE_VERSITYGW_BIN is unset.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testenv.Require(t, EnvVersityBin, "versitygw (S3 server) to test against")
	var lastErr error
	for range 3 {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	dir := t.TempDir()
	// Take a free port and hand it over; another process could take it in
	// between, in which case the caller tries again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: "http://" + addr, AccessKey: "glimpse-test", SecretKey: "glimpse-test-secret", Dir: dir}
	var out bytes.Buffer
	// --keep-alive: versitygw closes every connection after one request
	// by default, which no S3 service does; without it every request of
	// a benchmark would pay for a new connection on both sides.
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr, "--health", "/health", "--quiet", "--keep-alive", "posix", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return s, nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, fmt.Errorf("versitygw exited: %v: %s", err, out.String())
		case <-deadline.C:
			stop()
			return nil, fmt.Errorf("versitygw not ready on %s: %s", addr, out.String())
		case <-tick.C:
		}
	}
}

// Getenv returns the server's credentials as AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY and "" for everything else: a
// preview.OpenOptions.Getenv that keeps the AWS chain (and the instance
// metadata service) out of tests.
func (s *Server) Getenv(key string) string {
	switch key {
	case "AWS_ACCESS_KEY_ID":
		return s.AccessKey
	case "AWS_SECRET_ACCESS_KEY":
		return s.SecretKey
	}
	return ""
}

// Client returns an S3 client for the server (path-style, its
// credentials).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateBucket creates a bucket on the server.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// URL returns the s3:// URL of bucket on the server, with extra query
// parameters appended ("&prefix=p").
func (s *Server) URL(bucket, extra string) string {
	return "s3://" + bucket + "?endpoint=" + url.QueryEscape(s.Endpoint) + "&pathStyle=true&region=us-east-1" + extra
}

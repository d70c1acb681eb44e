package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/plugin"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

const (
	zone   = "previews.test"
	apiKey = "test-key"
)

// server is one pdns_server started for a test.
type server struct {
	api string // 127.0.0.1:port of the HTTP API
	dns string // 127.0.0.1:port of the DNS service
}

// require is internal/testenv.Require, which another module cannot import:
// it returns the environment variable env, naming what the test
// needs; when it is unset the test skips, or fails under CI (CI=true), where
// .ci/run provides it.
func require(t *testing.T, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
			t.Fatalf("%s is not set: no %s (CI=true: .ci/run must provide it)", env, what)
		}
		t.Skipf("%s is not set: no %s", env, what)
	}
	return v
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPDNS starts PowerDNS with the sqlite backend over a temporary
// database, with the HTTP API on, creates the zone and stops the server at
// the end of the test.
func startPDNS(t *testing.T) server {
	bin := require(t, "GLIMPSE_PDNS_BIN", "PowerDNS (pdns_server)")
	schema := require(t, "GLIMPSE_PDNS_SCHEMA", "PowerDNS's sqlite3 schema")
	dir := t.TempDir()
	db := filepath.Join(dir, "pdns.db")
	sq := exec.Command("sqlite3", db)
	sq.Stdin, _ = os.Open(schema)
	if out, err := sq.CombinedOutput(); err != nil {
		t.Fatalf("creating the database: %v\n%s", err, out)
	}
	s := server{api: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	dnsPort := freePort(t)
	s.dns = "127.0.0.1:" + strconv.Itoa(dnsPort)
	var log bytes.Buffer
	cmd := exec.Command(bin, "--config-dir="+dir, "--launch=gsqlite3", "--gsqlite3-database="+db,
		"--local-address=127.0.0.1", "--local-port="+strconv.Itoa(dnsPort), "--socket-dir="+dir,
		"--webserver=yes", "--webserver-address=127.0.0.1", "--webserver-port="+s.api[len("127.0.0.1:"):],
		"--webserver-allow-from=127.0.0.1", "--api=yes", "--api-key="+apiKey,
		"--guardian=no", "--daemon=no", "--disable-syslog", "--write-pid=no")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	body := fmt.Sprintf(`{"name":%q,"kind":"Native","nameservers":["ns1.%s."]}`, zone+".", zone)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.api+"/api/v1/servers/localhost/zones", bytes.NewBufferString(body))
		req.Header.Set("X-API-Key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return s
			}
			t.Fatalf("creating zone %s: %s", zone, resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdns_server did not start: %v\n%s", err, log.String())
		}
	}
}

func (s server) url() string { return "pdns://" + s.api + "/" + zone + "?target=127.0.0.1" }

func newDirect(t *testing.T, s server) preview.DNS {
	u, _ := url.Parse(s.url())
	d, err := New(u, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	s := startPDNS(t)
	d := newDirect(t, s)
	previewtest.RunDNSTests(t, previewtest.DNSHarness{New: func(t *testing.T) preview.DNS { return d }, Domain: zone})
}

// TestConformanceThroughPlugin builds the plugin binary and runs the suite
// through Glimpse's plugin adapter, as glimpse would use it.
func TestConformanceThroughPlugin(t *testing.T) {
	s := startPDNS(t)
	bin := filepath.Join(t.TempDir(), plugin.BinaryPrefix+"pdns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("PDNS_API_KEY", apiKey)
	c := plugin.Open(bin, &plugin.Options{URL: s.url()})
	t.Cleanup(func() { c.Close() })
	d, err := c.DNS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	previewtest.RunDNSTests(t, previewtest.DNSHarness{New: func(t *testing.T) preview.DNS { return d }, Domain: zone})

	// The record is really served: ask PowerDNS over DNS.
	host := preview.Host("hello", 42, zone)
	if err := d.Ensure(context.Background(), host, preview.Labels{preview.LabelManagedBy: preview.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, s.dns)
	}}
	addrs, err := r.LookupHost(context.Background(), host)
	if err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Fatalf("DNS answer for %s: %v, %v; want 127.0.0.1", host, addrs, err)
	}

	// A plugin started with a bad URL fails in one line that says why.
	bad := plugin.Open(bin, &plugin.Options{URL: "pdns://" + s.api + "/" + zone + "?colour=blue"})
	defer bad.Close()
	if _, err := bad.DNS(context.Background()); err == nil || !bytes.Contains([]byte(err.Error()), []byte(`unknown parameter "colour"`)) {
		t.Fatalf("plugin with a bad URL: %v", err)
	}
}

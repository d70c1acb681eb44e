package rfc2136dns_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/glimpse-dev/glimpse/dns/rfc2136dns"
	"github.com/glimpse-dev/glimpse/internal/testenv"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

const (
	zone    = "example.test"
	keyName = "glimpse-test"
	secret  = "c2VjcmV0LWZvci1nbGltcHNlLXRlc3RzLW9ubHktMzJi" // base64
)

// named is a BIND server started for one test.
type named struct {
	addr string
}

// startNamed starts BIND (GLIMPSE_NAMED_BIN, which .ci/run installs) on a
// free loopback port over a temporary directory, serving zone with updates
// and transfers allowed to the test key, and stops it when t ends.
func startNamed(t *testing.T) *named {
	t.Helper()
	bin := testenv.Require(t, "GLIMPSE_NAMED_BIN", "BIND named binary (apt-get install bind9)")
	dir := t.TempDir()
	port := freePort(t)
	zoneFile := filepath.Join(dir, "db."+zone)
	write(t, zoneFile, fmt.Sprintf(`$TTL 300
@ IN SOA ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@ IN NS ns.%[1]s.
ns IN A 127.0.0.1
handmade IN CNAME elsewhere.example.net.
`, zone))
	conf := filepath.Join(dir, "named.conf")
	write(t, conf, fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	minimal-any no;
};
controls { };
key "%[3]s" { algorithm hmac-sha256; secret "%[4]s"; };
zone "%[5]s" {
	type primary;
	file "%[6]s";
	allow-update { key "%[3]s"; };
	allow-transfer { key "%[3]s"; };
};
`, dir, port, keyName, secret, zone, zoneFile))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-g", "-n", "1", "-c", conf)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start named: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("named log:\n%s", log.String())
		}
	})
	n := &named{addr: net.JoinHostPort("127.0.0.1", fmt.Sprint(port))}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		if r, _, err := c.Exchange(m, n.addr); err == nil && r.Rcode == dns.RcodeSuccess {
			break
		}
		select {
		case <-done:
			t.Fatalf("named exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not answer within 20s:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	// A port free for TCP and UDP alike.
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *named) open(t *testing.T, query string, sec string) preview.DNS {
	t.Helper()
	env := map[string]string{rfc2136dns.EnvTSIGKey: keyName, rfc2136dns.EnvTSIGSecret: sec}
	d, err := preview.DNSProviders.Open(context.Background(), "rfc2136://"+n.addr+"/"+zone+"?"+query,
		&preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// lookup returns the records of type qt at name, straight from the server.
func (n *named) lookup(t *testing.T, name string, qt uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qt)
	r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, n.addr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

func TestConformance(t *testing.T) {
	n := startNamed(t)
	previewtest.RunDNSTests(t, previewtest.DNSHarness{
		New:    func(t *testing.T) preview.DNS { return n.open(t, "target=edge.example.com", secret) },
		Domain: zone,
	})
}

func TestConformanceA(t *testing.T) {
	n := startNamed(t)
	previewtest.RunDNSTests(t, previewtest.DNSHarness{
		New:    func(t *testing.T) preview.DNS { return n.open(t, "a=203.0.113.7&ttl=30", secret) },
		Domain: zone,
	})
}

func TestRecords(t *testing.T) {
	n := startNamed(t)
	ctx := context.Background()
	good := n.open(t, "target=edge.example.com&ttl=120", secret)
	labels := preview.OwnerLabels("o", preview.Target{App: "hello", PR: 42, Commit: "3f2c1ab"})
	host := preview.Host("hello", 42, zone)

	t.Run("CNAMEAndOwnershipTXT", func(t *testing.T) {
		if err := good.Ensure(ctx, host, labels); err != nil {
			t.Fatal(err)
		}
		if got, want := n.lookup(t, host, dns.TypeCNAME), []string{host + ". 120 IN CNAME edge.example.com."}; !equal(got, want) {
			t.Errorf("CNAME = %q, want %q", got, want)
		}
		want := `_glimpse.` + host + `. 120 IN TXT "glimpse/1" "app=hello" "commit=3f2c1ab" "owner=o" "pr=42"`
		if got := n.lookup(t, "_glimpse."+host, dns.TypeTXT); !equal(got, []string{want}) {
			t.Errorf("TXT = %q, want %q", got, want)
		}
		// Switching the configuration to an A record replaces the CNAME.
		a := n.open(t, "a=203.0.113.7", secret)
		if err := a.Ensure(ctx, host, labels); err != nil {
			t.Fatal(err)
		}
		if got := n.lookup(t, host, dns.TypeA); !equal(got, []string{host + ". 60 IN A 203.0.113.7"}) {
			t.Errorf("A after switching = %q", got)
		}
		if got := n.lookup(t, host, dns.TypeCNAME); len(got) != 0 {
			t.Errorf("CNAME after switching = %q, want none", got)
		}
		if err := a.Remove(ctx, host); err != nil {
			t.Fatal(err)
		}
		if got := n.lookup(t, host, dns.TypeANY); len(got) != 0 {
			t.Errorf("records after Remove = %q, want none", got)
		}
		if got := n.lookup(t, "_glimpse."+host, dns.TypeANY); len(got) != 0 {
			t.Errorf("ownership records after Remove = %q, want none", got)
		}
	})

	t.Run("WrongSecretIsPermissionDenied", func(t *testing.T) {
		bad := n.open(t, "target=edge.example.com", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZw==")
		for what, err := range map[string]error{
			"Ensure": bad.Ensure(ctx, host, labels),
			"Remove": bad.Remove(ctx, host),
			"Hosts":  second(bad.Hosts(ctx, preview.Selector("o", "", 0))),
		} {
			if c := preview.CodeOf(err); c != preview.PermissionDenied {
				t.Errorf("%s with a wrong secret: code %v (%v), want PermissionDenied", what, c, err)
			} else if strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: error is not one line: %q", what, err)
			}
		}
		if got := n.lookup(t, host, dns.TypeANY); len(got) != 0 {
			t.Errorf("records after refused Ensure = %q, want none", got)
		}
	})

	t.Run("ForeignRecordsUntouched", func(t *testing.T) {
		// handmade.example.test is in the zone file, with no ownership
		// record; a TXT at a companion name that is not Glimpse's is not
		// ownership either.
		handmade := "handmade." + zone
		before := n.lookup(t, handmade, dns.TypeANY)
		if len(before) != 1 {
			t.Fatalf("zone file record = %q", before)
		}
		foreignTXT := "other." + zone
		u := new(dns.Msg)
		u.SetUpdate(dns.Fqdn(zone))
		rr, _ := dns.NewRR(`_glimpse.` + foreignTXT + `. 60 IN TXT "owned by someone else"`)
		rr2, _ := dns.NewRR(foreignTXT + `. 60 IN A 192.0.2.1`)
		u.Insert([]dns.RR{rr, rr2})
		u.SetTsig(keyName+".", dns.HmacSHA256, 300, time.Now().Unix())
		if r, _, err := (&dns.Client{Net: "tcp", TsigSecret: map[string]string{keyName + ".": secret}}).Exchange(u, n.addr); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("insert foreign records: %v %v", r, err)
		}
		for _, h := range []string{handmade, foreignTXT} {
			if err := good.Remove(ctx, h); err != nil {
				t.Errorf("Remove(%s) of a record Glimpse does not own: %v, want success (nothing done)", h, err)
			}
			if err := good.Ensure(ctx, h, labels); preview.CodeOf(err) != preview.FailedPrecondition {
				t.Errorf("Ensure(%s) over a record Glimpse does not own: %v, want FailedPrecondition", h, err)
			}
		}
		if got := n.lookup(t, handmade, dns.TypeANY); !equal(got, before) {
			t.Errorf("handmade record after Remove/Ensure = %q, want %q", got, before)
		}
		if got := n.lookup(t, foreignTXT, dns.TypeA); len(got) != 1 {
			t.Errorf("foreign A record after Remove/Ensure = %q, want it kept", got)
		}
		if got := n.lookup(t, "_glimpse."+foreignTXT, dns.TypeTXT); len(got) != 1 || !strings.Contains(got[0], "someone else") {
			t.Errorf("foreign TXT after Remove/Ensure = %q, want it kept", got)
		}
		hosts, err := good.Hosts(ctx, preview.Labels{})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			if h == handmade || h == foreignTXT {
				t.Errorf("Hosts(all) lists %s, which Glimpse does not own", h)
			}
		}
	})

	t.Run("OutsideZone", func(t *testing.T) {
		if err := good.Ensure(ctx, "pr-1.hello.example.org", labels); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Ensure outside the zone: %v, want InvalidArgument", err)
		}
	})

	t.Run("Unavailable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		env := map[string]string{rfc2136dns.EnvTSIGKey: keyName, rfc2136dns.EnvTSIGSecret: secret}
		d, err := preview.DNSProviders.Open(ctx, "rfc2136://"+addr+"/"+zone+"?target=edge.example.com",
			&preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Ensure(ctx, host, labels); preview.CodeOf(err) != preview.Unavailable {
			t.Errorf("Ensure with no server: %v, want Unavailable", err)
		}
	})
}

func TestSilentServerDeadline(t *testing.T) {
	t.Parallel()
	// A server that accepts and never answers: the context's deadline
	// ends the call with DeadlineExceeded.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d, err := rfc2136dns.New(l.Addr().String(), zone, rfc2136dns.TSIGKey{Name: keyName, Secret: secret}, &rfc2136dns.Options{Target: "edge.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := d.Ensure(ctx, "pr-1.a."+zone, preview.Labels{}); preview.CodeOf(err) != preview.DeadlineExceeded {
		t.Errorf("Ensure against a silent server: %v (code %v), want DeadlineExceeded", err, preview.CodeOf(err))
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := d.Hosts(ctx2, preview.Labels{}); preview.CodeOf(err) != preview.DeadlineExceeded {
		t.Errorf("Hosts against a silent server: %v (code %v), want DeadlineExceeded", err, preview.CodeOf(err))
	}
}

func second[T any](_ T, err error) error { return err }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenURL(t *testing.T) {
	t.Parallel()
	env := map[string]string{rfc2136dns.EnvTSIGKey: keyName, rfc2136dns.EnvTSIGSecret: secret}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"rfc2136://127.0.0.1:5353/example.com?target=edge.example.com", true},
		{"rfc2136://ns1.example.com/example.com?a=192.0.2.1&ttl=30", true},
		{"rfc2136://ns1.example.com/example.com?a=2001:db8::1", true},
		{"rfc2136://ns1.example.com/example.com?target=edge.example.com&bogus=1", false},
		{"rfc2136://ns1.example.com/example.com", false},
		{"rfc2136://ns1.example.com/example.com?target=e.example.com&a=192.0.2.1", false},
		{"rfc2136://ns1.example.com/?target=edge.example.com", false},
		{"rfc2136:///example.com?target=edge.example.com", false},
		{"rfc2136://ns1.example.com/example.com?a=nope", false},
		{"rfc2136://ns1.example.com/example.com?target=edge.example.com&ttl=-1", false},
		{"rfc2136://key:secret@ns1.example.com/example.com?target=edge.example.com", false},
	} {
		_, err := preview.DNSProviders.Open(context.Background(), tc.url, &preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
		if (err == nil) != tc.ok {
			t.Errorf("Open(%s): %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): code %v, want InvalidArgument", tc.url, preview.CodeOf(err))
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("Open(%s): error shows credentials: %v", tc.url, err)
		}
	}
	_, err := preview.DNSProviders.Open(context.Background(), "rfc2136://ns1.example.com/example.com?target=edge.example.com", &preview.OpenOptions{Getenv: func(string) string { return "" }})
	if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), rfc2136dns.EnvTSIGKey) {
		t.Errorf("Open without a key: %v, want InvalidArgument naming %s", err, rfc2136dns.EnvTSIGKey)
	}
}

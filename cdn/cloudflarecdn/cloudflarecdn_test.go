package cloudflarecdn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// newPurger returns a Purger on f's zone whose waits are recorded, not
// slept.
func newPurger(t *testing.T, f *fake, zone string, o Options) (*Purger, *[]time.Duration) {
	t.Helper()
	if o.Token == "" {
		o.Token = f.token
	}
	o.BaseURL = f.srv.URL
	p, err := New(zone, o)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	p.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return p, waits
}

func urls(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://pr-1.hello.example.test/f/%03d.js", i)
	}
	return out
}

func TestPurgesHostsInBatches(t *testing.T) {
	f := newFake(t)
	p, _ := newPurger(t, f, f.zoneID, Options{})
	hosts := make([]string, 31)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("pr-%d.hello.example.test", i)
	}
	if err := p.Purge(context.Background(), preview.PurgeRequest{Hosts: hosts, URLs: urls(3)}); err != nil {
		t.Fatal(err)
	}
	want := []map[string][]string{{"hosts": hosts[:30]}, {"hosts": hosts[30:]}}
	if !reflect.DeepEqual(f.purges, want) {
		t.Fatalf("purges %v, want %v", f.purges, want)
	}
}

func TestFilesModeBatches(t *testing.T) {
	f := newFake(t)
	p, _ := newPurger(t, f, f.zoneID, Options{Mode: ModeFiles})
	u := urls(65)
	if err := p.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}, URLs: u}); err != nil {
		t.Fatal(err)
	}
	want := []map[string][]string{{"files": u[:30]}, {"files": u[30:60]}, {"files": u[60:]}}
	if !reflect.DeepEqual(f.purges, want) {
		t.Fatalf("purges %v", f.purges)
	}
	// A batch above the API's per-request limit is refused by the fake:
	// the client's limit is what keeps requests valid.
	big, _ := newPurger(t, f, f.zoneID, Options{Mode: ModeFiles, Batch: 31})
	err := big.Purge(context.Background(), preview.PurgeRequest{URLs: urls(31)})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("31 files in one request: %v", err)
	}
}

func TestPrefixesMode(t *testing.T) {
	f := newFake(t)
	p, _ := newPurger(t, f, f.zoneID, Options{Mode: ModePrefixes})
	if err := p.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}, URLs: urls(2)}); err != nil {
		t.Fatal(err)
	}
	if want := []map[string][]string{{"prefixes": {"pr-1.hello.example.test"}}}; !reflect.DeepEqual(f.purges, want) {
		t.Fatalf("purges %v", f.purges)
	}
}

// TestFallsBackToFilesWhenHostsRefused: a plan that refuses purge by
// hostname gets the file URLs, and later purges go to files at once.
func TestFallsBackToFilesWhenHostsRefused(t *testing.T) {
	f := newFake(t)
	f.noHosts = true
	p, _ := newPurger(t, f, f.zoneID, Options{})
	u := urls(40)
	req := preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}, URLs: u}
	if err := p.Purge(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := []map[string][]string{{"files": u[:30]}, {"files": u[30:]}}
	if !reflect.DeepEqual(f.purges, want) || f.tried != 3 {
		t.Fatalf("purges %v after %d requests; want the files after one refused hosts request", f.purges, f.tried)
	}
	f.purges, f.tried = nil, 0
	if err := p.Purge(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if f.tried != 2 {
		t.Fatalf("second purge sent %d requests, want 2 (files only)", f.tried)
	}
	// Without URLs there is nothing to fall back to: the refusal shows.
	q, _ := newPurger(t, f, f.zoneID, Options{})
	if err := q.Purge(context.Background(), preview.PurgeRequest{Hosts: req.Hosts}); err == nil {
		t.Fatal("refused host purge without URLs succeeded")
	}
	// mode=hosts never falls back.
	h, _ := newPurger(t, f, f.zoneID, Options{Mode: ModeHosts})
	if err := h.Purge(context.Background(), req); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("mode=hosts on a refusing plan: %v", err)
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	f := newFake(t)
	f.limited, f.retryAfter = 2, "3"
	p, waits := newPurger(t, f, f.zoneID, Options{})
	if err := p.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}}); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{3 * time.Second, 3 * time.Second}; !reflect.DeepEqual(*waits, want) {
		t.Fatalf("waits %v, want %v", *waits, want)
	}
	if len(f.purges) != 1 || f.tried != 3 {
		t.Fatalf("purges %v, tried %d", f.purges, f.tried)
	}

	// Still limited after the retries: ResourceExhausted, with the
	// server's delay reachable.
	f.limited, f.tried = 10, 0
	q, _ := newPurger(t, f, f.zoneID, Options{Retries: 2})
	err := q.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}})
	var ae *APIError
	if preview.CodeOf(err) != preview.ResourceExhausted || !errors.As(err, &ae) || ae.RetryAfter != 3*time.Second || f.tried != 3 {
		t.Fatalf("exhausted: %v (tried %d)", err, f.tried)
	}
	if !preview.CodeOf(err).Retryable() {
		t.Fatal("rate limit not retryable")
	}
	// A Retry-After beyond MaxWait is not waited for.
	f.limited, f.tried, f.retryAfter = 1, 0, "600"
	r, waits := newPurger(t, f, f.zoneID, Options{MaxWait: time.Minute})
	if err := r.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"h.example.test"}}); preview.CodeOf(err) != preview.ResourceExhausted || len(*waits) != 0 {
		t.Fatalf("long Retry-After: %v, waits %v", err, *waits)
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"Fri, 02 Jan 2026 15:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 15:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	req := preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}, URLs: urls(1)}

	bad, _ := newPurger(t, f, f.zoneID, Options{Token: "wrong"})
	err := bad.Purge(ctx, req)
	var ae *APIError
	if preview.CodeOf(err) != preview.PermissionDenied || !errors.As(err, &ae) || !ae.hasCode(10000) {
		t.Fatalf("bad token: %v", err)
	}
	if f.tried != 0 && len(f.purges) != 0 {
		t.Fatalf("a bad token fell back to files")
	}

	missing, _ := newPurger(t, f, "ffffffffffffffffffffffffffffffff", Options{})
	if err := missing.Purge(ctx, req); preview.CodeOf(err) != preview.NotFound {
		t.Fatalf("unknown zone ID: %v", err)
	}
	byName, _ := newPurger(t, f, "nope.example", Options{})
	if err := byName.Purge(ctx, req); preview.CodeOf(err) != preview.NotFound {
		t.Fatalf("unknown zone name: %v", err)
	}

	down := httpDown(t)
	p, err := New(f.zoneID, Options{Token: "t", BaseURL: down, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Purge(ctx, req); preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("unreachable API: %v", err)
	}
}

func httpDown(t *testing.T) string {
	f := newFake(t)
	u := f.srv.URL
	f.srv.Close()
	return u
}

func TestZoneNameResolvedOnce(t *testing.T) {
	f := newFake(t)
	p, _ := newPurger(t, f, "EXAMPLE.test", Options{})
	for range 3 {
		if err := p.Purge(context.Background(), preview.PurgeRequest{Hosts: []string{"pr-1.hello.example.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	if f.lookups != 1 || len(f.purges) != 3 {
		t.Fatalf("lookups %d, purges %d", f.lookups, len(f.purges))
	}
}

func TestURLOpener(t *testing.T) {
	env := func(k string) string {
		if k == EnvAPIToken {
			return "tok"
		}
		return ""
	}
	ctx := context.Background()
	c, err := preview.CDNs.Open(ctx, "cloudflare://example.com?mode=files&batch=10", &preview.OpenOptions{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	p := c.(*Purger)
	if p.o.Mode != ModeFiles || p.o.Batch != 10 || p.zone != "example.com" || p.o.Token != "tok" {
		t.Fatalf("opened %+v", p.o)
	}
	for _, raw := range []string{
		"cloudflare://example.com?token=x",
		"cloudflare://example.com?mode=everything",
		"cloudflare://example.com?batch=0",
		"cloudflare://example.com/path",
		"cloudflare://",
	} {
		if _, err := openURL(ctx, mustURL(t, raw), &preview.OpenOptions{Getenv: env}); preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", raw, err)
		}
	}
	if _, err := preview.CDNs.Open(ctx, "cloudflare://example.com", &preview.OpenOptions{Getenv: func(string) string { return "" }}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Errorf("no token: %v", err)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

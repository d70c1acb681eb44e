package cloudflaredns_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	cfdns "github.com/cloudflare/cloudflare-go/v6/dns"

	"github.com/glimpse-dev/glimpse/dns/cloudflaredns"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

func (f *fake) provider(t *testing.T, zone, token string, o cloudflaredns.Options) *cloudflaredns.Provider {
	t.Helper()
	o.BaseURL = f.srv.URL + "/client/v4/"
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	p, err := cloudflaredns.New(zone, token, &o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	previewtest.RunDNSTests(t, previewtest.DNSHarness{
		New: func(t *testing.T) preview.DNS {
			// A small page size makes Hosts walk several pages.
			return f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com", Proxied: true, PerPage: 3})
		},
		Domain: f.zoneName,
	})
}

func TestConformanceZoneNameA(t *testing.T) {
	f := newFake(t)
	previewtest.RunDNSTests(t, previewtest.DNSHarness{
		New: func(t *testing.T) preview.DNS {
			return f.provider(t, f.zoneName, f.token, cloudflaredns.Options{A: mustAddr("203.0.113.7"), TTL: 120})
		},
		Domain: f.zoneName,
	})
}

var labels = preview.OwnerLabels("o", preview.Target{App: "hello", PR: 42, Commit: "3f2c1ab"})

func TestRecordFields(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx := context.Background()
	p := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com", Proxied: true})
	host := "pr-42.hello.example.test"
	if err := p.Ensure(ctx, host, labels); err != nil {
		t.Fatal(err)
	}
	recs := f.named(host)
	if len(recs) != 1 {
		t.Fatalf("records = %+v, want one", recs)
	}
	r := recs[0]
	if r.Type != "CNAME" || r.Content != "edge.example.com" || !r.Proxied || r.TTL != 1 || r.Comment == nil ||
		*r.Comment != "glimpse/1 app=hello commit=3f2c1ab owner=o pr=42" {
		t.Errorf("record = %+v (comment %v)", r, *r.Comment)
	}
	// Ensure with a new configuration updates the same record in place.
	a := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{A: mustAddr("203.0.113.7"), TTL: 300})
	if err := a.Ensure(ctx, host, labels.With(preview.LabelCommit, "beef123")); err != nil {
		t.Fatal(err)
	}
	got, ok := f.get(r.ID)
	if !ok || got.Type != "A" || got.Content != "203.0.113.7" || got.Proxied || got.TTL != 300 || !strings.Contains(*got.Comment, "commit=beef123") {
		t.Errorf("updated record = %+v, %v", got, ok)
	}
	if n := len(f.named(host)); n != 1 {
		t.Errorf("%d records after update, want 1", n)
	}
}

func TestForeignRecordsUntouched(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx := context.Background()
	p := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com"})
	handComment := "managed by hand"
	notOurs := []string{
		f.add("pr-1.hello.example.test", "CNAME", "elsewhere.example.net", nil),
		f.add("pr-2.hello.example.test", "A", "192.0.2.1", &handComment),
		// A comment that looks like a future format is not ours either.
		f.add("pr-3.hello.example.test", "CNAME", "x.example.net", ptr("glimpse/2 app=hello pr=3")),
	}
	before := map[string]string{}
	for _, id := range notOurs {
		r, _ := f.get(id)
		before[id] = fmt.Sprintf("%+v %v", r, deref(r.Comment))
		if err := p.Remove(ctx, r.Name); err != nil {
			t.Errorf("Remove(%s) of a record Glimpse does not own: %v, want success (nothing done)", r.Name, err)
		}
		err := p.Ensure(ctx, r.Name, labels)
		if preview.CodeOf(err) != preview.FailedPrecondition {
			t.Errorf("Ensure(%s) over a record Glimpse does not own: %v, want FailedPrecondition", r.Name, err)
		}
	}
	for _, id := range notOurs {
		r, ok := f.get(id)
		if now := fmt.Sprintf("%+v %v", r, deref(r.Comment)); !ok || now != before[id] {
			t.Errorf("record %s changed: %s, want %s", id, now, before[id])
		}
	}
	hosts, err := p.Hosts(ctx, preview.Labels{})
	if err != nil || len(hosts) != 0 {
		t.Errorf("Hosts(all) = %v, %v; want none of the foreign records", hosts, err)
	}
}

func TestRateLimitRetriedAfterRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.limited, f.retryAfter = 1, "1"
	p := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com", MaxRetries: 2})
	start := time.Now()
	if err := p.Ensure(context.Background(), "pr-1.hello.example.test", labels); err != nil {
		t.Fatalf("Ensure after one 429: %v", err)
	}
	f.mu.Lock()
	reqs := f.requests
	f.mu.Unlock()
	if len(reqs) < 2 {
		t.Fatalf("%d requests, want a retry", len(reqs))
	}
	if gap := reqs[1].Sub(reqs[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, want about Retry-After: 1 (1s)", gap)
	}
	t.Logf("Ensure took %v with one 429", time.Since(start))

	// Without retries left, a 429 is ResourceExhausted (retryable).
	f.limited = 1
	q := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com"})
	err := q.Ensure(context.Background(), "pr-2.hello.example.test", labels)
	if c := preview.CodeOf(err); c != preview.ResourceExhausted || !c.Retryable() {
		t.Errorf("429 without retries: %v (code %v), want ResourceExhausted", err, c)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx := context.Background()
	host := "pr-1.hello.example.test"
	bad := f.provider(t, f.zoneID, "wrong-token", cloudflaredns.Options{Target: "edge.example.com"})
	for what, err := range map[string]error{
		"Ensure": bad.Ensure(ctx, host, labels),
		"Remove": bad.Remove(ctx, host),
		"Hosts":  second(bad.Hosts(ctx, preview.Labels{})),
	} {
		if c := preview.CodeOf(err); c != preview.PermissionDenied {
			t.Errorf("%s with a wrong token: %v (code %v), want PermissionDenied", what, err, c)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "10000") {
			t.Errorf("%s: message %q, want one line naming error 10000", what, err)
		}
		var apiErr *cfdns.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
			t.Errorf("%s: the SDK error is not reachable: %v", what, err)
		}
	}
	missing := f.provider(t, "0123456789abcdef0123456789abcdef", f.token, cloudflaredns.Options{Target: "edge.example.com"})
	if err := missing.Ensure(ctx, host, labels); preview.CodeOf(err) != preview.NotFound {
		t.Errorf("Ensure in an unknown zone ID: %v, want NotFound", err)
	}
	byName := f.provider(t, "nope.example", f.token, cloudflaredns.Options{Target: "edge.example.com"})
	if _, err := byName.Hosts(ctx, preview.Labels{}); preview.CodeOf(err) != preview.NotFound {
		t.Errorf("Hosts in an unknown zone name: %v, want NotFound", err)
	}
	f.srv.Close()
	gone := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com"})
	if err := gone.Remove(ctx, host); preview.CodeOf(err) != preview.Unavailable {
		t.Errorf("Remove with the API down: %v, want Unavailable", err)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx := context.Background()
	p := f.provider(t, f.zoneID, f.token, cloudflaredns.Options{Target: "edge.example.com", PerPage: 2})
	var want []string
	for pr := 1; pr <= 5; pr++ {
		h := preview.Host("hello", pr, f.zoneName)
		want = append(want, h)
		if err := p.Ensure(ctx, h, labels.With(preview.LabelPR, fmt.Sprint(pr))); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.urls = nil
	f.mu.Unlock()
	got, err := p.Hosts(ctx, preview.Selector("o", "hello", 0))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Hosts = %v, want %v", got, want)
	}
	f.mu.Lock()
	urls := f.urls
	f.mu.Unlock()
	// Pages 1-3 hold 2+2+1 records; the pager stops at the empty page 4.
	if len(urls) != 4 || !strings.Contains(urls[3], "page=4") || !strings.Contains(urls[0], "comment.startswith=glimpse%2F1") {
		t.Errorf("list requests = %q, want pages 1 to 4 filtered by comment", urls)
	}
}

func TestOpenURL(t *testing.T) {
	t.Parallel()
	env := map[string]string{cloudflaredns.EnvAPIToken: "tok"}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"cloudflare://0123456789abcdef0123456789abcdef?target=edge.example.com&proxied=true", true},
		{"cloudflare://example.com?a=192.0.2.1&ttl=60", true},
		{"cloudflare://example.com?a=2001:db8::1", true},
		{"cloudflare://example.com?target=edge.example.com&bogus=1", false},
		{"cloudflare://example.com", false},
		{"cloudflare://example.com?target=e.example.com&a=192.0.2.1", false},
		{"cloudflare://example.com?target=edge.example.com&proxied=maybe", false},
		{"cloudflare://example.com?target=edge.example.com&ttl=5", false},
		{"cloudflare://?target=edge.example.com", false},
		{"cloudflare://example.com/path?target=edge.example.com", false},
		{"cloudflare://tok:x@example.com?target=edge.example.com", false},
	} {
		_, err := preview.DNSProviders.Open(context.Background(), tc.url, &preview.OpenOptions{Getenv: func(k string) string { return env[k] }})
		if (err == nil) != tc.ok {
			t.Errorf("Open(%s): %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && preview.CodeOf(err) != preview.InvalidArgument {
			t.Errorf("Open(%s): code %v, want InvalidArgument", tc.url, preview.CodeOf(err))
		}
	}
	_, err := preview.DNSProviders.Open(context.Background(), "cloudflare://example.com?target=edge.example.com", &preview.OpenOptions{Getenv: func(string) string { return "" }})
	if preview.CodeOf(err) != preview.InvalidArgument || !strings.Contains(err.Error(), cloudflaredns.EnvAPIToken) {
		t.Errorf("Open without a token: %v, want InvalidArgument naming %s", err, cloudflaredns.EnvAPIToken)
	}
}

func second[T any](_ T, err error) error { return err }

func ptr(s string) *string { return &s }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

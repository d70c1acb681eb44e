package preview_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

type recordingCDN struct {
	mu   sync.Mutex
	reqs []preview.PurgeRequest
	err  error
}

func (c *recordingCDN) Purge(ctx context.Context, req preview.PurgeRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return c.err
}

// TestUpPurgesCDNAfterRoute: the purge step runs after the route switch,
// with the host and the file URLs (and the directory URL of index.html);
// an Up that changes nothing purges nothing.
func TestUpPurgesCDNAfterRoute(t *testing.T) {
	s := newMemStack()
	cdn := &recordingCDN{}
	s.pl.CDN = cdn
	var order []string
	s.pl.OnEvent = func(e preview.Event) {
		if e.State == preview.EventDone || e.State == preview.EventSkipped || e.State == preview.EventFailed {
			order = append(order, e.Step+":"+string(e.State))
		}
	}
	dir, spec := app(t, "page")
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	if len(cdn.reqs) != 1 {
		t.Fatalf("purges %+v, want 1", cdn.reqs)
	}
	want := preview.PurgeRequest{Hosts: []string{"pr-1.hello.localhost"}, URLs: []string{"https://pr-1.hello.localhost/", "https://pr-1.hello.localhost/index.html"}}
	if got := cdn.reqs[0]; !slices.Equal(got.Hosts, want.Hosts) || !slices.Equal(got.URLs, want.URLs) {
		t.Fatalf("purge %+v, want %+v", got, want)
	}
	ri, pi := slices.Index(order, preview.StepRoute+":done"), slices.Index(order, preview.StepPurge+":done")
	if ri < 0 || pi < ri {
		t.Fatalf("steps %v: want purge done after route", order)
	}

	order = nil
	if err := s.up(dir, spec, 1, commit('a')); err != nil {
		t.Fatal(err)
	}
	if len(cdn.reqs) != 1 || !slices.Contains(order, preview.StepPurge+":skipped") {
		t.Fatalf("unchanged Up: %d purges, steps %v; want the purge skipped", len(cdn.reqs), order)
	}
}

// TestPurgeFailureLeavesPreviewLive: a failed purge fails the Up (step
// "purge", the CDN's code kept) after the route switch, so the new commit
// is served and the returned Preview names it.
func TestPurgeFailureLeavesPreviewLive(t *testing.T) {
	s := newMemStack()
	s.pl.CDN = &recordingCDN{err: preview.Errorf(preview.ResourceExhausted, "rate limited")}
	dir, spec := app(t, "new")
	pv, err := s.pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: spec, PR: 3, Commit: commit('b')})
	if err == nil || preview.CodeOf(err) != preview.ResourceExhausted {
		t.Fatalf("Up with a failing purge: %v", err)
	}
	if pv.Host != "pr-3.hello.localhost" || pv.URL == "" {
		t.Fatalf("preview %+v: want the live preview returned with the error", pv)
	}
	if page, fc := s.served(t, 3); page != "new" || fc != commit('b') {
		t.Fatalf("served %q %q, want the new commit", page, fc)
	}
	if ms, _ := s.assets.List(context.Background(), preview.Selector("test", "hello", 3)); len(ms) != 1 {
		t.Fatalf("manifests %+v", ms)
	}
}

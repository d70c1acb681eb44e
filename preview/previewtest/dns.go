package previewtest

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/glimpse-dev/glimpse/preview"
)

// DNSHarness builds the DNS provider under test.
type DNSHarness struct {
	// New returns a provider on a real backend (a zone the test may
	// write). Providers returned by separate calls may share the backend:
	// the suite makes its hosts unique to each test.
	New func(t *testing.T) preview.DNS
	// Domain is the zone the suite makes hosts under, as
	// preview.Host(app, pr, Domain); default "localhost".
	Domain string
}

// RunDNSTests runs the DNS conformance suite. It checks the contract of
// preview.DNS: Ensure creates a record or updates its labels and is
// idempotent; Hosts selects records by their labels; Remove of a missing
// record succeeds; hosts that are not valid host names (preview.ValidateHost)
// are InvalidArgument for Ensure and Remove; a cancelled context makes
// every method fail with Canceled or DeadlineExceeded; concurrent Ensures
// and Removes of different hosts do not interfere.
func RunDNSTests(t *testing.T, h DNSHarness) {
	domain := h.Domain
	if domain == "" {
		domain = "localhost"
	}
	host := func(app string, pr int) string { return preview.Host(app, pr, domain) }
	hosts := func(t *testing.T, d preview.DNS, sel preview.Labels) []string {
		t.Helper()
		got, err := d.Hosts(ctxFor(t), sel)
		if err != nil {
			t.Fatalf("Hosts(%v): %v", sel, err)
		}
		got = slices.Clone(got)
		sort.Strings(got)
		return got
	}
	ensure := func(t *testing.T, d preview.DNS, host string, l preview.Labels) {
		t.Helper()
		if err := d.Ensure(ctxFor(t), host, l); err != nil {
			t.Fatalf("Ensure(%s): %v", host, err)
		}
		t.Cleanup(func() { d.Remove(context.Background(), host) })
	}

	t.Run("EnsureHostsRemove", func(t *testing.T) {
		d := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		for pr := 1; pr <= 2; pr++ {
			ensure(t, d, host(app, pr), labelsFor(app, pr))
		}
		want := []string{host(app, 1), host(app, 2)}
		sort.Strings(want)
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); !slices.Equal(got, want) {
			t.Fatalf("Hosts(app) = %v, want %v", got, want)
		}
		if got := hosts(t, d, preview.Selector("conformance", app, 2)); !slices.Equal(got, []string{host(app, 2)}) {
			t.Fatalf("Hosts(app, pr 2) = %v, want [%s]", got, host(app, 2))
		}
		if got := hosts(t, d, preview.Selector("conformance", uniqueApp(t), 0)); len(got) != 0 {
			t.Fatalf("Hosts(another app) = %v, want none", got)
		}
		if got := hosts(t, d, preview.Selector("another-owner", app, 0)); len(got) != 0 {
			t.Fatalf("Hosts(another owner) = %v, want none", got)
		}
		if err := d.Remove(ctx, host(app, 1)); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := d.Remove(ctx, host(app, 1)); err != nil {
			t.Fatalf("Remove of a removed record: %v, want success", err)
		}
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); !slices.Equal(got, []string{host(app, 2)}) {
			t.Fatalf("Hosts after Remove = %v, want only [%s]", got, host(app, 2))
		}
	})

	t.Run("EnsureIdempotentAndRelabels", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		hst := host(app, 1)
		l := labelsFor(app, 1)
		ensure(t, d, hst, l)
		ensure(t, d, hst, l)
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); !slices.Equal(got, []string{hst}) {
			t.Fatalf("Hosts after two identical Ensures = %v, want one record [%s]", got, hst)
		}
		// A new commit relabels the record: it is selected by the new
		// labels, no longer by the old ones, and stays one record.
		relabelled := l.With(preview.LabelCommit, "beef123")
		ensure(t, d, hst, relabelled)
		byCommit := func(c string) preview.Labels {
			return preview.Selector("conformance", app, 1).With(preview.LabelCommit, c)
		}
		if got := hosts(t, d, byCommit("beef123")); !slices.Equal(got, []string{hst}) {
			t.Fatalf("Hosts(new commit) after relabelling = %v, want [%s]", got, hst)
		}
		if got := hosts(t, d, byCommit("c0ffee1")); len(got) != 0 {
			t.Fatalf("Hosts(old commit) after relabelling = %v, want none", got)
		}
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); !slices.Equal(got, []string{hst}) {
			t.Fatalf("Hosts after relabelling = %v, want one record [%s]", got, hst)
		}
	})

	t.Run("RemoveMissing", func(t *testing.T) {
		d := h.New(t)
		if err := d.Remove(ctxFor(t), host(uniqueApp(t), 7)); err != nil {
			t.Fatalf("Remove of a host that never had a record: %v, want success", err)
		}
	})

	t.Run("InvalidHost", func(t *testing.T) {
		d := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		for _, bad := range []string{"", "bad host." + domain, "Upper." + domain, "under_score." + domain, "a..b." + domain, "-lead." + domain} {
			wantCode(t, d.Ensure(ctx, bad, labelsFor(app, 1)), preview.InvalidArgument, "Ensure("+bad+")")
			wantCode(t, d.Remove(ctx, bad), preview.InvalidArgument, "Remove("+bad+")")
		}
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("Hosts after refused Ensures = %v, want none", got)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		d := h.New(t)
		app := uniqueApp(t)
		wantCancelled(t, d.Ensure(cancelled(), host(app, 1), labelsFor(app, 1)), "Ensure")
		_, err := d.Hosts(cancelled(), preview.Selector("conformance", app, 0))
		wantCancelled(t, err, "Hosts")
		wantCancelled(t, d.Remove(cancelled(), host(app, 1)), "Remove")
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); len(got) != 0 {
			t.Fatalf("Hosts after a cancelled Ensure = %v, want none", got)
		}
	})

	t.Run("ConcurrentEnsureRemove", func(t *testing.T) {
		// Every writer ensures its own host; the odd ones remove theirs
		// again. Afterwards exactly the even hosts have records.
		d := h.New(t)
		ctx := ctxFor(t)
		app := uniqueApp(t)
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*writers)
		var want []string
		for pr := 1; pr <= writers; pr++ {
			hst := host(app, pr)
			t.Cleanup(func() { d.Remove(context.Background(), hst) })
			if pr%2 == 0 {
				want = append(want, hst)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- d.Ensure(ctx, hst, labelsFor(app, pr))
				if pr%2 == 1 {
					errs <- d.Remove(ctx, hst)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Ensure/Remove: %v", err)
			}
		}
		sort.Strings(want)
		if got := hosts(t, d, preview.Selector("conformance", app, 0)); !slices.Equal(got, want) {
			t.Fatalf("Hosts after concurrent Ensure/Remove = %v, want %v", got, want)
		}
	})
}

package preview

import (
	"context"
	"sort"
	"strings"
)

// StepPurge is the step of Up that purges the CDN's cache of the preview.
const StepPurge = "purge"

// CDNPurger is an optional provider: a CDN in front of the previews whose
// cache Up purges after each deploy (Pipeline.CDN), so visitors do not see
// the previous commit's cached pages.
type CDNPurger interface {
	// Purge removes the cached responses of req from the CDN. It is
	// idempotent. A purger that can purge whole hosts uses req.Hosts;
	// one that cannot (or whose plan refuses) purges req.URLs instead.
	Purge(ctx context.Context, req PurgeRequest) error
}

// PurgeRequest says what Pipeline.Up asks a CDNPurger to purge.
type PurgeRequest struct {
	// Hosts are the preview hosts ("pr-42.hello.example.com").
	Hosts []string
	// URLs are the preview's static files as absolute URLs, sorted: every
	// path of its manifest, and the directory URL ("https://h/docs/") of
	// every index.html. Empty when the preview has no static files.
	URLs []string
}

// purgeURLs returns the absolute URLs of paths (manifest paths) under
// base ("https://host"), with directory URLs for index.html files.
func purgeURLs(base string, paths []string) []string {
	base = strings.TrimSuffix(base, "/")
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, p := range paths {
		add(base + p)
		if dir, ok := strings.CutSuffix(p, "/index.html"); ok {
			add(base + dir + "/")
		}
	}
	sort.Strings(out)
	return out
}

// purge runs the purge step of Up: after the route switch, when this Up
// changed what the preview serves (a new manifest or a new image).
func (u *upRun) purge(ctx context.Context, host string) (string, bool, error) {
	p := u.p
	changed := u.published || (u.spec.Function != nil && !u.built.Reused)
	if !changed {
		return "nothing new served: nothing to purge", true, nil
	}
	req := PurgeRequest{Hosts: []string{host}, URLs: purgeURLs(p.url(host), u.paths)}
	if err := p.CDN.Purge(ctx, req); err != nil {
		return "", false, err
	}
	return host, false, nil
}

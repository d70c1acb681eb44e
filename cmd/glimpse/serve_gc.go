package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

// leaderWork is what only the leading replica runs (runLeaderOnly): the
// idle controller, every cfg.GCEvery the scheduled gc, and the GitHub
// loop's reconcile when there is one (reconcile non-nil). The reconcile
// takes expired previews down itself, parking their PRs so that it does
// not build them again, and the scheduled gc then leaves them to it. It
// returns when ctx ends (the term ends or the daemon stops) and all have
// stopped.
func leaderWork(home string, st *daemon.Stack, cfg config.Serve, reconcile func(context.Context), log *slog.Logger) func(context.Context) {
	loop := reconcile != nil
	every := cfg.GCEvery
	if every == 0 {
		every = config.DefaultGCEvery
	}
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() { st.RunIdle(ctx) })
		if reconcile != nil {
			wg.Go(func() { reconcile(ctx) })
		}
		if every > 0 {
			wg.Go(func() {
				runScheduledGC(ctx, every, func(ctx context.Context) { scheduledGC(ctx, home, st, preview.DefaultBlobGrace, !loop, log) })
			})
		}
		wg.Wait()
	}
}

// runScheduledGC calls gc every period (the first time one period after
// it starts, so a daemon restarting in a loop does not collect in a loop)
// until ctx ends. A gc still running when ctx ends sees ctx cancelled.
func runScheduledGC(ctx context.Context, every time.Duration, gc func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			gc(ctx)
		}
	}
}

// scheduledGC runs what `glimpse gc --yes` runs against this daemon
// (previews past their ttl when expire is set, orphans, unused image
// tags, and asset blobs older than grace; not closed pull requests, which
// need the apps of a repository: the GitHub loop's reconcile takes those
// down), then collects the embedded registry's blobs and manifests that
// nothing references or tags and that are older than grace (so a push in
// progress is kept). Every line gc
// prints is logged; a failure is logged and retried at the next period.
// Each step is idempotent, so a gc cut short by a lost Lease is finished
// by the next leader's.
func scheduledGC(ctx context.Context, home string, st *daemon.Stack, grace time.Duration, expire bool, log *slog.Logger) {
	var out bytes.Buffer
	err := runGC(ctx, home, &gcFlags{blobGrace: grace, noExpire: !expire, noGitHub: true}, &out, &out)
	for sc := bufio.NewScanner(&out); sc.Scan(); {
		if line := sc.Text(); line != "" {
			log.Info("gc: " + line)
		}
	}
	if err != nil {
		log.Warn("gc failed; retried at the next period", "err", oneLine(err.Error()))
	}
	if st.Registry == nil || ctx.Err() != nil {
		return
	}
	rs, err := st.Registry.GarbageCollect(ctx, &embedregistry.GCOptions{Grace: grace, UntaggedManifests: true})
	if err != nil {
		log.Warn("registry gc failed; retried at the next period", "err", oneLine(err.Error()))
		return
	}
	log.Info("registry gc", "manifests_removed", rs.ManifestsRemoved, "blobs_removed", rs.BlobsRemoved, "bytes_freed", rs.BytesFreed, "uploads_removed", rs.UploadsRemoved)
}

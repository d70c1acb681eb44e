package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestServeRouteSourceErrors: a routes URL that names no router, or a
// router the edge cannot watch (edge://, another daemon's admin API), is
// InvalidArgument with one line naming the key, before anything starts.
func TestServeRouteSourceErrors(t *testing.T) {
	for _, url := range []string{"nope://x", "edge://127.0.0.1:1"} {
		_, err := daemonOptions(context.Background(), t.TempDir(), config.Serve{Routes: url}, slog.Default())
		if preview.CodeOf(err) != preview.InvalidArgument || !strings.HasPrefix(err.Error(), "routes: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("routes: %s: %v (code %v); want one InvalidArgument line starting routes:", url, err, preview.CodeOf(err))
		}
	}
}

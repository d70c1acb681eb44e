package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
)

// daemonIdle returns the idle timeout the local daemon gives previews
// whose glimpse.yaml sets none (daemon.Health.Idle, read from its /healthz
// JSON), when the previews are routed by that daemon's edge (providers
// name no router of their own). It returns nil when they are not, or when
// the daemon does not say (a daemon older than the JSON answer): ls and
// status then show the idle timeout only where glimpse.yaml sets it. It
// only reads.
func daemonIdle(ctx context.Context, home string, p config.Providers) *preview.IdleTimeout {
	if p.Router != "" {
		return nil
	}
	info, err := findServe(ctx, home)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+info.Addr+"/healthz", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var h daemon.Health
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil || h.Idle.Source == "" {
		return nil
	}
	return &h.Idle
}

// idleColumn is the idle timeout of a preview for a table: "15m
// (default)", or "-" when unknown.
func idleColumn(t *preview.IdleTimeout) string {
	if t == nil {
		return "-"
	}
	return t.String()
}

// daemonDeploy returns the last Up the local daemon ran of app's pull
// request pr (the GitHub loop's, with its events), or nil when the
// preview's routes are not the local daemon's, the daemon is not
// running, or it ran none since it started. Best effort, like daemonIdle.
func daemonDeploy(ctx context.Context, home string, p config.Providers, app string, pr int) *daemon.DeployRecord {
	if p.Router != "" {
		return nil
	}
	info, err := findServe(ctx, home)
	if err != nil {
		return nil
	}
	getenv, err := localEnv(home, false, false)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/glimpse/v1/deploys/%s/%d", info.Addr, app, pr), nil)
	req.SetBasicAuth(getenv("GLIMPSE_USERNAME"), getenv("GLIMPSE_PASSWORD"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var d daemon.DeployRecord
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&d) != nil {
		return nil
	}
	return &d
}

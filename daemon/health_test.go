package daemon_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
)

// /healthz keeps answering "ok\n" to old clients and tells a client that
// asks for JSON the daemon's default idle timeout and its source.
func TestHealthzIdleDefault(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration
		want  preview.IdleTimeout
	}{
		{0, preview.IdleTimeout{After: 15 * time.Minute, Source: preview.IdleFromDefault}},
		{7 * time.Minute, preview.IdleTimeout{After: 7 * time.Minute, Source: preview.IdleFromServe}},
	} {
		st, err := daemon.Open(t.TempDir(), &daemon.Options{IdleAfter: tc.after, Logger: slog.New(slog.DiscardHandler), Providers: daemon.Providers{NoRegistry: true}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(st)
		get := func(accept string) (*http.Response, string) {
			req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
		if resp, body := get(""); resp.StatusCode != 200 || body != "ok\n" {
			t.Errorf("plain /healthz = %d %q; want ok as before", resp.StatusCode, body)
		}
		resp, body := get("application/json")
		var h daemon.Health
		if err := json.Unmarshal([]byte(body), &h); err != nil || resp.Header.Get("Content-Type") != "application/json" || h.Status != "ok" || h.Idle != tc.want {
			t.Errorf("JSON /healthz with IdleAfter %v = %s (%v); want idle %+v", tc.after, body, err, tc.want)
		}
		if got := st.IdleDefault(); got != tc.want {
			t.Errorf("IdleDefault = %+v; want %+v", got, tc.want)
		}
		srv.Close()
		st.Close()
	}
}

// /healthz says whether this replica leads once the election reports it,
// and says nothing of an election the daemon does not run.
func TestHealthzLeader(t *testing.T) {
	st, err := daemon.Open(t.TempDir(), &daemon.Options{Logger: slog.New(slog.DiscardHandler), Providers: daemon.Providers{NoRegistry: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(st)
	defer srv.Close()
	health := func() (daemon.Health, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var h daemon.Health
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		return h, string(b)
	}
	if h, body := health(); h.Leader != nil {
		t.Errorf("no election: /healthz = %s; want no leader field", body)
	}
	st.SetLeader(&daemon.LeaderStatus{Lease: "glimpse/glimpse-leader", Identity: "pod-a"})
	if h, body := health(); h.Leader == nil || h.Leader.Leading || h.Leader.Identity != "pod-a" {
		t.Errorf("a follower: /healthz = %s", body)
	}
	st.SetLeader(&daemon.LeaderStatus{Lease: "glimpse/glimpse-leader", Identity: "pod-a", Leading: true})
	if h, body := health(); h.Leader == nil || !h.Leader.Leading || h.Leader.Lease != "glimpse/glimpse-leader" {
		t.Errorf("the leader: /healthz = %s", body)
	}
}

package edge_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/glimpse-dev/glimpse/builder/kobuild"
	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
	_ "github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// A function that crash-loops (the embedded runtime restarting it with
// backoff; it runs 2 s and exits with status 3) is failed while no
// replica is ready: a request is told at once that it failed to start,
// and the wake event stream says failed, instead of either waiting for a
// wake. The real embedded stack: ko build, localfaas, the daemon's edge.
func TestCrashLoopingFunctionIsReportedFailed(t *testing.T) {
	st, pl, srv := daemontest.Open(t, "", &daemon.Options{WaitingPage: true})
	dir := testapp.Copy(t, "../../daemon/dashboard/testdata/crashapp")
	f, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Up(context.Background(), preview.UpRequest{Dir: dir, Spec: f.Spec, PR: 1, Commit: "abcdef0"}); err != nil {
		t.Fatal(err)
	}
	const host, fn = "pr-1.crashy.localhost", "crashy-pr-1"
	do := func(path, accept string) (*http.Response, time.Duration) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		req.Header.Set("Accept", accept)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, time.Since(start)
	}
	// failing waits until the runtime says the function failed (it
	// crashed and its restart is pending).
	failing := func() {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if s, err := st.Runtime.Get(context.Background(), fn); err == nil && s.Failed() {
				return
			}
		}
		t.Fatal("the crashing function was never reported failed by the runtime")
	}
	var got502, gotFailed bool
	for try := 0; try < 5 && !(got502 && gotFailed); try++ {
		failing()
		if !got502 {
			resp, took := do("/graphql", "*/*")
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusBadGateway && strings.Contains(string(b), "failed to start") && took < 5*time.Second:
				got502 = true
			case resp.StatusCode == http.StatusOK:
				// restarted between the check and the request: try again
			default:
				t.Fatalf("request to the crash-looping function = %d %q after %v; want a prompt 502 saying it failed to start", resp.StatusCode, b, took)
			}
			continue
		}
		resp, _ := do(edge.WakeEventsPath, "text/event-stream")
		br := bufio.NewReader(resp.Body)
		var event string
		for line, err := br.ReadString('\n'); err == nil; line, err = br.ReadString('\n') {
			if strings.HasPrefix(line, "event: ") {
				event = strings.TrimSpace(strings.TrimPrefix(line, "event: "))
				break
			}
		}
		resp.Body.Close()
		switch event {
		case edge.WakeEventFailed:
			gotFailed = true
		case edge.WakeEventReady: // restarted meanwhile: try again
		default:
			t.Fatalf("wake event of the crash-looping function = %q; want failed", event)
		}
	}
	if !got502 || !gotFailed {
		t.Fatalf("never caught the function between crash and restart (502 %v, failed event %v)", got502, gotFailed)
	}
}

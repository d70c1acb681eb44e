package daemon_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/internal/testapp"
	"github.com/glimpse-dev/glimpse/preview"
)

// scrape returns the samples on the daemon's /metrics, by series with its
// labels as written ("glimpse_previews{state=\"live\"}").
func scrape(t *testing.T, srv *httptest.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsScraped scrapes the daemon's /metrics through a preview's
// life and checks the series: previews by state, the edge's wakes and
// wake latency, the idle controller's cycles, the edge's requests and
// their latency by preview (gone once the preview is taken down).
func TestMetricsScraped(t *testing.T) {
	pl, st, srv := newPipeline(t)
	ctx := context.Background()
	want := func(m map[string]float64, series string, v float64) {
		t.Helper()
		got, ok := m[series]
		if !ok || got != v {
			t.Fatalf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	m := scrape(t, srv)
	for _, s := range []string{"live", "asleep", "deploying", "failed"} {
		want(m, `glimpse_previews{state="`+s+`"}`, 0)
	}
	if _, _, err := up(t, pl, testapp.Copy(t, "../examples/hello"), 1, "1111111"); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, srv)
	want(m, `glimpse_previews{state="live"}`, 1)
	want(m, `glimpse_previews{state="asleep"}`, 0)

	if _, err := st.Runtime.Scale(ctx, "hello-pr-1", 0); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, srv)
	want(m, `glimpse_previews{state="asleep"}`, 1)
	want(m, `glimpse_previews{state="live"}`, 0)

	if code, _ := request(t, srv, "POST", preview.Host("hello", 1, "localhost"), "/graphql"); code != 200 {
		t.Fatalf("POST /graphql after sleep = %d", code)
	}
	m = scrape(t, srv)
	want(m, `glimpse_edge_wakes_total{result="ok"}`, 1)
	want(m, `glimpse_edge_wake_seconds_count`, 1)
	want(m, `glimpse_previews{state="live"}`, 1)
	if m[`glimpse_edge_wake_seconds_sum`] <= 0 {
		t.Fatalf("wake latency sum %v", m[`glimpse_edge_wake_seconds_sum`])
	}

	if _, err := st.Idle.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, srv)
	want(m, `glimpse_idle_cycles_total`, 1)
	want(m, `glimpse_idle_scale_downs_total`, 0) // just requested: not idle

	// Edge requests by preview: the POST above (which woke the function)
	// and a static 404; the wake's time is in the request's.
	host := preview.Host("hello", 1, "localhost")
	if code, _ := request(t, srv, "GET", host, "/missing.txt"); code != 404 {
		t.Fatalf("GET /missing.txt = %d, want 404", code)
	}
	m = scrape(t, srv)
	want(m, `glimpse_edge_requests_total{app="hello",code_class="2xx",pr="1"}`, 1)
	want(m, `glimpse_edge_requests_total{app="hello",code_class="4xx",pr="1"}`, 1)
	want(m, `glimpse_edge_request_duration_seconds_count{app="hello",pr="1"}`, 2)
	if sum := m[`glimpse_edge_request_duration_seconds_sum{app="hello",pr="1"}`]; sum < m[`glimpse_edge_wake_seconds_sum`] {
		t.Fatalf("request time %v is less than the wake's %v", sum, m[`glimpse_edge_wake_seconds_sum`])
	}
	// Taken down, the preview's series go.
	if err := pl.Down(ctx, "hello", 1); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, srv)
	for s := range m {
		if strings.Contains(s, `app="hello"`) {
			t.Fatalf("%s is still reported after the preview was taken down", s)
		}
	}
	want(m, `glimpse_previews{state="live"}`, 0)
}

// TestDeployStepMetrics: the steps of an Up the daemon runs (the GitHub
// loop's, through ObserveEvent) are counted by step and result.
func TestDeployStepMetrics(t *testing.T) {
	_, st, srv := newPipeline(t)
	st.ObserveEvent(preview.Event{Step: preview.StepBuild, State: preview.EventStarted})
	st.ObserveEvent(preview.Event{Step: preview.StepBuild, State: preview.EventDone, Elapsed: 1500 * time.Millisecond})
	st.ObserveEvent(preview.Event{Step: preview.StepDeploy, State: preview.EventFailed, Elapsed: 200 * time.Millisecond})
	st.ObserveEvent(preview.Event{Step: preview.StepDNS, State: preview.EventSkipped})
	m := scrape(t, srv)
	for series, want := range map[string]float64{
		`glimpse_deploy_step_seconds_count{result="done",step="build"}`:    1,
		`glimpse_deploy_step_seconds_sum{result="done",step="build"}`:      1.5,
		`glimpse_deploy_step_seconds_count{result="failed",step="deploy"}`: 1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for s := range m {
		if strings.Contains(s, `step="dns"`) || strings.Contains(s, `result="started"`) {
			t.Errorf("%s recorded: started and skipped steps are not", s)
		}
	}
}

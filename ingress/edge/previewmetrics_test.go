package edge

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/glimpse-dev/glimpse/preview"
)

// series returns the samples of the edge's per-preview metrics in reg, by
// name and labels ("glimpse_edge_requests_total app=hello pr=1
// code_class=2xx"); a histogram gives its _count and _sum.
func series(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range m.GetLabel() {
				k += " " + l.GetName() + "=" + l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[k] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[k+" count"] = float64(m.GetHistogram().GetSampleCount())
				out[k+" sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// Requests are counted by preview and status class on both of the edge's
// paths (its own connections, net/http's), timed in the histogram; a
// route without ownership labels is not counted; a preview taken down
// drops its series.
func TestPreviewRequestMetrics(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		ctx := context.Background()
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/boom" {
				http.Error(w, "boom", 500)
				return
			}
			io.WriteString(w, "ok")
		}))
		defer up.Close()
		reg := prometheus.NewRegistry()
		e, err := New(Options{Logger: quiet, Metrics: reg, DisableConnTakeover: netHTTPMode(t),
			Upstreams: fixedUpstream(strings.TrimPrefix(up.URL, "http://"))})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		labels := preview.OwnerLabels("", preview.Target{App: "hello", PR: 7, Commit: "abc"})
		for _, r := range []preview.Route{
			{Host: "pr-7.hello.localhost", Function: "hello-pr-7", FunctionPaths: []string{"/api"}, Labels: labels},
			{Host: "bare.localhost", Function: "bare", FunctionPaths: []string{"/"}},
		} {
			if err := preview.PutRoute(ctx, e, r); err != nil {
				t.Fatal(err)
			}
		}
		srv := httptest.NewServer(e)
		defer srv.Close()
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		get := func(host, path string) int {
			t.Helper()
			req, _ := http.NewRequest("GET", "http://"+host+path, nil)
			if err := req.Write(c); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		for range 3 {
			if code := get("pr-7.hello.localhost", "/api/x"); code != 200 {
				t.Fatalf("GET /api/x = %d", code)
			}
		}
		if code := get("pr-7.hello.localhost", "/api/boom"); code != 500 {
			t.Fatalf("GET /api/boom = %d", code)
		}
		if code := get("pr-7.hello.localhost", "/missing.txt"); code != 404 { // static, no manifest
			t.Fatalf("GET /missing.txt = %d", code)
		}
		get("bare.localhost", "/")
		m := series(t, reg)
		const p = " app=hello code_class="
		for k, want := range map[string]float64{
			"glimpse_edge_requests_total" + p + "2xx pr=7":               3,
			"glimpse_edge_requests_total" + p + "5xx pr=7":               1,
			"glimpse_edge_requests_total" + p + "4xx pr=7":               1,
			"glimpse_edge_request_duration_seconds app=hello pr=7 count": 5,
		} {
			if m[k] != want {
				t.Errorf("%s = %v, want %v\n%v", k, m[k], want, m)
			}
		}
		if m["glimpse_edge_request_duration_seconds app=hello pr=7 sum"] <= 0 {
			t.Errorf("no request time recorded: %v", m)
		}
		for k := range m {
			if strings.Contains(k, "bare") || strings.Contains(k, "pr= ") {
				t.Errorf("an unlabelled route is counted: %s", k)
			}
		}
		// Taken down: a tombstone drops the series.
		r, err := e.Route(ctx, "pr-7.hello.localhost")
		if err != nil {
			t.Fatal(err)
		}
		r.Deleted, r.Function, r.FunctionPaths = true, "", nil
		if _, err := e.SetRoute(ctx, r); err != nil {
			t.Fatal(err)
		}
		for k := range series(t, reg) {
			if strings.Contains(k, "app=hello") {
				t.Errorf("a preview taken down still has %s", k)
			}
		}
	})
}

// BenchmarkPreviewMetrics is the proxy path (as BenchmarkProxy) for a
// labelled preview route, without and with the per-preview metrics in the
// same run: compare the two ns/op (and allocs/op).
func BenchmarkPreviewMetrics(b *testing.B) {
	addr := rawUpstream(b, answer13)
	for _, mode := range []string{"without", "with"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{Logger: quiet, Upstreams: fixedUpstream(addr)}
			if mode == "with" {
				opts.Metrics = prometheus.NewRegistry()
			}
			e, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			labels := preview.OwnerLabels("", preview.Target{App: "hello", PR: 1, Commit: "abc"})
			if err := preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", Function: "hello-pr-1", FunctionPaths: []string{"/graphql"}, Labels: labels}); err != nil {
				b.Fatal(err)
			}
			benchServeGraphQL(b, e)
		})
	}
}

// BenchmarkPreviewMetricsConn is whole proxied requests over one
// keep-alive connection the edge takes over (as BenchmarkProxyConn),
// without and with the per-preview metrics in the same run.
func BenchmarkPreviewMetricsConn(b *testing.B) {
	addr := rawUpstream(b, answer13)
	for _, mode := range []string{"without", "with"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{Logger: quiet, Upstreams: fixedUpstream(addr)}
			if mode == "with" {
				opts.Metrics = prometheus.NewRegistry()
			}
			e, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			labels := preview.OwnerLabels("", preview.Target{App: "hello", PR: 1, Commit: "abc"})
			preview.PutRoute(context.Background(), e, preview.Route{Host: "pr-1.hello.localhost", Function: "f", FunctionPaths: []string{"/"}, Labels: labels})
			benchGraphQL(b, e)
		})
	}
}

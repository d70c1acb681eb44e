package edge

import (
	"bufio"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-dev/glimpse/preview"
)

// requestBuckets are the upper bounds (seconds) of
// glimpse_edge_request_duration_seconds.
var requestBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// previewMetrics are the edge's request metrics by preview:
//
//   - glimpse_edge_requests_total{app,pr,code_class}: requests to a
//     preview's host by the class of their status (1xx ... 5xx; a hijacked
//     upgrade counts as 1xx);
//   - glimpse_edge_request_duration_seconds{app,pr}: from the edge
//     receiving the request header to the handler returning (the whole
//     response, a stream's too; for a sleeping function, the wake).
//
// app and pr come from the route's ownership labels; routes without them
// are not counted. Cardinality is bounded by the routed previews: a
// series exists only for a preview with a route in the table that has
// had a request, and a preview taken down (its route a tombstone or
// deleted) drops its series at the next scrape, which forgets its counts
// (a preview deployed again starts from zero, a counter reset to
// Prometheus). code_class has five values.
//
// Recording is a few atomic additions on counters the route caches: no
// lock, no map lookup and no allocation per request on the edge's own
// connections (see BenchmarkPreviewMetrics). It is safe for concurrent
// use; a nil *previewMetrics records nothing.
type previewMetrics struct {
	e                  *Edge
	requests, duration *prometheus.Desc

	mu    sync.Mutex
	stats map[preview.Target]*previewStats // Commit always empty
}

// previewStats are one preview's counters.
type previewStats struct {
	app, pr string
	codes   [5]atomic.Uint64
	// buckets counts requests per bucket (not cumulative); the last is
	// +Inf.
	buckets [len(requestBuckets) + 1]atomic.Uint64
	nanos   atomic.Uint64
}

// unlabelled is cached on routes without ownership labels: not counted.
var unlabelled = &previewStats{}

func newPreviewMetrics(e *Edge, reg prometheus.Registerer) *previewMetrics {
	if reg == nil {
		return nil
	}
	m := &previewMetrics{
		e: e, stats: map[preview.Target]*previewStats{},
		requests: prometheus.NewDesc("glimpse_edge_requests_total",
			"Requests the edge served for a preview's host, by the class of their status (1xx to 5xx). Series of previews taken down are dropped.",
			[]string{"app", "pr", "code_class"}, nil),
		duration: prometheus.NewDesc("glimpse_edge_request_duration_seconds",
			"Time the edge took to serve a request for a preview's host (a wake included), to the end of the response.",
			[]string{"app", "pr"}, nil),
	}
	reg.MustRegister(m)
	return m
}

// of returns the counters of rt's preview, or nil when rt is not counted.
func (m *previewMetrics) of(rt *route) *previewStats {
	if m == nil {
		return nil
	}
	s := rt.requests.Load()
	if s == nil {
		s = m.lookup(rt)
		rt.requests.Store(s)
	}
	if s == unlabelled {
		return nil
	}
	return s
}

func (m *previewMetrics) lookup(rt *route) *previewStats {
	t, ok := rt.spec.Labels.Target()
	if !ok {
		return unlabelled
	}
	t.Commit = ""
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats[t]
	if s == nil {
		s = &previewStats{app: t.App, pr: strconv.Itoa(t.PR)}
		m.stats[t] = s
	}
	return s
}

// observe counts one request answered with code (0: nothing written yet,
// which goes out as 200) that took d.
func (s *previewStats) observe(code int, d time.Duration) {
	c := code/100 - 1
	switch {
	case code == 0:
		c = 1
	case c < 0 || c > 4:
		c = 4
	}
	s.codes[c].Add(1)
	sec := d.Seconds()
	i := 0
	for i < len(requestBuckets) && sec > requestBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.nanos.Add(uint64(max(d, 0)))
}

func (m *previewMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.requests
	ch <- m.duration
}

// Collect reports the previews routed now and forgets the others. The
// route table is read under m.mu: a lookup that created a preview's
// stats (under m.mu, for a route of the table then) is seen with its
// route, so stats a route holds on to are never forgotten while routed.
func (m *previewMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	routed := map[preview.Target]bool{}
	for _, rt := range *m.e.table.Load() {
		if t, ok := rt.spec.Labels.Target(); ok && !rt.spec.Deleted {
			t.Commit = ""
			routed[t] = true
		}
	}
	live := make([]*previewStats, 0, len(m.stats))
	for t, s := range m.stats {
		if !routed[t] {
			delete(m.stats, t)
			continue
		}
		live = append(live, s)
	}
	m.mu.Unlock()
	for _, s := range live {
		for i := range s.codes {
			if n := s.codes[i].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(n), s.app, s.pr, strconv.Itoa(i+1)+"xx")
			}
		}
		cum := make(map[float64]uint64, len(requestBuckets))
		var n uint64
		for i, le := range requestBuckets {
			n += s.buckets[i].Load()
			cum[le] = n
		}
		n += s.buckets[len(requestBuckets)].Load()
		sum := float64(s.nanos.Load()) / float64(time.Second)
		if n == 0 {
			sum = 0
		}
		h, err := prometheus.NewConstHistogram(m.duration, n, math.Max(sum, 0), cum, s.app, s.pr)
		if err == nil {
			ch <- h
		}
	}
}

// statusWriter records the status of a response written through a
// net/http ResponseWriter (the edge's own connections say it
// themselves). It passes on flushes, hijacks (counted as 101), ReadFrom
// and, through Unwrap, what http.ResponseController does.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code < 100 || code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

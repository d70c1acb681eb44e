package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus metrics; a nil *metrics records nothing.
type metrics struct {
	wakes       *prometheus.CounterVec
	wakeSeconds prometheus.Histogram
	sleeps      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		wakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_edge_wakes_total", Help: "Scale-ups the edge started for requests to sleeping functions, by result.",
		}, []string{"result"}),
		wakeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "glimpse_edge_wake_seconds", Help: "Time from the start of a wake to the function accepting connections.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		sleeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_edge_sleeps_total", Help: "Functions put to sleep through the edge's gate.",
		}),
	}
	reg.MustRegister(m.wakes, m.wakeSeconds, m.sleeps)
	return m
}

func (m *metrics) wake(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.wakes.WithLabelValues("error").Inc()
		return
	}
	m.wakes.WithLabelValues("ok").Inc()
	m.wakeSeconds.Observe(d.Seconds())
}

func (m *metrics) sleep() {
	if m != nil {
		m.sleeps.Inc()
	}
}

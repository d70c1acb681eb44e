package idle

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	cycles     prometheus.Counter
	skips      *prometheus.CounterVec
	scaleDowns prometheus.Counter
	clamps     prometheus.Counter
}

// NewMetrics creates the controller's metrics and registers them with reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		cycles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_idle_cycles_total", Help: "Idle controller cycles that observed and decided.",
		}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_idle_cycles_skipped_total", Help: "Idle controller cycles skipped by the circuit breaker, by reason.",
		}, []string{"reason"}),
		scaleDowns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_idle_scale_downs_total", Help: "Functions scaled to zero by the idle controller.",
		}),
		clamps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glimpse_idle_scale_down_clamped_total", Help: "Scale-downs the runtime answered with replicas left (it refuses zero).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.cycles, m.skips, m.scaleDowns, m.clamps)
	}
	return m
}

func (m *Metrics) cycle() {
	if m != nil {
		m.cycles.Inc()
	}
}

func (m *Metrics) skip(reason string) {
	if m != nil {
		m.skips.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) sleep() {
	if m != nil {
		m.scaleDowns.Inc()
	}
}

func (m *Metrics) clamped() {
	if m != nil {
		m.clamps.Inc()
	}
}

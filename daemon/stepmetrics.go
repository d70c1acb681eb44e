package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-dev/glimpse/preview"
)

// stepMetrics is glimpse_deploy_step_seconds{step,result}: how long each
// finished step of the Ups and Downs the daemon runs took (the GitHub
// loop's; an Up run by the CLI reports to the CLI).
type stepMetrics struct {
	seconds *prometheus.HistogramVec
}

func newStepMetrics(reg prometheus.Registerer) *stepMetrics {
	m := &stepMetrics{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "glimpse_deploy_step_seconds",
		Help:    "Duration of each finished pipeline step (build, assets, database, deploy, route, ...) of the Ups and Downs the daemon runs, by result (done, failed).",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"step", "result"})}
	reg.MustRegister(m.seconds)
	return m
}

// ObserveEvent records a pipeline event (preview.Pipeline.OnEvent) of an
// Up or Down the daemon runs: a step that finished (done or failed) counts
// with its elapsed time; started and skipped steps are not recorded. It
// is safe for concurrent use.
func (s *Stack) ObserveEvent(e preview.Event) {
	if s.steps == nil || e.Step == "" {
		return
	}
	switch e.State {
	case preview.EventDone, preview.EventFailed:
		s.steps.seconds.WithLabelValues(e.Step, string(e.State)).Observe(e.Elapsed.Seconds())
	}
}

package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-dev/glimpse/daemon/dashboard"
	"github.com/glimpse-dev/glimpse/preview"
)

// previewStates are the states glimpse_previews reports, as the dashboard
// names them; every one is reported on each scrape, 0 when no preview is
// in it.
var previewStates = []string{"live", "asleep", "deploying", "failed"}

// previewCollector is glimpse_previews{state}: the daemon's previews by
// state, listed (routes and functions, through the providers) when
// Prometheus scrapes, within listTimeout. A failed listing reports no
// gauge for that scrape and counts glimpse_preview_list_errors_total by
// the error's code, so that an unreachable runtime shows as a rising
// counter instead of a failed scrape.
type previewCollector struct {
	list   func(ctx context.Context) ([]preview.Preview, error)
	gauge  *prometheus.Desc
	errors *prometheus.CounterVec
}

const listTimeout = 5 * time.Second

func newPreviewCollector(list func(ctx context.Context) ([]preview.Preview, error)) *previewCollector {
	return &previewCollector{
		list: list,
		gauge: prometheus.NewDesc("glimpse_previews", "Previews by state (live, asleep, deploying, failed), listed at scrape time.",
			[]string{"state"}, nil),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glimpse_preview_list_errors_total", Help: "Listings of previews for glimpse_previews that failed, by error code.",
		}, []string{"code"}),
	}
}

func (c *previewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.gauge
	c.errors.Describe(ch)
}

func (c *previewCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	pvs, err := c.list(ctx)
	if err != nil {
		c.errors.WithLabelValues(preview.CodeOf(err).String()).Inc()
	} else {
		n := map[string]int{}
		for _, p := range pvs {
			n[dashboard.State(p.Status)]++
		}
		for _, s := range previewStates {
			ch <- prometheus.MustNewConstMetric(c.gauge, prometheus.GaugeValue, float64(n[s]), s)
		}
	}
	c.errors.Collect(ch)
}

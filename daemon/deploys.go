package daemon

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// DeployRecord is the last Up the daemon ran of a preview (the GitHub
// loop's), as GET /glimpse/v1/deploys/{app}/{pr} answers it: `glimpse
// status` shows its events. Ups run elsewhere (`glimpse up` from a laptop
// or CI) are not in it; their result is on the preview's route.
type DeployRecord struct {
	App    string `json:"app"`
	PR     int    `json:"pr"`
	Commit string `json:"commit"`
	// Result is "running", "failed" or "done"; Error the failure, one line.
	Result   string     `json:"result"`
	Error    string     `json:"error,omitempty"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	// Events are the Up's pipeline events in order, each with when the
	// daemon received it (bounded: see dashboard.History).
	Events []DeployEvent `json:"events"`
}

// DeployEvent is one pipeline event of a DeployRecord.
type DeployEvent struct {
	Time time.Time `json:"time"`
	preview.Event
}

// serveDeploy answers GET /glimpse/v1/deploys/{app}/{pr}: the preview's
// DeployRecord, or 404 when the daemon ran no Up of it since it started.
func (s *Stack) serveDeploy(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	pr, err := strconv.Atoi(r.PathValue("pr"))
	w.Header().Set("Content-Type", "application/json")
	if err != nil || pr <= 0 || preview.ValidateDNSLabel(app) != nil {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "want /glimpse/v1/deploys/APP/PR with an app name and a positive pull request number"})
		return
	}
	d, ok := s.history.Last(app, pr)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "the daemon ran no deploy of " + app + " #" + strconv.Itoa(pr) + " since it started"})
		return
	}
	rec := DeployRecord{App: d.App, PR: d.PR, Commit: d.Commit, Result: d.Result(), Error: d.Err, Started: d.Started, Events: make([]DeployEvent, len(d.Events))}
	if !d.Finished.IsZero() {
		rec.Finished = &d.Finished
	}
	for i, e := range d.Events {
		rec.Events[i] = DeployEvent{Time: e.Time, Event: e.Event}
	}
	json.NewEncoder(w).Encode(rec)
}

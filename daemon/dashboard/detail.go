package dashboard

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// detailView is a preview's detail page.
type detailView struct {
	App   string
	PR    int
	Row   *row // nil when the preview is not listed (taken down, never routed)
	Error string
	// Deploy is the last Up the daemon ran of it; nil when none.
	Deploy *Deploy
	// Steps are Deploy's events without the build-log lines and without
	// the start of a step that finished; BuildLog are those lines.
	Steps    []Event
	BuildLog []Event
	// HasLogs: the runtime reads function logs and the preview has a
	// function; Logs are its last lines, LogsError why they are missing.
	HasLogs   bool
	Logs      []preview.LogLine
	LogsError string
	// CanRedeploy, else RedeployReason (one line).
	CanRedeploy    bool
	RedeployReason string
	CanDelete      bool
	Path           string
	Confirm        bool
}

func detailPath(app string, pr int) string { return "/previews/" + app + "/" + strconv.Itoa(pr) }

// target reads {app} and {pr} of the request's path; false (after
// answering 404) when they cannot name a preview.
func target(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	app := r.PathValue("app")
	pr, err := strconv.Atoi(r.PathValue("pr"))
	if preview.ValidateDNSLabel(app) != nil || err != nil || pr <= 0 {
		http.Error(w, "no such preview", http.StatusNotFound)
		return "", 0, false
	}
	return app, pr, true
}

// find returns the listed preview of app's pull request pr (nil when not
// listed).
func (d *dashboard) find(r *http.Request, app string, pr int) (*row, string) {
	v := d.view(r)
	for i := range v.Rows {
		if v.Rows[i].App == app && v.Rows[i].PR == pr {
			return &v.Rows[i], ""
		}
	}
	return nil, v.Error
}

func (d *dashboard) detailView(r *http.Request, app string, pr int) (detailView, bool) {
	v := detailView{App: app, PR: pr, Path: detailPath(app, pr), CanDelete: d.src.Delete != nil}
	v.Row, v.Error = d.find(r, app, pr)
	if dep, ok := d.src.History.Last(app, pr); ok {
		v.Deploy = &dep
		finished := map[string]bool{}
		for _, e := range dep.Events {
			if e.State != preview.EventStarted && e.State != preview.EventLog {
				finished[e.Step] = true
			}
		}
		for _, e := range dep.Events {
			switch {
			case e.State == preview.EventLog:
				v.BuildLog = append(v.BuildLog, e)
			case e.State == preview.EventStarted && finished[e.Step]:
				// shown by its end
			default:
				v.Steps = append(v.Steps, e)
			}
		}
	}
	if v.Row == nil && v.Deploy == nil && v.Error == "" {
		return v, false
	}
	switch {
	case v.Deploy != nil && v.Deploy.Redeployable:
		v.CanRedeploy = true
	default:
		v.RedeployReason = NoRedeployReason
	}
	if v.Row != nil && v.Row.Function != "" && d.src.Logs != nil {
		v.HasLogs = true
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		err := d.src.Logs(ctx, v.Row.Function, preview.LogOptions{Tail: d.src.LogTail}, func(l preview.LogLine) error {
			v.Logs = append(v.Logs, l)
			return nil
		})
		if err != nil {
			v.LogsError = oneLine(err.Error())
		}
	}
	return v, true
}

func (d *dashboard) detail(w http.ResponseWriter, r *http.Request) {
	app, pr, ok := target(w, r)
	if !ok {
		return
	}
	v, ok := d.detailView(r, app, pr)
	if !ok {
		http.Error(w, app+": pull request #"+strconv.Itoa(pr)+" has no preview", http.StatusNotFound)
		return
	}
	d.html(w, "detail.html", v)
}

// confirmDelete is the form that asks before a delete, for browsers
// without JavaScript (the page's script asks with confirm()).
func (d *dashboard) confirmDelete(w http.ResponseWriter, r *http.Request) {
	app, pr, ok := target(w, r)
	if !ok {
		return
	}
	if d.src.Delete == nil {
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	d.html(w, "confirm.html", detailView{App: app, PR: pr, Path: detailPath(app, pr), Confirm: true})
}

func (d *dashboard) html(w http.ResponseWriter, name string, v any) {
	var b bytes.Buffer
	if err := page.ExecuteTemplate(&b, name, v); err != nil {
		http.Error(w, "rendering the dashboard failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(b.Bytes())
}

// previewAction runs delete or redeploy of a preview.
func (d *dashboard) previewAction(w http.ResponseWriter, r *http.Request) {
	if !sameSite(r) {
		http.Error(w, "refused: the dashboard takes actions only from its own pages", http.StatusForbidden)
		return
	}
	app, pr, ok := target(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	var err error
	next := "/"
	switch a := r.PathValue("action"); {
	case a == "delete" && d.src.Delete != nil:
		err = d.src.Delete(ctx, app, pr)
	case a == "redeploy" && d.src.History != nil:
		err = d.src.History.Redeploy(ctx, app, pr)
		next = detailPath(app, pr)
	default:
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, r.PathValue("action")+" "+app+" #"+strconv.Itoa(pr)+": "+oneLine(err.Error()), preview.HTTPStatus(preview.CodeOf(err)))
		return
	}
	done(w, r, next)
}

// logs streams the function's last LogTail lines and then its new ones
// as "log" events (data: the line) until the client goes away or the
// runtime ends the stream (the function was removed).
func (d *dashboard) logs(w http.ResponseWriter, r *http.Request) {
	app, pr, ok := target(w, r)
	if !ok {
		return
	}
	rw, _ := d.find(r, app, pr)
	if rw == nil || rw.Function == "" || d.src.Logs == nil {
		http.Error(w, "no logs: the preview has no function whose logs the runtime reads", http.StatusNotFound)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	err := d.src.Logs(r.Context(), rw.Function, preview.LogOptions{Tail: d.src.LogTail, Follow: true}, func(l preview.LogLine) error {
		text := strings.NewReplacer("\r", " ", "\n", " ").Replace(l.Text)
		if _, err := w.Write([]byte("event: log\ndata: " + text + "\n\n")); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && !errors.Is(err, context.Canceled) && r.Context().Err() == nil {
		w.Write([]byte("event: error\ndata: " + oneLine(err.Error()) + "\n\n"))
	}
}

// Package dashboard is the daemon's web page of previews: every preview
// with its app, pull request, commit, URL, state (deploying, live, asleep,
// failed), replicas, last request and last error, and actions to wake a
// preview, put it to sleep or delete it (the daemon's Down, after a
// confirmation). Each preview has a detail page with the last Up the
// daemon ran of it (its result and steps, from History) with a redeploy
// action where the daemon can run that Up again, and its function's last
// log lines, followed over an event stream. The pages are rendered on the
// server and work without JavaScript (actions are plain form posts
// answered with a redirect, delete asks on a form page); where JavaScript
// runs, the list keeps itself current from a server-sent event stream
// (GET /events) that pushes the table whenever what it shows changes, and
// actions are posted without reloading (delete asks with confirm()).
//
// The handler does no authentication: the daemon serves it on its API
// address behind the API's basic auth. Actions refuse cross-site requests
// (Sec-Fetch-Site, else Origin, must name this site), since a browser sends
// basic-auth credentials along with a form another site makes it post.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Source is what the dashboard shows and acts on. List is required; a nil
// Wake or Sleep hides that action.
type Source struct {
	// List returns the previews to show (the daemon's
	// preview.Pipeline.List over its runtime and edge).
	List func(ctx context.Context) ([]preview.Preview, error)
	// Wake scales the named function to one replica.
	Wake func(ctx context.Context, function string) error
	// Sleep scales the named function to zero.
	Sleep func(ctx context.Context, function string) error
	// Now is the clock for "last request ... ago"; nil means time.Now.
	Now func() time.Time
	// Interval is how often the event stream looks for changes; 0 means
	// one second.
	Interval time.Duration
	// History holds the Ups the daemon ran: a preview's detail page
	// shows its last one (result and steps), and its redeploy action
	// runs it again (History.Redeploy). Nil: neither.
	History *History
	// Logs reads a function's log lines (the runtime's
	// preview.LogReader.Logs); nil: the detail page shows no logs.
	Logs func(ctx context.Context, function string, opts preview.LogOptions, fn func(preview.LogLine) error) error
	// Delete takes a preview down (the daemon's Down); nil hides the
	// action.
	Delete func(ctx context.Context, app string, pr int) error
	// LogTail is how many of the function's last log lines the detail
	// page shows; 0 means 50.
	LogTail int
}

//go:embed *.html
var files embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"short": func(s string) string {
		if len(s) > 7 {
			return s[:7]
		}
		return s
	},
}).ParseFS(files, "*.html"))

// row is one preview as the table shows it.
type row struct {
	preview.Preview
	State    string // deploying, live, asleep, failed
	Link     string
	LastSeen string
	CanWake  bool
	CanSleep bool
	// Detail is the preview's detail page.
	Detail    string
	CanDelete bool
}

type view struct {
	Rows  []row
	Error string
}

// New returns the dashboard's handler: GET / (the page), GET /events (the
// event stream), POST /previews/{function}/wake and .../sleep; per
// preview GET /previews/{app}/{pr} (its detail page: state, last deploy
// and its steps, the function's last log lines), GET .../logs (the log
// lines as an event stream, following), POST .../redeploy, GET
// .../delete (a confirmation form) and POST .../delete. It is safe for
// concurrent use.
func New(src Source) http.Handler {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Interval <= 0 {
		src.Interval = time.Second
	}
	if src.LogTail <= 0 {
		src.LogTail = 50
	}
	d := &dashboard{src: src}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.page)
	mux.HandleFunc("GET /events", d.events)
	mux.HandleFunc("POST /previews/{function}/{action}", d.action)
	mux.HandleFunc("GET /previews/{app}/{pr}", d.detail)
	mux.HandleFunc("GET /previews/{app}/{pr}/logs", d.logs)
	mux.HandleFunc("GET /previews/{app}/{pr}/delete", d.confirmDelete)
	mux.HandleFunc("POST /previews/{app}/{pr}/{action}", d.previewAction)
	return mux
}

type dashboard struct{ src Source }

// State names the dashboard shows for preview statuses.
func State(s preview.Status) string {
	switch s {
	case preview.StatusReady:
		return "live"
	case preview.StatusSleeping:
		return "asleep"
	case preview.StatusFailed:
		return "failed"
	}
	return "deploying"
}

func (d *dashboard) view(r *http.Request) view {
	pvs, err := d.src.List(r.Context())
	if err != nil {
		return view{Error: oneLine(err.Error())}
	}
	v := view{Rows: make([]row, 0, len(pvs))}
	now := d.src.Now()
	for _, p := range pvs {
		rw := row{Preview: p, State: State(p.Status), Link: link(p.Host, r.Host)}
		if p.LastRequest != nil {
			rw.LastSeen = ago(now.Sub(*p.LastRequest))
		}
		rw.CanWake = d.src.Wake != nil && p.Function != "" && (rw.State == "asleep" || rw.State == "failed")
		rw.CanSleep = d.src.Sleep != nil && p.Function != "" && rw.State == "live"
		rw.Detail = detailPath(p.App, p.PR)
		rw.CanDelete = d.src.Delete != nil
		v.Rows = append(v.Rows, rw)
	}
	return v
}

// render executes the named template of the page into a buffer.
func render(name string, v view) ([]byte, error) {
	var b bytes.Buffer
	if err := page.ExecuteTemplate(&b, name, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	b, err := render("page.html", d.view(r))
	if err != nil {
		http.Error(w, "rendering the dashboard failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(b)
}

// events streams the table's rows as "rows" events: one at once, then one
// whenever the rendering changes, until the client goes away.
func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(d.src.Interval)
	defer t.Stop()
	var last []byte
	for {
		b, err := render("rows", d.view(r))
		if err == nil && !bytes.Equal(b, last) {
			last = b
			var ev bytes.Buffer
			ev.WriteString("event: rows\n")
			for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
				ev.WriteString("data: ")
				ev.Write(line)
				ev.WriteByte('\n')
			}
			ev.WriteByte('\n')
			if _, err := w.Write(ev.Bytes()); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func (d *dashboard) action(w http.ResponseWriter, r *http.Request) {
	if !sameSite(r) {
		http.Error(w, "refused: the dashboard takes actions only from its own pages", http.StatusForbidden)
		return
	}
	fn := r.PathValue("function")
	if preview.ValidateDNSLabel(fn) != nil {
		http.Error(w, "no such function", http.StatusNotFound)
		return
	}
	var do func(context.Context, string) error
	switch r.PathValue("action") {
	case "wake":
		do = d.src.Wake
	case "sleep":
		do = d.src.Sleep
	}
	if do == nil {
		http.Error(w, "unknown action", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if err := do(ctx, fn); err != nil {
		http.Error(w, r.PathValue("action")+" "+fn+": "+oneLine(err.Error()), preview.HTTPStatus(preview.CodeOf(err)))
		return
	}
	done(w, r, "/")
}

// done answers a successful action: 204 to the page's script, a redirect
// to next (303) to a plain form post.
func done(w http.ResponseWriter, r *http.Request, next string) {
	if r.Header.Get("X-Requested-With") == "fetch" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// sameSite reports whether r comes from this site's own page: a browser
// says so in Sec-Fetch-Site, older ones in Origin; a request with neither
// (curl) is not a browser's and carries no ambient credentials of another
// site.
func sameSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin" || s == "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == "http://"+r.Host || o == "https://"+r.Host
	}
	return true
}

// link is the URL of host as seen from a browser on the dashboard's own
// address: the same port, plain HTTP.
func link(host, dashboardHost string) string {
	if host == "" {
		return ""
	}
	if _, port, err := net.SplitHostPort(dashboardHost); err == nil && port != "80" {
		return "http://" + net.JoinHostPort(host, port) + "/"
	}
	return "http://" + host + "/"
}

// ago is a short "how long ago": 5s, 3m, 2h, 4d.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Package routeapi serves a preview.Router over HTTP and is the client of
// that API: the daemon's route API under /glimpse/v1/ (Handler, over its
// edge), and the edge:// provider URL that `glimpse up` and CI jobs open
// (Client), which is a preview.Router and a preview.ActivityReporter.
// The wire format is JSON preview.Route values; errors carry preview's
// code names, so a client's errors have the server's codes (Aborted for a
// lost compare-and-swap, NotFound, InvalidArgument...).
package routeapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// The route API, served by Handler under AdminPath:
//
//	GET    /glimpse/v1/routes[?selector=k=v,k2=v2]  -> 200 {"routes": [Route...]}
//	GET    /glimpse/v1/routes/{host}                -> 200 Route | 404
//	PUT    /glimpse/v1/routes/{host}  body: Route   -> 200 Route (as stored) | 409 Aborted when body.version is not the stored one
//	DELETE /glimpse/v1/routes/{host}                -> 204 (also when missing)
//
// Errors are {"error": "message", "code": "InvalidArgument"} with the HTTP
// status of the code (see StatusOf).
const AdminPath = "/glimpse/v1/routes"

// RouteList is the body of GET /glimpse/v1/routes.
type RouteList struct {
	Routes []preview.Route `json:"routes"`
}

// ErrorBody is the body of every admin API error.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// ActivityPath is the admin API path that reports the edge's per-function
// activity (GET, an ActivityList).
const ActivityPath = "/glimpse/v1/activity"

// ActivityList is the body of GET ActivityPath.
type ActivityList struct {
	Functions []preview.Activity `json:"functions"`
}

// maxRouteBody bounds a PUT body.
const maxRouteBody = 1 << 20

// Handler returns the HTTP handler of the route API (see AdminPath) over
// e; ActivityPath is served when e is also a preview.ActivityReporter
// (the edge is), else it answers 404. It does no authentication: the
// daemon wraps it (basic auth user admin). The handler is as safe for
// concurrent use, and its mutations as idempotent, as the Router methods
// it calls.
func Handler(e preview.Router) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPath, func(w http.ResponseWriter, r *http.Request) {
		sel, err := ParseSelector(r.URL.Query().Get("selector"))
		if err != nil {
			writeError(w, err)
			return
		}
		routes, err := e.Routes(r.Context(), sel)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, RouteList{Routes: routes})
	})
	mux.HandleFunc("GET "+ActivityPath, func(w http.ResponseWriter, r *http.Request) {
		ar, ok := e.(preview.ActivityReporter)
		if !ok {
			writeError(w, preview.Errorf(preview.NotFound, "this route API reports no activity"))
			return
		}
		acts, err := ar.Activity(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ActivityList{Functions: acts})
	})
	mux.HandleFunc("GET "+AdminPath+"/{host}", func(w http.ResponseWriter, r *http.Request) {
		rt, err := e.Route(r.Context(), r.PathValue("host"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rt)
	})
	mux.HandleFunc("PUT "+AdminPath+"/{host}", func(w http.ResponseWriter, r *http.Request) {
		host := preview.NormalizeHost(r.PathValue("host"))
		var rt preview.Route
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRouteBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rt); err != nil {
			writeError(w, preview.Errorf(preview.InvalidArgument, "route body: %v", err))
			return
		}
		if rt.Host == "" {
			rt.Host = host
		}
		if preview.NormalizeHost(rt.Host) != host {
			writeError(w, preview.Errorf(preview.InvalidArgument, "route body names host %q, the URL %q", rt.Host, host))
			return
		}
		stored, err := e.SetRoute(r.Context(), rt)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, stored)
	})
	mux.HandleFunc("DELETE "+AdminPath+"/{host}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.DeleteRoute(r.Context(), r.PathValue("host")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// ParseSelector parses "k=v,k2=v2" (equality only, as in Kubernetes label
// selectors) into labels; "" is the empty selector, which matches
// everything. Errors have code InvalidArgument.
func ParseSelector(s string) (preview.Labels, error) {
	sel := preview.Labels{}
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, preview.Errorf(preview.InvalidArgument, "selector %q: %q is not key=value", s, part)
		}
		sel[k] = strings.TrimSpace(v)
	}
	return sel, nil
}

// FormatSelector is the inverse of ParseSelector, with keys sorted.
func FormatSelector(sel preview.Labels) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(sel[k])
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	c := preview.CodeOf(err)
	if c == preview.Unknown {
		c = preview.Internal
	}
	var pe *preview.Error
	msg := err.Error()
	if errors.As(err, &pe) && pe.Err != nil {
		msg = pe.Err.Error()
	}
	writeJSON(w, preview.HTTPStatus(c), ErrorBody{Error: msg, Code: c.String()})
}

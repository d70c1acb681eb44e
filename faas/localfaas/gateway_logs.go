package localfaas

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/glimpse-dev/glimpse/faas/openfaas"
	"github.com/glimpse-dev/glimpse/preview"
)

// logs serves GET /system/logs as faas-provider's logs.NewLogHandlerFunc
// does (faas-provider v0.25.12 logs/handler.go), over Runtime.Logs: the
// query parameters name, namespace, instance, since (RFC3339), tail (an
// integer; <= 0 is unlimited) and follow (a bool; unparsable is false),
// the last value of each when repeated; 422 "could not parse the log
// request" for an unparsable tail or since; then 200 with Content-Type
// application/x-ndjson and one logs.Message per line, flushed as it is
// written. Unlike the provider's handler, which answers 500 for every
// failed query and ends a follow at a fixed timeout, it answers 400 for a
// missing name or another namespace and 404 for an unknown function, and
// follows until the client disconnects (or the function is removed).
// faas-cli logs reads this stream (faas-cli proxy/logs.go decodes
// logs.Message values until EOF).
func (g *gateway) logs(w http.ResponseWriter, req *http.Request) {
	lr, err := parseLogRequest(req.URL.Query())
	if err != nil {
		http.Error(w, "could not parse the log request", http.StatusUnprocessableEntity)
		return
	}
	if !checkNamespace(w, lr.Namespace) {
		return
	}
	if lr.Name == "" {
		http.Error(w, "name is required", http.StatusBadRequest)
		return
	}
	ctx := req.Context()
	if _, err := g.r.Get(ctx, lr.Name); err != nil {
		writeError(w, err)
		return
	}
	opts := preview.LogOptions{Tail: lr.Tail, Follow: lr.Follow}
	if lr.Since != nil {
		opts.Since = *lr.Since
	}
	w.Header().Set("Connection", "Keep-Alive")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	g.r.Logs(ctx, lr.Name, opts, func(l preview.LogLine) error {
		if lr.Instance != "" && lr.Instance != l.Instance {
			return nil
		}
		if err := enc.Encode(logs.Message{Name: l.Function, Namespace: GatewayNamespace, Instance: l.Instance, Timestamp: l.Time, Text: l.Text}); err != nil {
			return err
		}
		if opts.Follow {
			return rc.Flush()
		}
		return nil
	})
	rc.Flush()
}

// parseLogRequest reads the query as faas-provider's parseRequest does.
func parseLogRequest(q url.Values) (logs.Request, error) {
	last := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	lr := logs.Request{Name: last("name"), Namespace: last("namespace"), Instance: last("instance")}
	if s := last("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lr, err
		}
		lr.Tail = n
	}
	lr.Follow, _ = strconv.ParseBool(last("follow"))
	if s := last("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return lr, err
		}
		lr.Since = &t
	}
	return lr, nil
}

// healthAnnotations are the status annotations through which the gateway
// tells the openfaas client what FunctionStatus says beyond the OpenFaaS
// types (openfaas.LastErrorAnnotation and friends), which the client
// moves into FunctionStatus fields.
func healthAnnotations(st preview.FunctionStatus) map[string]string {
	a := map[string]string{}
	if st.LastError != "" {
		a[openfaas.LastErrorAnnotation] = st.LastError
	}
	if st.Restarts > 0 {
		a[openfaas.RestartsAnnotation] = strconv.Itoa(st.Restarts)
	}
	if !st.StartedAt.IsZero() {
		a[openfaas.StartedAtAnnotation] = st.StartedAt.UTC().Format(time.RFC3339Nano)
	}
	return a
}

package openfaas

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/glimpse-dev/glimpse/preview"
)

// Status annotations through which faas/localfaas's gateway reports what
// the OpenFaaS types cannot carry; Get and List move them into
// preview.FunctionStatus (LastError, Restarts, StartedAt) and do not
// return them as annotations. A plain OpenFaaS gateway sets none of them,
// so through it LastError stays empty: its status cannot tell a crashing
// function from a starting one (availableReplicas is 0 for both).
const (
	LastErrorAnnotation = "glimpse.dev/last-error"
	RestartsAnnotation  = "glimpse.dev/restarts"
	StartedAtAnnotation = "glimpse.dev/started-at"
)

// health moves the status annotations of a into st.
func health(st *preview.FunctionStatus, a map[string]string) {
	st.LastError = a[LastErrorAnnotation]
	st.Restarts, _ = strconv.Atoi(a[RestartsAnnotation])
	st.StartedAt, _ = time.Parse(time.RFC3339Nano, a[StartedAtAnnotation])
	delete(a, LastErrorAnnotation)
	delete(a, RestartsAnnotation)
	delete(a, StartedAtAnnotation)
}

var _ preview.LogReader = (*Client)(nil)

// Logs reads the function's logs from the gateway's GET /system/logs
// (preview.LogReader), which the OpenFaaS gateway proxies to its
// provider's log system (faas-netes: the pods' logs; faasd: journald) and
// localfaas's gateway serves from its log files. The query is what
// faas-cli logs sends: name, namespace, tail, since (RFC3339, so whole
// seconds) and follow; the answer is NDJSON of faas-provider logs.Message.
// The request has no timeout of its own (a follow lasts until ctx ends);
// an error status maps to a code as every other call's (404: NotFound),
// and a stream cut before its end is Unavailable.
func (c *Client) Logs(ctx context.Context, name string, opts preview.LogOptions, fn func(preview.LogLine) error) error {
	if preview.ValidateDNSLabel(name) != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return preview.Errorf(preview.NotFound, "function %q not found", name)
	}
	q := c.query()
	q.Set("name", name)
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.UTC().Format(time.RFC3339))
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	const path = "/system/logs"
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return preview.WithCode(preview.InvalidArgument, err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("User-Agent", "glimpse-openfaas")
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return preview.Errorf(preview.Unavailable, "openfaas GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		he := &HTTPError{Method: http.MethodGet, Path: path, StatusCode: resp.StatusCode, Body: string(b)}
		code := codeFor(resp.StatusCode, he.Body)
		if code == preview.NotFound {
			return preview.WithCode(code, errors.New("function "+name+" not found: "+he.Error()))
		}
		return preview.WithCode(code, he)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var m logs.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return preview.Errorf(preview.Unavailable, "openfaas GET %s: log stream: %v", path, err)
		}
		l := preview.LogLine{Function: m.Name, Instance: m.Instance, Time: m.Timestamp, Text: m.Text}
		if l.Function == "" {
			l.Function = name
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}

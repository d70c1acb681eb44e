//go:build unix

package localfaas

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/glimpse-dev/glimpse/faas/openfaas"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/preview/previewtest"
)

// printLines makes the function print lines on stdout (and stderr, when
// not empty) through echofn's /print.
func printLines(t *testing.T, rt *Runtime, name, stderr string, lines ...string) {
	t.Helper()
	addr, err := rt.Endpoint(name)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"line": lines}
	if stderr != "" {
		q.Set("stderr", stderr)
	}
	resp, err := http.Get("http://" + addr + "/print?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// getLogs GETs /system/logs?query and returns the status, content type and
// body.
func getLogs(t *testing.T, srv *httptest.Server, query string, auth bool) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/system/logs?"+query, nil)
	if auth {
		req.SetBasicAuth(GatewayUser, testPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// ndjson checks every line of body is exactly one faas-provider
// logs.Message (no other field, all five present) and returns them.
func ndjson(t *testing.T, body string) []logs.Message {
	t.Helper()
	var out []logs.Message
	if body == "" {
		return nil
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("body does not end with a newline: %q", body)
	}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		for _, k := range []string{"name", "namespace", "instance", "timestamp", "text"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("line %q lacks %q", line, k)
			}
		}
		if len(raw) != 5 {
			t.Fatalf("line %q has fields beyond logs.Message's", line)
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var m logs.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	// And as faas-cli reads the stream (proxy/logs.go: decoder.More, Decode).
	dec := json.NewDecoder(strings.NewReader(body))
	n := 0
	for dec.More() {
		var m logs.Message
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("faas-cli's decoding: %v", err)
		}
		if m != out[n] {
			t.Fatalf("faas-cli's decoding: message %d = %+v, want %+v", n, m, out[n])
		}
		n++
	}
	return out
}

func texts(ms []logs.Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Text)
	}
	return s
}

// TestGatewayLogs: /system/logs answers NDJSON of logs.Message with what
// the function printed on stdout and stderr, in order, stamped; tail and
// since select as faas-provider documents; bad queries are refused as the
// provider's handler refuses them, and auth is that of /system/.
func TestGatewayLogs(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	srv := newGateway(t, rt)
	fn := testFunction("logs-pr-1", echoImage(t, "a"), 1)
	before := time.Now()
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	printLines(t, rt, fn.Name, "err three", "one", "two  spaced ")

	code, ctype, body := getLogs(t, srv, "name="+fn.Name, false)
	if code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d %s", code, body)
	}
	// The runtime copies the function's output to its log as it reads the
	// pipes: on a loaded machine the lines land a moment after /print
	// answered.
	var ms []logs.Message
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, ctype, body = getLogs(t, srv, "name="+fn.Name+"&namespace="+GatewayNamespace, true)
		if code != http.StatusOK || ctype != "application/x-ndjson" {
			t.Fatalf("GET /system/logs: %d %q %s", code, ctype, body)
		}
		if ms = ndjson(t, body); len(ms) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if got := texts(ms); strings.Join(got, "|") != "one|two  spaced |err three" {
		t.Fatalf("texts = %q", got)
	}
	for _, m := range ms {
		if m.Name != fn.Name || m.Namespace != GatewayNamespace || m.Instance != fn.Name ||
			m.Timestamp.Before(before) || m.Timestamp.After(time.Now()) {
			t.Fatalf("message %+v", m)
		}
	}
	// tail: the last N; <= 0 (faas-cli sends -1) is all; the last value
	// of a repeated parameter counts.
	for q, want := range map[string]string{
		"tail=2": "two  spaced |err three", "tail=1": "err three", "tail=0": "one|two  spaced |err three",
		"tail=-1&follow=false": "one|two  spaced |err three", "tail=9&tail=1": "err three", "tail=10": "one|two  spaced |err three",
	} {
		code, _, body := getLogs(t, srv, "name="+fn.Name+"&"+q, true)
		if got := strings.Join(texts(ndjson(t, body)), "|"); code != 200 || got != want {
			t.Errorf("%s: %d %q, want %q", q, code, got, want)
		}
	}
	// since (RFC3339, whole seconds): lines written from then on.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(since) + 10*time.Millisecond)
	printLines(t, rt, fn.Name, "", "four", "five")
	for q, want := range map[string]string{
		"since=" + url.QueryEscape(since.Format(time.RFC3339)):                               "four|five",
		"since=" + url.QueryEscape(since.In(time.FixedZone("x", 3600)).Format(time.RFC3339)): "four|five",
		"since=" + url.QueryEscape(before.Add(-time.Hour).Format(time.RFC3339)):              "one|two  spaced |err three|four|five",
		"since=" + url.QueryEscape(since.Add(time.Hour).Format(time.RFC3339)):                "",
		"tail=1&since=" + url.QueryEscape(since.Format(time.RFC3339)):                        "five",
		"tail=4&since=" + url.QueryEscape(since.Format(time.RFC3339)):                        "four|five",
	} {
		code, _, body := getLogs(t, srv, "name="+fn.Name+"&"+q, true)
		if got := strings.Join(texts(ndjson(t, body)), "|"); code != 200 || got != want {
			t.Errorf("%s: %d %q, want %q", q, code, got, want)
		}
	}
	for q, want := range map[string]int{
		"name=" + fn.Name + "&tail=abc":        http.StatusUnprocessableEntity,
		"name=" + fn.Name + "&since=10m":       http.StatusUnprocessableEntity,
		"name=" + fn.Name + "&namespace=other": http.StatusBadRequest,
		"":                                     http.StatusBadRequest,
		"name=nope-pr-1":                       http.StatusNotFound,
	} {
		if code, _, body := getLogs(t, srv, q, true); code != want || strings.Count(body, "\n") > 1 {
			t.Errorf("%q: %d %q, want %d and one line", q, code, body, want)
		}
	}
	// A restart's output follows the earlier process's; the runtime's
	// start lines are not function output.
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Scale(ctx, fn.Name, 1); err != nil {
		t.Fatal(err)
	}
	printLines(t, rt, fn.Name, "", "six")
	_, _, body = getLogs(t, srv, "name="+fn.Name+"&tail=2", true)
	if got := strings.Join(texts(ndjson(t, body)), "|"); got != "five|six" {
		t.Fatalf("after a restart: %q", got)
	}
	raw, _ := os.ReadFile(rt.logPath(fn.Name))
	if n := strings.Count(string(raw), logHeader); n != 2 {
		t.Fatalf("log has %d start lines, want 2:\n%s", n, raw)
	}
}

// TestGatewayLogsFollow: follow=true streams lines the function prints as
// they come (well within a second), chunk by chunk, and the handler
// returns once the client goes away.
func TestGatewayLogsFollow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	h := rt.GatewayHandler(testPassword)
	var mu sync.Mutex
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/system/logs" {
			mu.Lock()
			close(returned)
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	fn := testFunction("follow-pr-1", echoImage(t, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	printLines(t, rt, fn.Name, "", "old")

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, srv.URL+"/system/logs?name="+fn.Name+"&follow=true&tail=-1", nil)
	req.SetBasicAuth(GatewayUser, testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("follow: %s %v %v", resp.Status, resp.Header, resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	next := func() logs.Message {
		t.Helper()
		type res struct {
			line string
			err  error
		}
		ch := make(chan res, 1)
		go func() { l, err := br.ReadString('\n'); ch <- res{l, err} }()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("reading the stream: %v", r.err)
			}
			return ndjson(t, r.line)[0]
		case <-time.After(time.Second):
			t.Fatal("no line within a second")
		}
		return logs.Message{}
	}
	if m := next(); m.Text != "old" {
		t.Fatalf("first line %+v", m)
	}
	for _, s := range []string{"new 1", "new 2"} {
		start := time.Now()
		printLines(t, rt, fn.Name, "", s)
		if m := next(); m.Text != s || time.Since(start) > time.Second {
			t.Fatalf("followed line %+v after %v", m, time.Since(start))
		}
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still streams after the client went away")
	}
}

// The openfaas client reads the gateway's logs: a preview.LogReader over
// /system/logs, with tail, since and follow, ending on cancel.
func TestClientLogsOverGateway(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, t.TempDir(), nil)
	c := gatewayClient(t, rt)
	var lr preview.LogReader = c
	fn := testFunction("clogs-pr-1", echoImage(t, "a"), 1)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	printLines(t, rt, fn.Name, "", "a", "b", "c")
	collect := func(opts preview.LogOptions) []string {
		var got []string
		if err := lr.Logs(ctx, fn.Name, opts, func(l preview.LogLine) error {
			if l.Function != fn.Name || l.Time.IsZero() {
				t.Errorf("line %+v", l)
			}
			got = append(got, l.Text)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := strings.Join(collect(preview.LogOptions{}), ""); got != "abc" {
		t.Fatalf("all: %q", got)
	}
	if got := strings.Join(collect(preview.LogOptions{Tail: 2}), ""); got != "bc" {
		t.Fatalf("tail 2: %q", got)
	}
	if got := collect(preview.LogOptions{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Fatalf("since later: %q", got)
	}
	if err := lr.Logs(ctx, "nope-pr-1", preview.LogOptions{}, func(preview.LogLine) error { return nil }); !preview.IsNotFound(err) {
		t.Fatalf("unknown function: %v", err)
	}
	// Runtime.Logs directly agrees.
	var direct []string
	rt.Logs(ctx, fn.Name, preview.LogOptions{Tail: 1}, func(l preview.LogLine) error { direct = append(direct, l.Text); return nil })
	if strings.Join(direct, "") != "c" {
		t.Fatalf("Runtime.Logs tail 1: %q", direct)
	}

	fctx, cancel := context.WithCancel(ctx)
	lines := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- lr.Logs(fctx, fn.Name, preview.LogOptions{Follow: true, Tail: 1}, func(l preview.LogLine) error {
			lines <- l.Text
			return nil
		})
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("followed %q, want %q", got, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("no %q within a second", want)
		}
	}
	expect("c")
	printLines(t, rt, fn.Name, "", "d")
	expect("d")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("follow ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end on cancel")
	}
	// A stopping fn stops Logs with its error.
	stop := errors.New("enough")
	if err := lr.Logs(ctx, fn.Name, preview.LogOptions{Follow: true}, func(preview.LogLine) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: %v", err)
	}
}

// TestCrashIsFailed: a function whose process crashed and is not back is
// reported with LastError, by the runtime and through the gateway, and a
// Pipeline lists its preview as failed, also once it is scaled to zero;
// never as sleeping. A start that works clears it.
func TestCrashIsFailed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// A long backoff keeps the crashed function down while we look.
	rt := newRuntime(t, t.TempDir(), func(o *Options) { o.RestartBackoff = time.Minute })
	c := gatewayClient(t, rt)
	fn := testFunction("crashy-pr-3", echoImage(t, "a"), 3)
	if err := rt.Apply(ctx, fn); err != nil {
		t.Fatal(err)
	}
	router := previewtest.NewMemRouter()
	target := preview.Target{App: "hello", PR: 3, Commit: "abc1234"}
	host := preview.Host("hello", 3, "localhost")
	if _, err := router.SetRoute(ctx, preview.Route{Host: host, Function: fn.Name, Labels: preview.OwnerLabels("test", target), Generation: 1, Served: 1}); err != nil {
		t.Fatal(err)
	}
	pl := &preview.Pipeline{Runtime: c, Router: router, Owner: "test", BaseDomain: "localhost"}
	status := func() preview.Preview {
		t.Helper()
		l, err := pl.List(ctx, "hello")
		if err != nil || len(l) != 1 {
			t.Fatalf("List = %+v, %v", l, err)
		}
		return l[0]
	}
	if p := status(); p.Status != preview.StatusReady || p.LastError != "" {
		t.Fatalf("healthy: %+v", p)
	}
	st, _ := c.Get(ctx, fn.Name)
	if st.StartedAt.IsZero() || st.Restarts != 0 || st.LastError != "" || st.Annotations[openfaas.StartedAtAnnotation] != "" {
		t.Fatalf("healthy status %+v", st)
	}

	addr, _ := rt.Endpoint(fn.Name)
	if resp, err := http.Get("http://" + addr + "/crash"); err == nil {
		resp.Body.Close()
	}
	if !eventually(5*time.Second, func() bool { s, _ := rt.Get(ctx, fn.Name); return s.LastError != "" }) {
		t.Fatal("no LastError after a crash")
	}
	for _, get := range []func() (preview.FunctionStatus, error){
		func() (preview.FunctionStatus, error) { return rt.Get(ctx, fn.Name) },
		func() (preview.FunctionStatus, error) { return c.Get(ctx, fn.Name) },
	} {
		st, err := get()
		if err != nil || st.AvailableReplicas != 0 || st.Replicas != 1 || st.Restarts != 1 ||
			!strings.Contains(st.LastError, "exit status 3") || strings.Contains(st.LastError, "\n") {
			t.Fatalf("after a crash: %+v, %v", st, err)
		}
		if _, ok := st.Annotations[openfaas.LastErrorAnnotation]; ok {
			t.Fatalf("the client left the health annotation in: %v", st.Annotations)
		}
	}
	if p := status(); p.Status != preview.StatusFailed || !strings.Contains(p.LastError, "exit status 3") {
		t.Fatalf("crashed: %+v", p)
	}
	// Put to sleep while down: still failed, not sleeping.
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	if p := status(); p.Status != preview.StatusFailed || p.Replicas != 0 {
		t.Fatalf("crashed and scaled to zero: %+v", p)
	}
	// A wake that starts clears it.
	if _, err := rt.Scale(ctx, fn.Name, 1); err != nil {
		t.Fatal(err)
	}
	if p := status(); p.Status != preview.StatusReady || p.LastError != "" {
		t.Fatalf("after a good wake: %+v", p)
	}
	// Healthy and asleep is sleeping.
	if _, err := rt.Scale(ctx, fn.Name, 0); err != nil {
		t.Fatal(err)
	}
	if p := status(); p.Status != preview.StatusSleeping {
		t.Fatalf("asleep: %+v", p)
	}
}

// Lines are stamped as they arrive, split when longer than maxLogLine, and
// a last line without newline is kept.
func TestLogCopy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logf, err := os.Create(dir + "/l")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, _ := os.Pipe()
	done := make(chan struct{})
	go func() { logCopy(logf, pr); close(done) }()
	long := strings.Repeat("x", maxLogLine+10)
	fmt.Fprintf(pw, "a\n\n%s\nend", long)
	pw.Close()
	<-done
	b, _ := os.ReadFile(dir + "/l")
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		ts, text := parseLogLine(l)
		if ts.IsZero() {
			t.Fatalf("line without time: %.40q", l)
		}
		got = append(got, fmt.Sprint(len(text)))
	}
	if strings.Join(got, ",") != fmt.Sprintf("1,0,%d,10,3", maxLogLine) {
		t.Fatalf("line lengths %v", got)
	}
	if !bytes.HasSuffix(b, []byte(" end\n")) {
		t.Fatalf("last line: %q", b[len(b)-20:])
	}
}

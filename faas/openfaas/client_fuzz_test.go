package openfaas

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/preview"
)

// answer is a RoundTripper that gives every request the same answer.
type answer struct {
	status int
	body   []byte
}

func (a answer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: a.status, Status: http.StatusText(a.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)), Request: req,
	}, nil
}

// FuzzClientDecode gives the client arbitrary gateway answers (status and
// body) to Get, List and Scale, and checks: no panic; a non-2xx answer is
// an error with the code codeFor gives (404 NotFound on Get); a 2xx
// answer is decoded exactly when encoding/json decodes it; errors are one
// line; decoded statuses have non-negative replica counts and never show
// the spec-hash annotation; List is sorted and only returns matches.
func FuzzClientDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, code uint16, body []byte) {
		status := 200 + int(code)%400
		c, err := New("http://gateway.invalid:8080", &Options{
			HTTPClient: &http.Client{Transport: answer{status, body}},
			MaxRetries: -1, ScaleSettle: -1, Namespace: "openfaas-fn",
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		ok := status >= 200 && status <= 299
		oneLine := func(what string, err error) {
			t.Helper()
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("%s: error is not one line: %q", what, msg)
			}
		}
		checkStatus := func(what string, st preview.FunctionStatus) {
			t.Helper()
			if st.Replicas < 0 || st.AvailableReplicas < 0 {
				t.Fatalf("%s of %q: replicas %d, available %d", what, body, st.Replicas, st.AvailableReplicas)
			}
			if _, in := st.Annotations[SpecHashAnnotation]; in {
				t.Fatalf("%s of %q shows %s", what, body, SpecHashAnnotation)
			}
		}

		st, err := c.Get(ctx, "fn")
		var ref types.FunctionStatus
		refErr := json.NewDecoder(bytes.NewReader(body)).Decode(&ref)
		switch {
		case !ok:
			if err == nil {
				t.Fatalf("Get with status %d succeeded", status)
			}
			oneLine("Get", err)
			want := codeFor(status, string(body[:min(len(body), 1024)]))
			if status == http.StatusNotFound {
				want = preview.NotFound
			}
			if got := preview.CodeOf(err); got != want && !(status == http.StatusNotFound && got == preview.AlreadyExists) {
				t.Fatalf("Get with status %d: code %v, want %v (%v)", status, got, want, err)
			}
		case (err == nil) != (refErr == nil):
			t.Fatalf("Get of %q: err %v, encoding/json: %v", body, err, refErr)
		case err != nil:
			oneLine("Get", err)
			if preview.CodeOf(err) != preview.Internal {
				t.Fatalf("Get of %q: code %v: %v", body, preview.CodeOf(err), err)
			}
		default:
			checkStatus("Get", st)
			if st.Name != ref.Name || st.Image != ref.Image || (ref.EnvProcess != "" && st.Env["fprocess"] == "") {
				t.Fatalf("Get of %q = %+v", body, st)
			}
		}

		sel := preview.Labels{"app": "a"}
		list, err := c.List(ctx, sel)
		if err != nil {
			oneLine("List", err)
			if ok && preview.CodeOf(err) != preview.Internal {
				t.Fatalf("List of %q: code %v: %v", body, preview.CodeOf(err), err)
			}
		} else {
			if !ok {
				t.Fatalf("List with status %d succeeded", status)
			}
			if !sort.SliceIsSorted(list, func(i, j int) bool { return list[i].Name < list[j].Name }) {
				t.Fatalf("List of %q is not sorted", body)
			}
			for _, st := range list {
				checkStatus("List", st)
				if !st.Labels.Matches(sel) {
					t.Fatalf("List of %q returned %+v, which does not match", body, st)
				}
			}
		}

		n, err := c.Scale(ctx, "fn", 0)
		if err != nil {
			oneLine("Scale", err)
		} else if n < 0 {
			t.Fatalf("Scale of %q = %d", body, n)
		}
	})
}

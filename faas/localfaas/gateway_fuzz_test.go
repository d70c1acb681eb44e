//go:build unix

package localfaas

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// noImages is a registry transport that knows no image.
type noImages struct{}

func (noImages) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))}, nil
}

// FuzzGatewayRequest feeds arbitrary bodies, function names and
// namespaces to the gateway's deploy, update, delete and scale endpoints
// (through the handler, with credentials, on a runtime whose registry has
// no images) and checks: no panic, the status is 2xx or 4xx (no input
// may cause a server error; a body that decodes to a function with an
// image nobody has is 400), and an error body is one line.
func FuzzGatewayRequest(f *testing.F) {
	rt, err := New(f.TempDir(), &Options{
		Logger:        slog.New(slog.DiscardHandler),
		RemoteOptions: []remote.Option{remote.WithTransport(noImages{})},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { rt.Close() })
	h := rt.GatewayHandler("pw")
	ops := []struct{ method, path string }{
		{http.MethodPost, "/system/functions"},
		{http.MethodPut, "/system/functions"},
		{http.MethodDelete, "/system/functions"},
		{http.MethodPost, "/system/scale-function/"},
	}
	f.Fuzz(func(t *testing.T, op uint8, name, namespace string, body []byte) {
		o := ops[int(op)%len(ops)]
		target := o.path
		if strings.HasSuffix(target, "/") {
			if name == "." || name == ".." {
				return // ServeMux redirects to the cleaned path
			}
			target += url.PathEscape(name)
		}
		if namespace != "" {
			target += "?namespace=" + url.QueryEscape(namespace)
		}
		req := httptest.NewRequest(o.method, "http://127.0.0.1:8080"+target, bytes.NewReader(body))
		req.SetBasicAuth(GatewayUser, "pw")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode < 200 || res.StatusCode > 299 && res.StatusCode < 400 || res.StatusCode > 499 {
			t.Fatalf("%s %s with %q: %d %q", o.method, target, body, res.StatusCode, b)
		}
		if res.StatusCode >= 400 {
			msg := strings.TrimSuffix(string(b), "\n")
			if msg == "" || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("%s %s with %q: %d: body is not one line: %q", o.method, target, body, res.StatusCode, b)
			}
		}
	})
}

package edge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEndpointPathPrefix: an upstream endpoint with a path prefix (an
// OpenFaaS gateway's /function/NAME) gets the prefix before every
// request's path and query, on reused connections too, and the Host the
// client sent.
func TestEndpointPathPrefix(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(echoHandler))
		t.Cleanup(up.Close)
		_, srv := proxyEdge(t, fixedUpstream(upstreamAddr(up)+"/function/hello-pr-7"))
		for _, tc := range []struct{ path, want string }{
			{"/graphql", "/function/hello-pr-7/graphql"},
			{"/api/x?q=1&b=%2F", "/function/hello-pr-7/api/x?q=1&b=%2F"},
			{"/graphql", "/function/hello-pr-7/graphql"},
		} {
			resp, body := do(t, newReq(t, srv, "POST", tc.path, strings.NewReader("{}")))
			var got echoed
			if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("POST %s = %d %q", tc.path, resp.StatusCode, body)
			}
			if got.URI != tc.want || got.Host != fnHost || got.Body != "{}" {
				t.Fatalf("POST %s reached the upstream as %s (host %s, body %q), want %s", tc.path, got.URI, got.Host, got.Body, tc.want)
			}
		}
	})
}

// Package kubescale holds the scale figures of Glimpse's Kubernetes
// providers, measured against a real control plane whose pods run on
// kwok's fake node (internal/kubetest, Options.FakeNode): 1,000 kubefaas
// previews, each a Deployment with a Running, Ready pod, where real pods
// would not fit on one machine. Its one piece of code is Counter, a
// counting http.RoundTripper; the figures are its benchmarks:
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/kubescale/
//
// API calls are counted by Counter wrapping the client's transport
// (rest.Config.WrapTransport), so they are what the API server receives.
package kubescale

import (
	"io"
	"net/http"
	"strings"
	"sync"
)

// Counter counts the requests made through the http.RoundTrippers it
// wraps, by kind (Kind), and the response body bytes read (as sent: a
// compressed body counts compressed). It is safe for concurrent use.
type Counter struct {
	mu     sync.Mutex
	counts map[string]int
	bytes  int64
}

// Wrap is a rest.Config.WrapTransport that counts through c.
func (c *Counter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{c, rt}
}

type roundTripper struct {
	c  *Counter
	rt http.RoundTripper
}

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r.c.mu.Lock()
	if r.c.counts == nil {
		r.c.counts = map[string]int{}
	}
	r.c.counts[Kind(req)]++
	r.c.mu.Unlock()
	resp, err := r.rt.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, c: r.c}
	}
	return resp, err
}

// countingBody adds what is read from a response body to the bytes.
type countingBody struct {
	io.ReadCloser
	c *Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.mu.Lock()
	b.c.bytes += int64(n)
	b.c.mu.Unlock()
	return n, err
}

// Kind names what a request to the API server does: "list", "watch",
// "get" (one object or its subresource), "write" (create, update, patch,
// delete) or "other" (discovery, health). A list is a GET of a collection:
// RESOURCE or namespaces/NS/RESOURCE after /api/v1 or /apis/GROUP/VERSION.
func Kind(req *http.Request) string {
	switch req.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return "write"
	default:
		return "other"
	}
	if req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1" {
		return "watch"
	}
	p := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(p) >= 2 && p[0] == "api":
		rest = p[2:]
	case len(p) >= 3 && p[0] == "apis":
		rest = p[3:]
	default:
		return "other"
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	if len(rest) == 1 {
		return "list"
	}
	return "get"
}

// Take returns the counts and bytes since the last Take and resets them.
func (c *Counter) Take() (map[string]int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts, bytes := c.counts, c.bytes
	c.counts, c.bytes = nil, 0
	if counts == nil {
		counts = map[string]int{}
	}
	return counts, bytes
}

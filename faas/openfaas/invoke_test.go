package openfaas

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/faas/openfaas/openfaastest"
	"github.com/glimpse-dev/glimpse/preview"
)

// TestEndpoint: the invoke endpoint is the gateway's /function/NAME
// (with .NAMESPACE when the client has one), a request sent there reaches
// the function, and a function the client saw scaled to zero is
// FailedPrecondition until a scale brings it back. On the Community
// Edition the function never reads as asleep, since zero is clamped.
func TestEndpoint(t *testing.T) {
	t.Parallel()
	for _, e := range emulations {
		if !e.o.Gateway {
			continue // only a gateway serves /function/
		}
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			s := emulate(t, e.o)
			c := clientFor(t, s, &Options{ScaleSettle: e.settle})
			if err := c.Apply(ctx, testFn("hello-pr-7")); err != nil {
				t.Fatal(err)
			}
			ep, err := c.Endpoint("hello-pr-7")
			host := strings.TrimPrefix(s.URL, "http://")
			if err != nil || ep != host+"/function/hello-pr-7" {
				t.Fatalf("Endpoint = %q, %v; want %s/function/hello-pr-7", ep, err, host)
			}
			addr, prefix := preview.SplitEndpoint(ep)
			resp, err := http.Get("http://" + addr + prefix + "/graphql")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok\n" {
				t.Fatalf("GET through the endpoint = %d %q", resp.StatusCode, b)
			}
			got, err := c.Scale(ctx, "hello-pr-7", 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Endpoint("hello-pr-7")
			switch {
			case e.clamps && (got != 1 || err != nil):
				t.Fatalf("CE: Scale(0) = %d and then Endpoint: %v; want 1 replica kept and the endpoint served", got, err)
			case !e.clamps && (got != 0 || preview.CodeOf(err) != preview.FailedPrecondition):
				t.Fatalf("Pro: Scale(0) = %d and then Endpoint: %v; want 0 and FailedPrecondition", got, err)
			}
			if _, err := c.Scale(ctx, "hello-pr-7", 1); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Endpoint("hello-pr-7"); err != nil {
				t.Fatalf("after Scale(1): %v", err)
			}
		})
	}
	t.Run("namespace and https", func(t *testing.T) {
		c, err := New("http://gw.example/base", &Options{Namespace: "team-a"})
		if err != nil {
			t.Fatal(err)
		}
		if ep, err := c.Endpoint("fn"); err != nil || ep != "gw.example:80/base/function/fn.team-a" {
			t.Fatalf("Endpoint = %q, %v", ep, err)
		}
		c, _ = New("https://gw.example:8443", nil)
		if _, err := c.Endpoint("fn"); preview.CodeOf(err) != preview.Unimplemented || strings.Contains(err.Error(), "*") {
			t.Fatalf("https Endpoint: %v, want Unimplemented", err)
		}
	})
}

// TestEndpointSeesListedZero: a List that reports a function at zero (the
// idle controller's, say) makes Endpoint answer FailedPrecondition without
// a request of its own, and a removed function is forgotten.
func TestEndpointSeesListedZero(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	s := emulate(t, openfaastest.Options{Provider: openfaastest.FaasNetes, Gateway: true, Pro: true})
	other := clientFor(t, s, nil)
	c := clientFor(t, s, nil)
	if err := c.Apply(ctx, testFn("hello-pr-8")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Scale(ctx, "hello-pr-8", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Endpoint("hello-pr-8"); err != nil {
		t.Fatalf("before any read: %v (the client cannot know yet)", err)
	}
	if _, err := c.List(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Endpoint("hello-pr-8"); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("after List saw zero: %v, want FailedPrecondition", err)
	}
	if err := c.Remove(ctx, "hello-pr-8"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Endpoint("hello-pr-8"); err != nil {
		t.Fatalf("after Remove: %v, want the endpoint (the gateway answers for unknown names)", err)
	}
}

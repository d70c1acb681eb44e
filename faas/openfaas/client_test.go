package openfaas

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// The client against a real gateway (localfaas's) is tested in package
// localfaas: TestConformanceOverGateway, TestOpenFaaSClientEndToEnd.

func TestOpen(t *testing.T) {
	t.Parallel()
	env := map[string]string{"OPENFAAS_PASSWORD": "pw", "HOME": t.TempDir()}
	o := &preview.OpenOptions{Getenv: func(k string) string { return env[k] }}
	for _, c := range []struct {
		url              string
		base, ns, user   string
		wantErr          bool
		envUser, envPass string
	}{
		{url: "openfaas://127.0.0.1:8080", base: "http://127.0.0.1:8080", user: "admin"},
		{url: "openfaas://gw.example.com:443?tls=true&namespace=previews", base: "https://gw.example.com:443", ns: "previews", user: "admin"},
		{url: "openfaas://gw:8080?tls=false", base: "http://gw:8080", user: "admin"},
		{url: "openfaas://gw:8080/", base: "http://gw:8080", user: "admin"},
		{url: "openfaas://gw:8080?timeout=5s", base: "http://gw:8080", user: "admin"},
		{url: "openfaas://gw:8080?timeout=soon", wantErr: true},
		{url: "openfaas://gw:8080?timeout=-1s", wantErr: true},
		{url: "openfaas://gw:8080?namespace=Bad_NS", wantErr: true},
		{url: "openfaas://gw:8080?region=eu", wantErr: true},
		{url: "openfaas://gw:8080?tls=maybe", wantErr: true},
		{url: "openfaas://admin:pw@gw:8080", wantErr: true},
		{url: "openfaas://", wantErr: true},
		{url: "openfaas://gw:8080/some/path", wantErr: true},
	} {
		rt, err := preview.Runtimes.Open(context.Background(), c.url, o)
		if c.wantErr {
			if preview.CodeOf(err) != preview.InvalidArgument {
				t.Errorf("Open(%q) = %v; want InvalidArgument", c.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", c.url, err)
			continue
		}
		cl := rt.(*Client)
		if cl.base.String() != c.base || cl.namespace != c.ns || cl.user != c.user || cl.password != "pw" {
			t.Errorf("Open(%q) = base %s ns %q user %q pw %q", c.url, cl.base, cl.namespace, cl.user, cl.password)
		}
	}
	rt, err := preview.Runtimes.Open(context.Background(), "openfaas://gw:8080?timeout=90s", o)
	if err != nil || rt.(*Client).timeout != 90*time.Second {
		t.Fatalf("timeout=90s not used: %v", err)
	}
	env["OPENFAAS_USERNAME"] = "ops"
	rt, err = preview.Runtimes.Open(context.Background(), "openfaas://gw:8080", o)
	if err != nil || rt.(*Client).user != "ops" {
		t.Fatalf("OPENFAAS_USERNAME not used: %v", err)
	}
}

func TestCodeFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		body   string
		want   preview.Code
	}{
		{404, "not found", preview.NotFound},
		{409, "", preview.AlreadyExists},
		// faas-netes: the Deployment create fails.
		{500, `unable create Deployment: deployments.apps "hello-pr-1" already exists`, preview.AlreadyExists},
		// faasd.
		{400, "function hello-pr-1 already exists", preview.AlreadyExists},
		{400, "replicas cannot be set to 0 in OpenFaaS CE", preview.InvalidArgument},
		{401, "", preview.PermissionDenied},
		{403, "", preview.PermissionDenied},
		{412, "", preview.FailedPrecondition},
		{429, "", preview.ResourceExhausted},
		{502, "", preview.Unavailable},
		{503, "", preview.Unavailable},
		{504, "", preview.DeadlineExceeded},
		{500, "boom", preview.Internal},
		// The Community Editions' function limits.
		{400, "unable to create function, maximum: 15, visit https://openfaas.com/pricing to upgrade to OpenFaaS Standard", preview.FailedPrecondition},
		{400, "the OpenFaaS CE EULA allows 15/16 function(s), upgrade to faasd Pro to continue", preview.FailedPrecondition},
		{400, "namespace must be: openfaas-fn", preview.InvalidArgument},
		{418, "", preview.Unknown},
	} {
		if got := codeFor(c.status, c.body); got != c.want {
			t.Errorf("codeFor(%d, %q) = %v; want %v", c.status, c.body, got, c.want)
		}
	}
}

func TestSpecHash(t *testing.T) {
	t.Parallel()
	a := preview.Function{Name: "f", Image: "i", Env: map[string]string{"A": "1", "B": "2"}, Labels: preview.Labels{"x": "y"}}
	b := preview.Function{Name: "f", Image: "i", Env: map[string]string{"B": "2", "A": "1"}, Labels: preview.Labels{"x": "y"}}
	if specHash(a) != specHash(b) {
		t.Fatal("hash depends on map order")
	}
	for _, mod := range []func(*preview.Function){
		func(f *preview.Function) { f.Image = "j" },
		func(f *preview.Function) { f.Env = map[string]string{"A": "1"} },
		func(f *preview.Function) { f.Labels = nil; f.Annotations = map[string]string{"x": "y"} },
		func(f *preview.Function) { f.Env = map[string]string{"A": "1B", "": "2"} },
		func(f *preview.Function) { f.Resources.Limits.Memory = "128Mi" },
	} {
		c := a
		mod(&c)
		if specHash(c) == specHash(a) {
			t.Errorf("hash unchanged by a change: %+v", c)
		}
	}
}

// A gateway nobody listens on: nothing happened, so the error is Unavailable
// even for a write (retries off here; see TestRetries).
func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New("http://"+addr, &Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.List(ctx, nil); preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("List: %v", err)
	}
	if err := c.Remove(ctx, "f"); preview.CodeOf(err) != preview.Unavailable {
		t.Fatalf("Remove: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cctx, "f"); preview.CodeOf(err) != preview.Canceled {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if err := c.Apply(ctx, preview.Function{Name: "Bad", Image: "x"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Apply with a bad name: %v", err)
	}
	if _, err := c.Scale(ctx, "f", -1); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Scale(-1): %v", err)
	}
}

package kubeapi_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want preview.Code
	}{
		{"not found", bg, apierrors.NewNotFound(gr, "x"), preview.NotFound},
		{"already exists", bg, apierrors.NewAlreadyExists(gr, "x"), preview.AlreadyExists},
		{"conflict", bg, apierrors.NewConflict(gr, "x", errors.New("the object has been modified")), preview.Aborted},
		{"invalid", bg, apierrors.NewInvalid(schema.GroupKind{Kind: "Ingress"}, "x", nil), preview.InvalidArgument},
		{"bad request", bg, apierrors.NewBadRequest("bad selector"), preview.InvalidArgument},
		{"forbidden", bg, apierrors.NewForbidden(gr, "x", errors.New("no RBAC")), preview.PermissionDenied},
		{"unauthorized", bg, apierrors.NewUnauthorized("token"), preview.PermissionDenied},
		{"throttled", bg, apierrors.NewTooManyRequests("slow down", 1), preview.ResourceExhausted},
		{"unavailable", bg, apierrors.NewServiceUnavailable("etcd"), preview.Unavailable},
		{"server timeout", bg, apierrors.NewServerTimeout(gr, "get", 1), preview.Unavailable},
		{"connection refused", bg, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, preview.Unavailable},
		{"cancelled context", cancelled, errors.New(`Get "https://x": context canceled`), preview.Canceled},
		{"internal", bg, apierrors.NewInternalError(errors.New("boom")), preview.Internal},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := kubeapi.Classify(c.ctx, c.err, "ingress ns/x")
			if got := preview.CodeOf(err); got != c.want {
				t.Fatalf("code %v (%v), want %v", got, err, c.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "ingress ns/x: ") || strings.Contains(msg, "\n") {
				t.Fatalf("message %q: want one line starting with what", msg)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("%v does not wrap the client's error: errors.As cannot reach it", err)
			}
		})
	}
	if kubeapi.Classify(bg, nil, "x") != nil {
		t.Fatal("Classify(nil) != nil")
	}
}

func TestSelectorAndLabels(t *testing.T) {
	s, err := kubeapi.Selector(preview.Selector("team", "hello", 4))
	if err != nil {
		t.Fatal(err)
	}
	if want := "glimpse.dev/app=hello,glimpse.dev/managed-by=glimpse,glimpse.dev/owner=team,glimpse.dev/pr=4"; s != want {
		t.Fatalf("Selector = %q, want %q", s, want)
	}
	if s, err := kubeapi.Selector(nil); err != nil || s != "glimpse.dev/managed-by=glimpse" {
		t.Fatalf("Selector(nil) = %q, %v; want only Glimpse's objects", s, err)
	}
	if _, err := kubeapi.Selector(preview.Labels{"k": "a b"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Selector with an invalid value: %v, want InvalidArgument", err)
	}
	l, err := kubeapi.Labels(preview.Labels{preview.LabelApp: "hello"})
	if err != nil || l[preview.LabelManagedBy] != "glimpse" || l[preview.LabelVersion] != preview.LabelsVersionValue || l[preview.LabelApp] != "hello" {
		t.Fatalf("Labels = %v, %v; want the ownership markers added", l, err)
	}
	if !kubeapi.Owned(l) || kubeapi.Owned(map[string]string{"app": "hello"}) {
		t.Fatal("Owned does not tell Glimpse's labels from others")
	}
	if _, err := kubeapi.Labels(preview.Labels{"bad key!": "x"}); preview.CodeOf(err) != preview.InvalidArgument {
		t.Fatalf("Labels with an invalid key: %v, want InvalidArgument", err)
	}
}

func TestConfig(t *testing.T) {
	o := &preview.OpenOptions{Getenv: func(k string) string {
		if k == kubeapi.EnvKubeconfig {
			return "/nonexistent/kubeconfig"
		}
		return ""
	}}
	if _, err := kubeapi.Config(o); preview.CodeOf(err) != preview.FailedPrecondition {
		t.Fatalf("Config with a missing kubeconfig: %v, want FailedPrecondition", err)
	}
}

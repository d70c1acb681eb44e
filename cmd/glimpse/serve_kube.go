package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/internal/kubeendpoints"
	"github.com/glimpse-dev/glimpse/preview"
)

// kubeRuntime is the kubefaas runtime as the daemon's edge needs it: the
// runtime itself (deploy, scale, status, for the idle controller and the
// wake) plus where its functions answer, from the cluster's
// EndpointSlices (kubeendpoints: the edge forwards to a ready pod, and a
// wake ends on the EndpointSlice event that lists it, without polling).
type kubeRuntime struct {
	*kubefaas.Runtime
	ep *kubeendpoints.Watcher
}

// Endpoint implements preview.InvokeEndpointer (see kubeendpoints.Watcher.Endpoint).
func (k kubeRuntime) Endpoint(name string) (string, error) { return k.ep.Endpoint(name) }

// WaitEndpoint implements preview.EndpointWaiter (see kubeendpoints.Watcher.WaitEndpoint).
func (k kubeRuntime) WaitEndpoint(ctx context.Context, name string) (string, error) {
	return k.ep.WaitEndpoint(ctx, name)
}

// withEndpoints returns rt, opened from rawURL, ready for the edge: a
// kubefaas runtime gets its endpoint watcher (started here, stopped when
// ctx ends); any other runtime is returned as it is.
func withEndpoints(ctx context.Context, rawURL string, rt preview.FunctionRuntime, popts *preview.OpenOptions, log *slog.Logger) (preview.FunctionRuntime, error) {
	kr, ok := rt.(*kubefaas.Runtime)
	if !ok {
		return rt, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "runtime %q: %v", rawURL, err)
	}
	client, err := kubeClient(popts, log)
	if err != nil {
		return nil, err
	}
	w, err := kubeendpoints.Start(ctx, client, u.Host)
	if err != nil {
		return nil, preview.WithCode(preview.CodeOf(err), fmt.Errorf("runtime: %w", err))
	}
	context.AfterFunc(ctx, w.Stop)
	return kubeRuntime{Runtime: kr, ep: w}, nil
}

// kubeClient opens the daemon's own Kubernetes client (for the endpoint
// watcher and the leader election) from the same credentials the
// providers use (kubeapi.Config: KUBECONFIG, else the in-cluster service
// account, else ~/.kube/config), and logs which it used.
func kubeClient(popts *preview.OpenOptions, log *slog.Logger) (kubernetes.Interface, error) {
	rc, source, err := kubeapi.ConfigSource(popts)
	if err != nil {
		return nil, err
	}
	log.Info("kubernetes credentials", "from", source, "server", rc.Host)
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return client, nil
}

// usesKubernetes reports whether cfg composes a Kubernetes provider: a
// kubefaas:// runtime or a k8s-*:// route source.
func usesKubernetes(cfg config.Serve) bool {
	return strings.HasPrefix(cfg.Runtime, kubefaas.Scheme+"://") || strings.HasPrefix(cfg.Routes, "k8s-")
}

// logClientGo sends client-go's own log lines (klog: a watch that failed
// and is retried, a throttled request) through the daemon's logger, as
// structured lines with component=client-go, instead of klog's format
// on stderr.
func logClientGo(log *slog.Logger) {
	klog.SetSlogLogger(log.With("component", "client-go"))
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/faas/kubefaas"
	"github.com/glimpse-dev/glimpse/faas/kubefaas/kubeendpoints"
	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// withEndpoints returns rt ready for the edge: a kubefaas runtime gets
// its endpoint watcher (kubeendpoints.ForEdge: the edge forwards to a
// ready pod, and a wake ends on the EndpointSlice event that lists it,
// without polling; started here, stopped when ctx ends); any other
// runtime is returned as it is.
func withEndpoints(ctx context.Context, rt preview.FunctionRuntime, popts *preview.OpenOptions, log *slog.Logger) (preview.FunctionRuntime, error) {
	kr, ok := rt.(*kubefaas.Runtime)
	if !ok {
		return rt, nil
	}
	if _, err := kubeConfig(popts, log); err != nil { // the runtime opened with the same: only logs which
		return nil, err
	}
	er, err := kubeendpoints.ForEdge(ctx, kr)
	if err != nil {
		return nil, preview.WithCode(preview.CodeOf(err), fmt.Errorf("runtime: %w", err))
	}
	return er, nil
}

// kubeClient opens the daemon's own Kubernetes client (for the endpoint
// watcher and the leader election) from the same credentials the
// providers use (kubeapi.Config: KUBECONFIG, else the in-cluster service
// account, else ~/.kube/config), and logs which it used.
func kubeClient(popts *preview.OpenOptions, log *slog.Logger) (kubernetes.Interface, error) {
	rc, err := kubeConfig(popts, log)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "kubernetes client: %v", err)
	}
	return client, nil
}

// kubeConfig returns the providers' Kubernetes client configuration
// (kubeapi.ConfigSource) and logs where it came from.
func kubeConfig(popts *preview.OpenOptions, log *slog.Logger) (*rest.Config, error) {
	rc, source, err := kubeapi.ConfigSource(popts)
	if err != nil {
		return nil, err
	}
	log.Info("kubernetes credentials", "from", source, "server", rc.Host)
	return rc, nil
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

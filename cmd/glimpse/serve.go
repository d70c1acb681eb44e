package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/cdn/fsassets"
	"github.com/glimpse-dev/glimpse/faas/localfaas"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/embedregistry"
)

func newServe(g *globalFlags) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:8080]",
		Short: "Run the local stack: OCI registry, function runtime, OpenFaaS gateway API and edge",
		Long: "serve runs the embedded local stack on one address: preview hosts such as\n" +
			"http://pr-42.hello.localhost:8080/ go to the edge; plain localhost serves the OCI\n" +
			"registry (/v2/), the OpenFaaS gateway API (/system/, /function/; user admin, password\n" +
			"in $GLIMPSE_HOME/gateway-password) and /healthz. State lives in GLIMPSE_HOME.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), home, listen)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	return c
}

// localStack is the daemon: every embedded provider behind one handler.
type localStack struct {
	registry *embedregistry.Registry
	runtime  *localfaas.Runtime
	edge     *edge.Edge
	api      http.Handler
	apiHosts map[string]bool
}

func runServe(ctx context.Context, home, listen string) error {
	if info, err := findServe(ctx, home); err == nil {
		return preview.Errorf(preview.FailedPrecondition, "a local stack already runs for GLIMPSE_HOME=%s at %s (pid %d)", home, info.Addr, info.PID)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "--listen %q: want HOST:PORT such as 127.0.0.1:8080", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return preview.Errorf(preview.Unavailable, "--listen %s: %v", listen, err)
	}
	defer ln.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	st, err := openLocalStack(home, log)
	if err != nil {
		return err
	}
	defer st.close()
	st.apiHosts[preview.NormalizeHost(host)] = true

	srv := &http.Server{Handler: st, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	addr := ln.Addr().String()
	if err := writeServeInfo(home, serveInfo{Addr: addr, PID: os.Getpid()}); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(home, serveFile))
	_, port, _ := net.SplitHostPort(addr)
	log.Info("glimpse serve ready", "addr", "http://"+addr, "previews", "http://pr-N.APP.localhost:"+port+"/", "home", home)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func openLocalStack(home string, log *slog.Logger) (*localStack, error) {
	password, err := localfaas.LoadOrCreatePassword(home)
	if err != nil {
		return nil, err
	}
	password = strings.TrimSpace(password)
	reg, err := embedregistry.New(filepath.Join(home, "registry"), nil)
	if err != nil {
		return nil, fmt.Errorf("embedded registry: %w", err)
	}
	rt, err := localfaas.New(home, &localfaas.Options{Logger: log})
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	assets, err := fsassets.New(filepath.Join(home, "assets"))
	if err != nil {
		rt.Close()
		reg.Close()
		return nil, fmt.Errorf("asset store: %w", err)
	}
	e, err := edge.New(edge.Options{Assets: assets, Upstreams: rt, StateFile: filepath.Join(home, "routes.json"), Logger: log})
	if err != nil {
		rt.Close()
		reg.Close()
		return nil, fmt.Errorf("edge: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("/v2/", reg.Handler())
	gw := rt.GatewayHandler(password)
	mux.Handle("/system/", gw)
	mux.Handle("/function/", gw)
	mux.Handle("/glimpse/v1/", basicAuth(password, e.AdminHandler()))
	return &localStack{
		registry: reg, runtime: rt, edge: e, api: mux,
		apiHosts: map[string]bool{"localhost": true, "127.0.0.1": true, "[::1]": true, "::1": true, "": true},
	}, nil
}

// ServeHTTP sends requests for plain localhost to the daemon API and every
// other host to the edge (which answers 404 for hosts without a route).
func (s *localStack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.apiHosts[preview.NormalizeHost(r.Host)] {
		s.api.ServeHTTP(w, r)
		return
	}
	s.edge.ServeHTTP(w, r)
}

func (s *localStack) close() {
	s.runtime.Close()
	s.registry.Close()
}

func basicAuth(password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte("admin")) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="glimpse"`)
			http.Error(w, "unauthorized: user admin, password in $GLIMPSE_HOME/gateway-password", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

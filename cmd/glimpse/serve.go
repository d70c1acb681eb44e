package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/ingress/edge"
	"github.com/glimpse-dev/glimpse/preview"
)

func newServe(g *globalFlags) *cobra.Command {
	var configFile string
	flags := &serveFlags{}
	gh := &githubFlags{}
	c := &cobra.Command{
		Use:   "serve [--config serve.yaml] [--listen 127.0.0.1:8080]",
		Short: "Run the daemon: edge, idle controller and route API, over the embedded stack or production providers",
		Long: "serve runs the daemon on one address: preview hosts such as\n" +
			"http://pr-42.hello.localhost:8080/ go to the edge; plain localhost serves the route API\n" +
			"(/glimpse/v1/), /healthz and /metrics and, on the embedded stack, the OCI registry (/v2/)\n" +
			"and the OpenFaaS gateway API (/system/, /function/; user admin, password in\n" +
			"$GLIMPSE_HOME/gateway-password). State lives in GLIMPSE_HOME.\n\n" +
			"With no configuration every provider is embedded. A serve config file (--config, or\n" +
			"GLIMPSE_SERVE_CONFIG) names production providers instead, such as runtime:\n" +
			"openfaas://gateway:8080 and assets: s3://bucket?...; each of its keys also has an\n" +
			"environment variable (GLIMPSE_SERVE_<FLAG>) and a flag, flags winning over the\n" +
			"environment over the file. docs/glimpse-serve-yaml.md lists the keys.\n\n" +
			"Stop it with Ctrl-C or a SIGTERM to its own process (a kill of `go run`'s PID leaves\n" +
			"the server running: build the binary, or kill the child).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			cfg, err := flags.resolve(configFile, os.Getenv)
			if err != nil {
				return err
			}
			if gh.repo != "" && strings.Count(gh.repo, "/") != 1 {
				return preview.Errorf(preview.InvalidArgument, "--github-repo %q: want owner/name", gh.repo)
			}
			return runServe(cmd.Context(), home, cfg, gh)
		},
	}
	c.Flags().StringVar(&configFile, "config", "", "serve config file (YAML; default $GLIMPSE_SERVE_CONFIG; keys in docs/glimpse-serve-yaml.md)")
	flags.register(c.Flags())
	gh.register(c.Flags())
	return c
}

func runServe(ctx context.Context, home string, cfg config.Serve, gh *githubFlags) error {
	if info, err := findServe(ctx, home); err == nil {
		return preview.Errorf(preview.FailedPrecondition, "a daemon already runs for GLIMPSE_HOME=%s at %s (pid %d)", home, info.Addr, info.PID)
	}
	listen := cfg.Listen
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "listen %q: want HOST:PORT such as 127.0.0.1:8080", listen)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logClientGo(log)
	opts, err := daemonOptions(ctx, home, cfg, log)
	if err != nil {
		return err
	}
	opts.Logger = log
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return preview.Errorf(preview.Unavailable, "--listen %s: %v", listen, err)
	}
	defer ln.Close()
	st, err := daemon.Open(home, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	st.AddAPIHost(host)

	srv := st.Server() // header, idle and body limits (see daemon.Limits)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	addr := ln.Addr().String()
	if err := writeServeInfo(home, serveInfo{Addr: addr, PID: os.Getpid(), Runtime: cfg.Runtime, Assets: cfg.Assets, NoRegistry: cfg.Registry == "none"}); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(home, serveFile))
	var reconcile func(context.Context) // the GitHub loop's, on the leader
	if gh != nil && gh.repo != "" {
		stop, rec, err := gh.start(ctx, home, srv, log, st)
		if err != nil {
			return err
		}
		defer stop()
		reconcile = rec
	}
	_, port, _ := net.SplitHostPort(addr)
	log.Info("glimpse serve ready", "addr", "http://"+addr, "previews", "http://pr-N.APP.localhost:"+port+"/", "home", home,
		"runtime", orEmbedded(cfg.Runtime), "assets", orEmbedded(cfg.Assets))

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(st.Listener(ln)) }()
	idleCtx, stopIdle := context.WithCancel(ctx)
	defer stopIdle()
	// The idle controller, the scheduled gc and the GitHub loop's
	// reconcile run on the leader only (serve_leader.go, serve_gc.go).
	go func() {
		if err := runLeaderOnly(idleCtx, st, cfg, &preview.OpenOptions{Home: home, Getenv: os.Getenv}, log, leaderWork(home, st, cfg, reconcile, log)); err != nil {
			errc <- err
		}
	}()
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

// daemonOptions opens the providers cfg names and returns the daemon's
// options; keys left unset keep the embedded parts and defaults.
func daemonOptions(ctx context.Context, home string, cfg config.Serve, log *slog.Logger) (*daemon.Options, error) {
	opts := &daemon.Options{
		IdleAfter: cfg.IdleAfter, MaxAwake: cfg.MaxAwake, WakeTimeout: cfg.WakeTimeout, WaitingPage: cfg.WaitingPage,
		Limits: daemon.Limits{
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout, BodyReadTimeout: cfg.BodyReadTimeout,
			MaxFunctionBodyBytes: cfg.MaxBodyBytes, MaxConns: cfg.MaxConns,
		},
	}
	popts := &preview.OpenOptions{Home: home, Getenv: os.Getenv}
	var err error
	if cfg.Runtime != "" {
		if opts.Providers.Runtime, err = preview.Runtimes.Open(ctx, cfg.Runtime, popts); err != nil {
			return nil, preview.WithCode(preview.CodeOf(err), fmt.Errorf("runtime: %w", err))
		}
		if opts.Providers.Runtime, err = withEndpoints(ctx, opts.Providers.Runtime, popts, log); err != nil {
			return nil, err
		}
	}
	if cfg.Assets != "" {
		if opts.Providers.Assets, err = preview.AssetStores.Open(ctx, cfg.Assets, popts); err != nil {
			return nil, preview.WithCode(preview.CodeOf(err), fmt.Errorf("assets: %w", err))
		}
	}
	if strings.Contains(cfg.Routes, "://") {
		if opts.Providers.Routes, err = routeSource(ctx, cfg.Routes, popts); err != nil {
			return nil, err
		}
	} else if cfg.Routes != "" {
		path, err := filepath.Abs(cfg.Routes)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "routes: %v", err)
		}
		if opts.Providers.Routes, err = edge.OpenJournalStore(path); err != nil {
			return nil, fmt.Errorf("routes: %w", err)
		}
	}
	opts.Providers.NoRegistry = cfg.Registry == "none"
	return opts, nil
}

// routeSource opens the router at url and returns it as the edge's route
// source (edge.SourceStore), so the daemon's edge serves the routes that
// router stores, whoever wrote them: k8s-ingress://NAMESPACE for a daemon
// in the cluster. A router the edge cannot watch is InvalidArgument.
func routeSource(ctx context.Context, url string, popts *preview.OpenOptions) (edge.RouteStore, error) {
	r, err := preview.Routers.Open(ctx, url, popts)
	if err != nil {
		return nil, preview.WithCode(preview.CodeOf(err), fmt.Errorf("routes: %w", err))
	}
	src, ok := r.(edge.RouteSource)
	if !ok {
		return nil, preview.Errorf(preview.InvalidArgument, "routes: %s is not a route source the edge can watch (k8s-ingress://NAMESPACE is)", url)
	}
	return edge.SourceStore(src), nil
}

func orEmbedded(url string) string {
	if url == "" {
		return "embedded"
	}
	return url
}

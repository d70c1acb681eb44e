package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/localstack"
	"github.com/glimpse-dev/glimpse/preview"
)

func newServe(g *globalFlags) *cobra.Command {
	var listen string
	opts := &localstack.Options{}
	gh := &githubFlags{}
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
			if opts.IdleAfter < 0 || opts.WakeTimeout < 0 || opts.MaxAwake < 0 {
				return preview.Errorf(preview.InvalidArgument, "--idle-after, --wake-timeout and --max-awake must not be negative")
			}
			l := &opts.Limits
			if l.ReadHeaderTimeout < 0 || l.IdleTimeout < 0 || l.BodyReadTimeout < 0 {
				return preview.Errorf(preview.InvalidArgument, "--read-header-timeout, --idle-timeout and --body-read-timeout must not be negative")
			}
			if gh.repo != "" && strings.Count(gh.repo, "/") != 1 {
				return preview.Errorf(preview.InvalidArgument, "--github-repo %q: want owner/name", gh.repo)
			}
			return runServe(cmd.Context(), home, listen, opts, gh)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	c.Flags().DurationVar(&opts.IdleAfter, "idle-after", 0, "scale a preview to zero after this long without requests, unless its glimpse.yaml sets idle.after (default 15m)")
	c.Flags().IntVar(&opts.MaxAwake, "max-awake", 0, "at most this many previews awake at once; the least recently used sleep first (0: no cap)")
	c.Flags().DurationVar(&opts.WakeTimeout, "wake-timeout", 0, "how long a request waits for a sleeping preview to wake before a 504 (default 1m)")
	c.Flags().BoolVar(&opts.WaitingPage, "waiting-page", false, "show browsers a self-reloading page while a preview wakes instead of holding the request")
	c.Flags().DurationVar(&opts.Limits.ReadHeaderTimeout, "read-header-timeout", 0, "close a connection whose request header takes longer than this to arrive (default 10s)")
	c.Flags().DurationVar(&opts.Limits.IdleTimeout, "idle-timeout", 0, "close a keep-alive connection idle this long between requests (default 2m)")
	c.Flags().DurationVar(&opts.Limits.BodyReadTimeout, "body-read-timeout", 0, "answer 408 when a request body stops arriving for this long (per read, not per body; default 1m)")
	c.Flags().Int64Var(&opts.Limits.MaxFunctionBodyBytes, "max-body-bytes", 0, "largest request body sent to a function, through a preview host or /function/; -1: no limit (default 104857600, 100 MiB)")
	c.Flags().IntVar(&opts.Limits.MaxConns, "max-conns", 0, "most client connections open at once; more wait in the listen backlog; -1: no cap (default 4096)")
	gh.register(c.Flags())
	return c
}

func runServe(ctx context.Context, home, listen string, opts *localstack.Options, gh *githubFlags) error {
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

	opts.Logger = log
	st, err := localstack.Open(home, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	st.AddAPIHost(host)

	srv := st.Server() // header, idle and body limits (see localstack.Limits)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	addr := ln.Addr().String()
	if err := writeServeInfo(home, serveInfo{Addr: addr, PID: os.Getpid()}); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(home, serveFile))
	if gh != nil && gh.repo != "" {
		stop, err := gh.start(ctx, home, srv, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	_, port, _ := net.SplitHostPort(addr)
	log.Info("glimpse serve ready", "addr", "http://"+addr, "previews", "http://pr-N.APP.localhost:"+port+"/", "home", home)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(st.Listener(ln)) }()
	idleCtx, stopIdle := context.WithCancel(ctx)
	defer stopIdle()
	go st.RunIdle(idleCtx)
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

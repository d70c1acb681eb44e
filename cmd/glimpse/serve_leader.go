package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/internal/leader"
	"github.com/glimpse-dev/glimpse/preview"
)

// DefaultLeaseName is the Lease the daemon contends for when it runs in a
// cluster and the serve config names none (deploy/rbac.yaml lets the
// daemon's service account get and update only this one).
const DefaultLeaseName = "glimpse-leader"

// serviceAccountNamespace is where the kubelet mounts the namespace of the
// pod's service account.
var serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// leaderLease returns the Lease cfg.LeaderElection asks for, NAMESPACE and
// NAME, or "" and "" for no election (see config.Serve.LeaderElection:
// "off"; or, when unset, anything but a daemon in a cluster composing a
// Kubernetes provider). getenv and readFile are the process's, for tests.
func leaderLease(cfg config.Serve, getenv func(string) string, readFile func(string) ([]byte, error)) (namespace, name string) {
	switch cfg.LeaderElection {
	case "off":
		return "", ""
	case "":
		if getenv("KUBERNETES_SERVICE_HOST") == "" || !usesKubernetes(cfg) {
			return "", ""
		}
		b, err := readFile(serviceAccountNamespace)
		if err != nil || strings.TrimSpace(string(b)) == "" {
			return "", ""
		}
		return strings.TrimSpace(string(b)), DefaultLeaseName
	}
	ns, name, _ := strings.Cut(cfg.LeaderElection, "/")
	return ns, name
}

// runLeaderOnly runs work, the daemon's leader-only part (leaderWork:
// the idle controller and the scheduled gc; one replica scales previews
// and collects, however many serve the edge),
// until ctx ends: at once when cfg asks for no election, else only while
// this replica holds the Lease (internal/leader), again on every new
// term. It returns when ctx ends, or at once with an error the election
// cannot recover from (InvalidArgument, or a Lease that is not Glimpse's:
// FailedPrecondition), which then stops `glimpse serve`.
//
// Losing the Lease (not renewed within the renew deadline, say while the
// API server is unreachable) ends work's context and the replica
// campaigns again; the process keeps serving the edge. It does not exit:
// the edge does not depend on the Lease, and a restart would drop the
// requests in flight and those held while a function wakes, on every API
// server hiccup, for nothing: internal/leader already guarantees that
// work has stopped before another replica may take the Lease over.
// /healthz says whether this replica leads (daemon.LeaderStatus).
func runLeaderOnly(ctx context.Context, st *daemon.Stack, cfg config.Serve, popts *preview.OpenOptions, log *slog.Logger, work func(context.Context)) error {
	ns, name := leaderLease(cfg, os.Getenv, os.ReadFile)
	if name == "" {
		st.SetLeader(nil)
		log.Info("no leader election: this daemon runs the idle controller, the scheduled gc and the GitHub reconcile")
		work(ctx)
		return nil
	}
	client, err := kubeClient(popts, log)
	if err != nil {
		return preview.WithCode(preview.CodeOf(err), fmt.Errorf("leader election: %w", err))
	}
	lc := leader.Config{Client: client, Namespace: ns, Name: name, Logger: log}
	status := &daemon.LeaderStatus{Lease: ns + "/" + name}
	// The identity is picked here, not by leader.Run, so /healthz can
	// name it before the first term.
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	lc.Identity = host + "-" + hex.EncodeToString(b)
	status.Identity = lc.Identity
	st.SetLeader(status)
	log.Info("leader election: the idle controller, the scheduled gc and the GitHub reconcile run on the replica holding the lease", "lease", status.Lease, "identity", lc.Identity)
	return leader.Run(ctx, lc, func(lctx context.Context) {
		st.SetLeader(&daemon.LeaderStatus{Lease: status.Lease, Identity: status.Identity, Leading: true})
		defer st.SetLeader(status)
		work(lctx)
	})
}

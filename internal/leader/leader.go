// Package leader elects one of the daemon's replicas to run the work only
// one may run at a time (the idle controller and gc), over a
// coordination.k8s.io Lease with client-go's leaderelection: the leader
// renews the Lease every RetryPeriod; the others take it over once it has
// gone LeaseDuration without a renewal (a killed leader), or at their next
// try once the leader released it (a leader that stopped cleanly).
//
// What Run adds to client-go's elector: the leader's work has returned
// before the Lease is released, so two replicas' work never overlaps when
// a leader stops cleanly; a Lease Glimpse does not own is never taken
// over; and Run campaigns again after losing the Lease, until its context
// ends.
//
// It needs, in the Lease's namespace: create on leases, and get and
// update on the Lease itself (deploy/rbac.yaml).
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/glimpse-dev/glimpse/internal/kubeapi"
	"github.com/glimpse-dev/glimpse/preview"
)

// Defaults of Config's durations, those of kube-controller-manager.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config says which Lease to contend for and how.
type Config struct {
	// Client reaches the API server.
	Client kubernetes.Interface
	// Namespace and Name are the Lease's.
	Namespace, Name string
	// Identity names this candidate in the Lease (holderIdentity); it must
	// be unique among the candidates. Empty means the host name (a pod's
	// name) plus a random suffix.
	Identity string
	// LeaseDuration is how long the others wait after the last renewal
	// before taking over: the longest a killed leader leaves the work
	// undone. Whole seconds (the Lease stores seconds); zero means
	// DefaultLeaseDuration.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew, from
	// one RetryPeriod after its last renewal, before it gives up leading
	// (its work's context ends). LeaseDuration must exceed RenewDeadline
	// plus RetryPeriod: the rest is the time a leader cut off from the API
	// server has to stop its work before another replica may start it
	// (3s with the defaults). Zero means DefaultRenewDeadline.
	RenewDeadline time.Duration
	// RetryPeriod is how often the leader renews and the others try to
	// take over; zero means DefaultRetryPeriod.
	RetryPeriod time.Duration
	// Logger receives leadership changes; nil means slog.Default().
	Logger *slog.Logger
}

// Run contends for the Lease until ctx ends, then returns nil. While this
// candidate holds the Lease, onLead runs (once per term, in its own
// goroutine) with a context that ends when ctx ends or the Lease is lost
// (not renewed within RenewDeadline). When onLead returns, Run releases
// the Lease, so that another candidate takes over at its next try; if ctx
// is still live it then campaigns again. A killed candidate releases
// nothing: the others take over after LeaseDuration.
//
// An invalid cfg is InvalidArgument; a Lease of that name without
// Glimpse's managed-by label is FailedPrecondition and is left alone;
// both are returned at once. Errors talking to the API server are not
// returned: Run keeps trying every RetryPeriod, as the Lease is its only
// state. Run is safe to call from several goroutines with different
// identities (that is what a test of the election does).
func Run(ctx context.Context, cfg Config, onLead func(ctx context.Context)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := checkOwned(ctx, cfg); err != nil {
		return err
	}
	for ctx.Err() == nil {
		if err := term(ctx, cfg, onLead); err != nil {
			return err
		}
	}
	return nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Name == "" {
		return cfg, preview.Errorf(preview.InvalidArgument, "leader election needs a client, a namespace and a lease name")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	switch {
	case cfg.LeaseDuration < 0 || cfg.RenewDeadline < 0 || cfg.RetryPeriod < 0:
		return cfg, preview.Errorf(preview.InvalidArgument, "leader election durations must not be negative")
	case cfg.LeaseDuration%time.Second != 0:
		return cfg, preview.Errorf(preview.InvalidArgument, "lease duration %v: want whole seconds (a Lease stores seconds)", cfg.LeaseDuration)
	case cfg.RenewDeadline+cfg.RetryPeriod >= cfg.LeaseDuration:
		return cfg, preview.Errorf(preview.InvalidArgument, "renew deadline %v plus retry period %v: want less than the lease duration %v, so that a leader that cannot renew stops before another takes over", cfg.RenewDeadline, cfg.RetryPeriod, cfg.LeaseDuration)
	case float64(cfg.RenewDeadline) <= leaderelection.JitterFactor*float64(cfg.RetryPeriod):
		return cfg, preview.Errorf(preview.InvalidArgument, "renew deadline %v: want it longer than %v times the retry period %v", cfg.RenewDeadline, leaderelection.JitterFactor, cfg.RetryPeriod)
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		rand.Read(b)
		cfg.Identity = host + "-" + hex.EncodeToString(b)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// checkOwned refuses a Lease that exists without Glimpse's label.
func checkOwned(ctx context.Context, cfg Config) error {
	l, err := cfg.Client.CoordinationV1().Leases(cfg.Namespace).Get(ctx, cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		// Unreachable or refused now: the election retries; a lease it
		// cannot read it will not take either.
		return nil
	case !kubeapi.Owned(l.Labels):
		return kubeapi.NotOwned("lease " + cfg.Namespace + "/" + cfg.Name)
	}
	return nil
}

// term campaigns until this candidate leads, runs onLead for one term, and
// returns once onLead has returned and the Lease is released; or returns
// when ctx ends while campaigning.
func term(ctx context.Context, cfg Config, onLead func(context.Context)) error {
	labels, err := kubeapi.Labels(nil)
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		Labels:     labels,
	}
	// The elector's context is not ctx: while this candidate leads, it
	// ends only after onLead has returned, so the Lease outlives the work.
	elCtx, elCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer elCancel()
	var (
		mu      sync.Mutex
		leading bool // onLead started (or refused to, ctx having ended)
		over    bool // the elector returned: no onLead may start
		done    = make(chan struct{})
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !leading {
			elCancel() // still campaigning: stop
		}
	})
	defer stop()
	log := cfg.Logger.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Name:          cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				if over || leading {
					mu.Unlock()
					return
				}
				leading = true
				mu.Unlock()
				defer close(done)
				defer elCancel() // the work is over: stop renewing
				if ctx.Err() != nil {
					return
				}
				work, cancel := context.WithCancel(lctx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				log.Info("leading")
				onLead(work)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "leader election: %v", err)
	}
	le.Run(elCtx)
	mu.Lock()
	over = true
	started := leading
	mu.Unlock()
	if started {
		<-done
	}
	// Also when onLead never started: the elector may have taken the
	// Lease just as ctx ended.
	if release(lock, cfg) || started {
		log.Info("stopped leading")
	}
	return nil
}

// release gives the Lease up if this candidate still holds it, so that
// another takes over at its next try instead of after LeaseDuration, and
// reports whether it did. The update carries the resourceVersion it read:
// a Lease someone else took meanwhile is left as it is.
func release(lock *resourcelock.LeaseLock, cfg Config) bool {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != cfg.Identity {
		return false
	}
	now := metav1.Now()
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
		LeaderTransitions:    rec.LeaderTransitions,
	})
	if err != nil {
		cfg.Logger.Warn("releasing the lease", "lease", cfg.Namespace+"/"+cfg.Name, "err", kubeapi.Classify(ctx, err, "lease "+cfg.Namespace+"/"+cfg.Name))
		return false
	}
	return true
}

package preview

import (
	"fmt"
	"sync"
	"time"
)

// Preview is one preview environment as Glimpse reports it.
type Preview struct {
	App      string `json:"app"`
	PR       int    `json:"pr"`
	Commit   string `json:"commit"`
	URL      string `json:"url"`
	Host     string `json:"host"`
	Function string `json:"function,omitempty"`
	// Image is the deployed image by digest.
	Image string `json:"image,omitempty"`
	// AssetPrefix names the asset manifest the route serves.
	AssetPrefix string `json:"assetPrefix,omitempty"`
	// Status is one of the Status constants.
	Status   Status `json:"status"`
	Replicas int    `json:"replicas"`
	// LastError is the function's last failed start or crash, when the
	// runtime reports one (FunctionStatus.LastError).
	LastError string `json:"lastError,omitempty"`
	// LastRequest is the last activity the edge saw; nil when unknown.
	LastRequest *time.Time `json:"lastRequest,omitempty"`
	// Idle is the idle timeout in force and its source; nil when unknown
	// (see List and DefaultIdle).
	Idle *IdleTimeout `json:"idle,omitempty"`
	// TTL is the glimpse.yaml ttl its last Up routed with ("7d"); empty
	// when none. DeployedAt is when that Up switched the route; nil when
	// unknown (a route of an older Glimpse). See Lifetime.
	TTL        string     `json:"ttl,omitempty"`
	DeployedAt *time.Time `json:"deployedAt,omitempty"`
}

// Status summarises a preview's state.
type Status string

// Preview states.
const (
	// StatusReady: routed, and the function (if any) has replicas.
	StatusReady Status = "ready"
	// StatusSleeping: routed, function scaled to zero.
	StatusSleeping Status = "sleeping"
	// StatusPartial: some resources exist but not all (an interrupted Up
	// or Down); Up or Down repairs it.
	StatusPartial Status = "partial"
	// StatusFailed: routed, but the function has no ready replica and the
	// runtime says its last start failed or its process crashed
	// (FunctionStatus.LastError), whether it is restarting or scaled to
	// zero: a wake would not help.
	StatusFailed Status = "failed"
)

// Step names used in Events.
const (
	StepBuild  = "build"
	StepAssets = "assets"
	StepDeploy = "deploy"
	StepRoute  = "route"
	StepDNS    = "dns"
	StepClean  = "cleanup"
	StepClaim  = "claim"
	// StepDatabase ensures (Up) or drops (Down) the preview's database.
	StepDatabase = "database"
)

// The environment that tells a function with a database (FunctionSpec's
// Database) where its connection strings are: the names of the secrets
// holding them, read from SecretsDir (or $GLIMPSE_SECRETS_DIR) as files.
// The URLs themselves are secrets and never in the environment.
const (
	EnvDatabaseURLSecret         = "DATABASE_URL_SECRET"
	EnvDatabaseReadOnlyURLSecret = "DATABASE_READONLY_URL_SECRET"
)

// EventState is the state of a step in an Event.
type EventState string

// Event states.
const (
	EventStarted EventState = "started"
	EventDone    EventState = "done"
	EventSkipped EventState = "skipped"
	EventFailed  EventState = "failed"
	// EventLog carries a log line (build output) of a running step.
	EventLog EventState = "log"
)

// Event reports progress of one Pipeline step. Steps that run in parallel
// emit events concurrently; OnEvent handlers are called from several
// goroutines but never concurrently (the Pipeline serialises them).
type Event struct {
	Step    string        `json:"step"`
	State   EventState    `json:"state"`
	Message string        `json:"message,omitempty"`
	Elapsed time.Duration `json:"elapsed,omitempty"`
}

// Pipeline composes the providers into the preview lifecycle. Builder and
// Registry are needed for apps with a function, Assets for apps with static
// files; Runtime and Router are always needed; DNS is optional (nil for
// wildcard records or *.localhost).
//
// A Pipeline is safe for concurrent use, also by Ups and Downs of the same
// pull request on one machine or several: they are ordered by generations
// claimed by compare-and-swap on the stored route (see Ordering in
// order.go). The Up that claimed last wins whenever it finishes, an Up
// that lost removes what it created, and a Down is final for every Up that
// claimed before it. A crash at any step leaves only labelled resources
// that the next Up, Down or GC finds.
type Pipeline struct {
	Builder  Builder
	Registry Registry
	Runtime  FunctionRuntime
	Assets   AssetStore
	Router   Router
	DNS      DNS
	// CDN, when set, is purged of the preview's host after every Up that
	// changed what the preview serves (step "purge", after the route
	// switch; see Up).
	CDN CDNPurger
	// Database, when set, gives the previews of apps whose spec has a
	// function.database section their own database (step "database",
	// before the deploy; see Up). Down drops it after the function, and
	// GC drops those of previews that are gone (CollectDatabases).
	Database Database

	// Owner is written into every resource's ownership labels and scopes
	// Down and List; default DefaultOwner.
	Owner string
	// BaseDomain is the domain preview hosts are made under: "localhost"
	// gives pr-42.hello.localhost.
	BaseDomain string
	// URLFor turns a host into the preview's URL; default "https://"+host.
	URLFor func(host string) string
	// OnEvent receives progress events; may be nil.
	OnEvent func(Event)

	eventMu sync.Mutex
}

// UpRequest is the input of Pipeline.Up.
type UpRequest struct {
	// Dir is the app directory; paths in Spec are relative to it.
	Dir string
	// Spec is the app spec (defaults applied by Up).
	Spec Spec
	// PR and Commit select the preview; App comes from Spec.
	PR     int
	Commit string
	// Generation orders this Up among the Ups and Downs of its pull
	// request (see Ordering in order.go). 0 claims the next generation, so
	// Ups are ordered by when they start; a positive value (a CI run
	// number, a webhook sequence) must be at least the preview's current
	// generation, or Up fails with ErrSuperseded and changes nothing.
	Generation int64
	// Force claims a generation newer than the preview's whatever
	// Generation says: the operator's "deploy this commit now".
	Force bool
	// VerifyAssets publishes the assets as a first deploy does, looking
	// every blob up in the store, instead of taking the blobs of the
	// served manifest as stored (AssetBasePublisher) or reusing that
	// manifest when nothing changed: a blob deleted behind the store's
	// back (by hand, by a bucket lifecycle rule) is sent again. It costs
	// one lookup of all blobs (s3assets: one listing per 1,000).
	VerifyAssets bool
}

func (p *Pipeline) emit(e Event) {
	if p.OnEvent == nil {
		return
	}
	p.eventMu.Lock()
	defer p.eventMu.Unlock()
	p.OnEvent(e)
}

// step runs fn as a named step, emitting started and done/failed events.
// fn returns the done message, or skip=true for a step with nothing to do.
func (p *Pipeline) step(name string, fn func() (msg string, skip bool, err error)) error {
	start := time.Now()
	p.emit(Event{Step: name, State: EventStarted})
	msg, skip, err := fn()
	el := time.Since(start)
	switch {
	case err != nil:
		p.emit(Event{Step: name, State: EventFailed, Message: err.Error(), Elapsed: el})
		return fmt.Errorf("%s: %w", name, err)
	case skip:
		p.emit(Event{Step: name, State: EventSkipped, Message: msg, Elapsed: el})
	default:
		p.emit(Event{Step: name, State: EventDone, Message: msg, Elapsed: el})
	}
	return nil
}

func (p *Pipeline) url(host string) string {
	if p.URLFor != nil {
		return p.URLFor(host)
	}
	return "https://" + host
}

func (p *Pipeline) check(spec *Spec) error {
	if p.Runtime == nil && spec.Function != nil {
		return Errorf(FailedPrecondition, "pipeline has no function runtime")
	}
	if spec.Function != nil && (p.Builder == nil || p.Registry == nil) {
		return Errorf(FailedPrecondition, "pipeline has no builder or registry for the function")
	}
	if spec.Function != nil && spec.Function.Database != nil && p.Database == nil {
		return Errorf(FailedPrecondition, "glimpse.yaml asks for a database and the pipeline has no database provider (set database: in the providers, such as postgres://HOST:PORT/postgres)")
	}
	if f := spec.Function; f != nil && (len(f.Secrets) > 0 || f.Database != nil) && p.Runtime != nil && !deliversSecrets(p.Runtime) {
		return Errorf(FailedPrecondition, "the function runtime cannot deliver secrets, which function.secrets and function.database need")
	}
	if spec.Assets != nil && p.Assets == nil {
		return Errorf(FailedPrecondition, "pipeline has no asset store for the static files")
	}
	if p.Router == nil {
		return Errorf(FailedPrecondition, "pipeline has no router")
	}
	return nil
}

func firstReal(errs ...error) error {
	// Prefer an error that is not the cancellation caused by a sibling's
	// failure.
	for _, e := range errs {
		if e != nil && CodeOf(e) != Canceled {
			return e
		}
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

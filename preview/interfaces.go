package preview

import (
	"context"
	"io"
	"time"
)

// All provider interfaces share these rules unless a method says otherwise:
//   - ctx is honoured: a cancelled context makes the call return promptly
//     with an error whose code is Canceled or DeadlineExceeded.
//   - Implementations are safe for concurrent use.
//   - Errors carry a Code (see Errorf, WithCode). NotFound means the named
//     thing does not exist; Unavailable means the backend could not be
//     reached and nothing happened, so the call may be retried.
//   - Every mutating call is idempotent: repeating it with the same input
//     leaves the same state, and deleting something already gone succeeds.

// Builder builds a function's source into an OCI image and pushes it.
type Builder interface {
	// Build builds req.SourceDir and pushes the image as
	// req.Repository:req.Tag, labelled with req.Labels and the source hash.
	// When an image built from the same source hash already exists in
	// req.Repository, Build reuses it (tags it, builds nothing) and sets
	// BuildResult.Reused. On failure nothing is tagged req.Tag; blobs
	// already pushed may stay (the registry's gc removes them).
	Build(ctx context.Context, req BuildRequest) (BuildResult, error)
}

// BuildRequest is the input of Builder.Build. The Pipeline guarantees that
// SourceDir is an absolute directory and Repository and Tag are valid.
type BuildRequest struct {
	Target     Target
	SourceDir  string
	Repository string // "127.0.0.1:5000/hello", no tag
	Tag        string // "pr-42-3f2c1ab"
	Labels     Labels
	// Progress, when not nil, receives human-readable build log lines.
	Progress func(line string)
}

// BuildResult is the output of Builder.Build.
type BuildResult struct {
	// Image is the pushed image by digest: "repo@sha256:...".
	Image string
	// Digest is the manifest digest: "sha256:...".
	Digest string
	// SourceHash is the hash of the source the image was built from.
	SourceHash string
	// Reused is true when no build ran because an image with the same
	// source hash existed.
	Reused bool
}

// Registry is an OCI registry seen from the preview lifecycle.
type Registry interface {
	// Repository returns the repository reference for app, where builders
	// push: "127.0.0.1:5000/hello". It does no I/O.
	Repository(app string) string
	// Resolve returns the digest that ref (repo:tag or repo@digest) names,
	// or NotFound.
	Resolve(ctx context.Context, ref string) (string, error)
	// Tags lists the tags of app's repository; an unknown repository has no
	// tags (not an error).
	Tags(ctx context.Context, app string) ([]string, error)
	// DeleteTag removes tag from app's repository. A missing tag is
	// success. Registries that refuse deletes answer Unimplemented or
	// PermissionDenied.
	DeleteTag(ctx context.Context, app, tag string) error
}

// Function is the desired state of one deployed function.
type Function struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Env         map[string]string `json:"env,omitempty"`
	Labels      Labels            `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Secrets are secret values Glimpse supplies, by secret name (a
	// DNS-1123 subdomain such as "hello-pr-42-database-url", unique to the
	// function: runtimes whose secrets live in a namespace shared by many
	// functions store them under this name). The runtime delivers each
	// the OpenFaaS way, as the file /var/openfaas/secrets/<name> that only
	// this function can read (see SecretsDir), and never as labels,
	// annotations, environment, logs or status: Get and List never return
	// values, and the field is never marshalled. What identifies them in
	// the deployed function is AnnotationSecretsHash (see SecretsHash).
	// Removing the function removes its Secrets.
	Secrets map[string]string `json:"-"`
	// SecretNames name secrets the runtime already holds (created with
	// faas-cli secret create, or the gateway's /system/secrets API),
	// delivered like Secrets; their values are the runtime's, never
	// Glimpse's, and removing the function leaves them. Apply fails with
	// FailedPrecondition when one does not exist.
	SecretNames []string `json:"secretNames,omitempty"`
	// Resources are the CPU and memory each replica reserves and may use
	// (validated by Validate; the zero value sets none). The Pipeline
	// also records them in AnnotationResources, so that runtimes that do
	// not report them back still see a change as one.
	Resources Resources `json:"resources,omitzero"`
}

// FunctionStatus is a deployed function as the runtime reports it.
type FunctionStatus struct {
	Function
	// Replicas is the desired replica count.
	Replicas int `json:"replicas"`
	// AvailableReplicas is how many replicas are ready.
	AvailableReplicas int `json:"availableReplicas"`
	// InvocationCount is the runtime's own count where it has one.
	InvocationCount float64 `json:"invocationCount,omitempty"`
	// CreatedAt is when the function was first deployed; zero when the
	// runtime does not say.
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// LastError is, where the runtime knows it, the one-line reason the
	// function's last start failed or its last process crashed; empty when
	// it has not since it was last deployed or scaled. A function with
	// LastError and no available replica is failed (List reports
	// StatusFailed), not starting or asleep. faas/localfaas fills it (also
	// through its gateway); a plain OpenFaaS gateway does not say.
	LastError string `json:"lastError,omitempty"`
	// Restarts counts the crashes of the function's processes since it was
	// last deployed or scaled up, where the runtime counts them.
	Restarts int `json:"restarts,omitempty"`
	// StartedAt is when the function's current (or last) process started;
	// zero when unknown.
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// FunctionRuntime deploys, scales and removes functions.
type FunctionRuntime interface {
	// Apply creates fn with one replica, or updates an existing function
	// to match fn (create-or-update); an update keeps the current replica
	// count, so a function scaled to zero stays at zero. Apply with
	// unchanged input changes nothing, and an update that changes only
	// labels or annotations should not restart replicas where the backend
	// allows it.
	//
	// Apply never rolls a function back: when the deployed function's
	// generation (annotation AnnotationGeneration) is greater than fn's,
	// it changes nothing and returns ErrStaleGeneration (code
	// FailedPrecondition); CheckGeneration makes the comparison. Runtimes
	// whose backend has conditional writes make the check and the write
	// atomic; others check just before writing and say so.
	Apply(ctx context.Context, fn Function) error
	// Get returns the function's status, or NotFound.
	Get(ctx context.Context, name string) (FunctionStatus, error)
	// List returns the functions whose labels match selector.
	List(ctx context.Context, selector Labels) ([]FunctionStatus, error)
	// Scale sets the desired replicas and returns the count the runtime
	// accepted, which differs from replicas when the runtime clamps (an
	// OpenFaaS CE gateway turns 0 into 1). NotFound for an unknown function.
	Scale(ctx context.Context, name string, replicas int) (int, error)
	// Remove deletes the function and everything it runs. A missing
	// function is success.
	Remove(ctx context.Context, name string) error
}

// GenerationRemover is an optional interface of a FunctionRuntime that can
// remove a function only while its generation is older than a bound, with
// the check and the removal atomic (a delete with a precondition, a lock in
// an in-process runtime): the counterpart of Apply's refusal to roll back.
// The Pipeline's removals (Down, an Up's clean-up, a superseded Up undoing
// its deploy) are decided on what they read before; they use
// RemoveOlder when the runtime has it. Without it the Pipeline reads the
// generation and removes in two calls, and an Up that deploys a newer
// generation between the two loses its function.
type GenerationRemover interface {
	// RemoveOlder removes the function name if its generation
	// (annotation AnnotationGeneration, 0 when absent) is lower than
	// below, and reports whether it did. A missing function, or one of
	// generation below or newer, is left alone: removed is false and the
	// error nil.
	RemoveOlder(ctx context.Context, name string, below int64) (removed bool, err error)
}

// AssetStore stores static files content-addressed: every file is a blob
// named by its SHA-256, and each preview has one manifest (path -> blob)
// stored under its prefix. Identical files across previews are stored once.
type AssetStore interface {
	// Publish stores the blobs of m that the store lacks (read through
	// open, called only for missing blobs) and then replaces the manifest
	// at prefix with m, atomically: readers see the old or the new
	// manifest, never a mix. If it fails before the manifest is written,
	// the old manifest stays. labels are stored with the manifest.
	Publish(ctx context.Context, prefix string, m Manifest, labels Labels, open func(path string) (io.ReadCloser, error)) (PublishStats, error)
	// Manifest returns the manifest at prefix, or NotFound.
	Manifest(ctx context.Context, prefix string) (Manifest, error)
	// Open returns the blob with the given digest, or NotFound.
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
	// List returns the prefixes whose manifest labels match selector.
	List(ctx context.Context, selector Labels) ([]ManifestInfo, error)
	// Delete removes the manifest at prefix. Blobs no other manifest
	// references may be removed then or by a later collection. A missing
	// prefix is success.
	Delete(ctx context.Context, prefix string) error
}

// PublishStats says what a Publish call transferred.
type PublishStats struct {
	Files         int   `json:"files"`
	Uploaded      int   `json:"uploaded"`
	UploadedBytes int64 `json:"uploadedBytes"`
	Reused        int   `json:"reused"`
	// Unchanged is true when the stored manifest already equalled m.
	Unchanged bool `json:"unchanged"`
}

// ManifestInfo names a stored manifest and its labels.
type ManifestInfo struct {
	Prefix string `json:"prefix"`
	Labels Labels `json:"labels"`
}

// Route says how the edge serves one host: requests whose path starts with
// one of FunctionPaths go to Function; everything else is served from the
// asset manifest at AssetPrefix.
//
// A stored route is also where the Ups and Downs of one pull request are
// ordered (see Ordering in pipeline.go): Generation is the highest
// generation any of them has claimed, Served the one whose content the
// route serves, Deleted marks the tombstone a Down leaves, and Version is
// the router's revision of the stored route, the compare-and-swap token of
// SetRoute.
type Route struct {
	Host          string   `json:"host"`
	AssetPrefix   string   `json:"assetPrefix,omitempty"`
	Function      string   `json:"function,omitempty"`
	FunctionPaths []string `json:"functionPaths,omitempty"`
	Labels        Labels   `json:"labels,omitempty"`

	// Generation is the highest generation claimed for this host, and
	// ClaimedCommit the commit of the Up that claimed it.
	Generation    int64  `json:"generation,omitempty"`
	ClaimedCommit string `json:"claimedCommit,omitempty"`
	// Served is the generation of the Up that last switched the route to
	// its content; 0 when no Up has yet.
	Served int64 `json:"served,omitempty"`
	// Failure is why the Up that claimed Generation failed before it
	// switched the route (one line), written by that Up while its claim
	// is the stored one; empty otherwise, and cleared by the next claim.
	// List reports a preview that nothing is served for yet and whose
	// Up failed as StatusFailed with this reason. Routers that cannot
	// store it drop it (the preview then lists as partial).
	Failure string `json:"failure,omitempty"`
	// Deleted marks a tombstone: the preview was taken down; the route
	// serves nothing (the edge answers 404) and is kept so that Ups that
	// claimed an older generation cannot bring the preview back.
	Deleted bool `json:"deleted,omitempty"`
	// Version is set by the router on every write, opaque to callers and
	// never repeated for a host (an ETag, a Kubernetes resourceVersion).
	Version string `json:"version,omitempty"`
}

// Router makes hosts reachable.
type Router interface {
	// Route returns the stored route for host, tombstones included, or
	// NotFound.
	Route(ctx context.Context, host string) (Route, error)
	// SetRoute stores r for r.Host if and only if the stored route's
	// Version equals r.Version, where an empty r.Version means no route is
	// stored for the host; it returns the route as stored, with its new
	// Version. When the precondition does not hold it changes nothing and
	// returns an error with code Aborted. Repeating a successful call
	// therefore fails with Aborted: callers re-read and decide again.
	SetRoute(ctx context.Context, r Route) (Route, error)
	// Routes lists the routes whose labels match selector, tombstones
	// included.
	Routes(ctx context.Context, selector Labels) ([]Route, error)
	// DeleteRoute removes the stored route for host, a tombstone included,
	// unconditionally; a missing route is success. The Pipeline never
	// deletes a route: Down leaves a tombstone, which nothing collects
	// yet (it is small, labelled, and serves 404).
	DeleteRoute(ctx context.Context, host string) error
}

// DNS creates the records that point a preview's host at the edge.
type DNS interface {
	// Ensure creates or updates the record for host, labelled (as the
	// provider can: a comment, a TXT record) with labels.
	Ensure(ctx context.Context, host string, labels Labels) error
	// Hosts lists the hosts whose records carry labels matching selector.
	Hosts(ctx context.Context, selector Labels) ([]string, error)
	// Remove deletes the record for host; a missing record is success.
	Remove(ctx context.Context, host string) error
}

// Activity is what the edge observed of one function.
//
// An entry with Host set (and Function empty) counts the static requests
// of that host: only LastActivity is kept for it, so that a preview
// without a function (or one whose function nobody calls) is seen in use.
type Activity struct {
	Function     string    `json:"function"`
	Host         string    `json:"host,omitempty"`
	Started      uint64    `json:"started"`
	InFlight     int64     `json:"inFlight"`
	Finished     uint64    `json:"finished"`
	LastActivity time.Time `json:"lastActivity"`
}

// ActivityReporter is an optional interface of a Router whose edge counts
// requests per function itself (ingress/edge does). Pipeline.List uses it
// to report each preview's last request; the idle controller uses it to
// decide. It returns one entry per function the edge has seen since it
// started; counters restart from zero when the edge restarts.
type ActivityReporter interface {
	Activity(ctx context.Context) ([]Activity, error)
}

// Observation is the input of an IdlePolicy decision about one function.
type Observation struct {
	Activity
	Replicas  int
	AlwaysOn  bool
	IdleAfter time.Duration // 0: the policy's default
}

// IdlePolicy decides which functions to scale to zero. It does no I/O and
// reads the time only from now, so decisions are reproducible.
type IdlePolicy interface {
	// Idle returns the names of functions in obs that should be scaled to
	// zero at time now.
	Idle(now time.Time, obs []Observation) []string
}

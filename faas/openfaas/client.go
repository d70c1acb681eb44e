package openfaas

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"
	"k8s.io/client-go/kubernetes"

	"github.com/glimpse-dev/glimpse/preview"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one HTTP request. It is long because faasd
	// answers a deploy only once the image is pulled and the task started.
	DefaultTimeout = 5 * time.Minute
	// DefaultMaxRetries is how often a GET, PUT or DELETE that found the
	// gateway unavailable is repeated.
	DefaultMaxRetries = 3
	// DefaultScaleSettle is how long Scale keeps reading the status back
	// while it differs from the request (see Client.ScaleExact).
	DefaultScaleSettle = 2 * time.Second
)

// Options configure a Client. The zero value (or nil) means defaults.
type Options struct {
	// Namespace is sent with every call, both as the ?namespace= query
	// and in the JSON body, because faas-netes reads it from the query
	// for list, status, scale and delete while faasd reads it from the
	// body for deploy, update, scale and delete. Empty means the
	// gateway's default function namespace.
	Namespace string
	// Username and Password are sent as HTTP basic auth when Password is
	// not empty. Username defaults to "admin".
	Username string
	Password string
	// CAFile is a PEM file of certificate authorities trusted for an
	// https gateway, in addition to the system's. Ignored with
	// HTTPClient.
	CAFile string
	// Timeout bounds each HTTP request (one attempt). 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxRetries is how many times a GET, PUT or DELETE is repeated when
	// the gateway was unavailable (connection refused or reset, 502,
	// 503), with exponential backoff. POST (create, scale) is never
	// repeated. 0 means DefaultMaxRetries; negative means none.
	MaxRetries int
	// ScaleSettle is how long Scale re-reads the status while the replica
	// count differs from the request, since faas-netes reports replicas
	// from an informer cache that may lag. 0 means DefaultScaleSettle;
	// negative means one read.
	ScaleSettle time.Duration
	// HTTPClient replaces the default client (no proxy, 10 s to connect).
	HTTPClient *http.Client
	// ScaleDeployments, when not nil, makes Scale and ScaleExact scale
	// faas-netes' Deployment of the function in the functions namespace
	// (Namespace, else DefaultFunctionNamespace) through this client's
	// scale subresource instead of asking the gateway, so that zero
	// sticks on OpenFaaS Community Edition; Scale to one or more returns
	// once a replica is available, waiting at most Timeout (kubescale.go
	// says what it relies on).
	ScaleDeployments kubernetes.Interface
}

// Client is a preview.FunctionRuntime over the REST API of an OpenFaaS
// gateway: the OpenFaaS CE gateway in front of faas-netes or faasd,
// either provider directly, OpenFaaS Standard/Pro, or localfaas's
// GatewayHandler. It is safe for concurrent use. Errors carry codes mapped
// from the HTTP status and body (see codeFor); the gateway's answer stays
// reachable as *HTTPError with errors.As.
type Client struct {
	base        *url.URL
	namespace   string
	user        string
	password    string
	hc          *http.Client
	timeout     time.Duration
	maxRetries  int
	settle      time.Duration
	backoffBase time.Duration // first retry delay; tests shorten it
	// zeroRefused is set once the gateway kept replicas when asked for
	// zero, and cleared when a scale to zero sticks.
	zeroRefused atomic.Bool
	// asleep is what Endpoint answers from (see invoke.go).
	asleep asleepSet
	// scaler scales faas-netes' Deployments (Options.ScaleDeployments);
	// nil scales through the gateway.
	scaler *deploymentScaler
}

var _ preview.FunctionRuntime = (*Client)(nil)

// SpecHashAnnotation is the annotation in which Apply records a hash of the
// function's desired state, so that an unchanged Apply sends no update
// (faasd, for one, restarts a function on every update). Get and List do
// not return it.
const SpecHashAnnotation = "glimpse.dev/spec-hash"

// New returns a client for the gateway at baseURL ("http://127.0.0.1:8080").
// It does no I/O except reading opts.CAFile.
func New(baseURL string, opts *Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas gateway URL %q: want http(s)://host:port", baseURL)
	}
	if u.User != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas gateway URL: credentials do not belong in the URL")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Username == "" {
		o.Username = "admin"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	switch {
	case o.ScaleSettle == 0:
		o.ScaleSettle = DefaultScaleSettle
	case o.ScaleSettle < 0:
		o.ScaleSettle = 0
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = 10 * time.Second
		tr.Proxy = nil // the gateway is ours to reach directly
		if o.CAFile != "" {
			pool, err := loadCAFile(o.CAFile)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: tr}
	}
	c := &Client{
		base: u, namespace: o.Namespace, user: o.Username, password: o.Password, hc: hc,
		timeout: o.Timeout, maxRetries: o.MaxRetries, settle: o.ScaleSettle,
		backoffBase: 100 * time.Millisecond,
	}
	if o.ScaleDeployments != nil {
		c.scaler = &deploymentScaler{client: o.ScaleDeployments, namespace: cmp.Or(o.Namespace, DefaultFunctionNamespace)}
	}
	return c, nil
}

// loadCAFile returns the system roots plus the certificates in the PEM
// file at path.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas CA file: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Gateway returns the gateway's base URL, such as "http://127.0.0.1:8080".
func (c *Client) Gateway() string { return c.base.String() }

// Apply creates or updates the function. It reads the function first and
// sends nothing when the spec hash it recorded (SpecHashAnnotation) and the
// image match. Otherwise it PUTs (update) and, when the gateway answers 404,
// POSTs (create). Real gateways never answer 409 for an existing function:
// faas-netes answers 500 ("unable create Deployment: ... already exists",
// pkg/handlers/deploy.go) and faasd 400 ("container ... already exists",
// pkg/provider/handlers/deploy.go); all three mean a concurrent create won,
// and Apply then PUTs once more. An update keeps the replica count where the
// gateway does (faas-netes); faasd starts a function again on update, so
// Apply scales a function that was at zero back to zero afterwards.
// A failed Apply leaves whatever the gateway did; repeating it converges.
// A function deployed with a newer generation is never replaced
// (ErrStaleGeneration); the gateway has no conditional update, so the
// check is made on the read just before the write, and two Applies racing
// within that gap are ordered by the pipeline's re-check after its route
// switch instead.
//
// fn.Secrets are written through the gateway's /system/secrets first
// (putSecrets), under their own names, and the deployment names them with
// fn.SecretNames in FunctionDeployment.Secrets, so the provider mounts
// each as /var/openfaas/secrets/<name>. Their values are covered by the
// spec hash (preview.SecretsHash), so a changed value redeploys. A stale
// Apply is refused before any secret is written; two Applies racing past
// the check may leave the older one's value (Glimpse's values, derived
// from a stable key, are the same for every generation).
func (c *Client) Apply(ctx context.Context, fn preview.Function) error {
	if err := fn.Validate(); err != nil {
		return err
	}
	hash := specHash(fn)
	cur, err := c.get(ctx, fn.Name)
	existed := err == nil
	switch {
	case existed:
		if cur.Annotations != nil && (*cur.Annotations)[SpecHashAnnotation] == hash && cur.Image == fn.Image {
			return nil
		}
		// The gateway API has no conditional update: the roll-back check
		// is made here, just before the write (see preview.FunctionRuntime).
		if cur.Annotations != nil {
			if err := preview.CheckGeneration(preview.Function{Annotations: *cur.Annotations}, fn); err != nil {
				return err
			}
		}
	case !preview.IsNotFound(err):
		return err
	}
	if err := c.putSecrets(ctx, fn); err != nil {
		return err
	}
	d := c.deployment(fn, hash)
	err = c.do(ctx, http.MethodPut, "/system/functions", c.query(), d, nil)
	if preview.IsNotFound(err) {
		existed = false
		err = c.do(ctx, http.MethodPost, "/system/functions", c.query(), d, nil)
		switch preview.CodeOf(err) {
		case preview.AlreadyExists:
			err = c.do(ctx, http.MethodPut, "/system/functions", c.query(), d, nil)
		case preview.FailedPrecondition:
			// At the CE function limit faas-netes refuses a create
			// before it sees that the function exists
			// (pkg/handlers/deploy.go): if a concurrent create won,
			// the update succeeds; if not, the limit is the answer.
			if c.do(ctx, http.MethodPut, "/system/functions", c.query(), d, nil) == nil {
				err = nil
			}
		}
	}
	if err == nil && existed {
		// Secrets an earlier Apply made that fn no longer has.
		err = c.deleteSecrets(ctx, dropped(ownedSecrets(cur.Annotations), fn))
	}
	if err != nil || !existed || cur.Replicas != 0 {
		return err
	}
	// faasd deploys a function again on update, which starts it
	// (pkg/provider/handlers/update.go); put it back to zero.
	st, err := c.get(ctx, fn.Name)
	if err != nil || st.Replicas == 0 {
		return err
	}
	_, err = c.Scale(ctx, fn.Name, 0)
	return err
}

// deployment is the request body of Apply. The "fprocess" variable, which
// classic OpenFaaS templates read, travels as EnvProcess as faas-cli sends
// it (faas-netes and faasd add it to the environment themselves).
func (c *Client) deployment(fn preview.Function, hash string) types.FunctionDeployment {
	labels := map[string]string(fn.Labels.Clone())
	if labels == nil {
		labels = map[string]string{}
	}
	ann := maps.Clone(fn.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[SpecHashAnnotation] = hash
	if o := ownedAnnotation(fn); o != "" {
		ann[OwnedSecretsAnnotation] = o
	}
	env := fn.Env
	var fprocess string
	if p, ok := env["fprocess"]; ok {
		fprocess = p
		env = maps.Clone(env)
		delete(env, "fprocess")
	}
	return types.FunctionDeployment{
		Service:     fn.Name,
		Image:       fn.Image,
		Namespace:   c.namespace,
		EnvProcess:  fprocess,
		EnvVars:     env,
		Labels:      &labels,
		Annotations: &ann,
		Secrets:     preview.AllSecretNames(fn),
		Requests:    providerResources(fn.Resources.Requests),
		Limits:      providerResources(fn.Resources.Limits),
	}
}

// providerResources is l in faas-provider's shape (memory and cpu as
// Kubernetes quantities, which faas-netes puts on the container and faasd
// reads the memory limit from), nil when l sets nothing.
func providerResources(l preview.ResourceList) *types.FunctionResources {
	if l.IsZero() {
		return nil
	}
	return &types.FunctionResources{Memory: l.Memory, CPU: l.CPU}
}

// reportedResources is what a provider reports as preview.ResourceList.
func reportedResources(r *types.FunctionResources) preview.ResourceList {
	if r == nil {
		return preview.ResourceList{}
	}
	return preview.ResourceList{Memory: r.Memory, CPU: r.CPU}
}

// specHash is a stable hash of what Apply sends.
func specHash(fn preview.Function) string {
	h := sha256.New()
	put := func(s string) { fmt.Fprintf(h, "%d:%s", len(s), s) }
	put(fn.Image)
	for _, m := range []map[string]string{fn.Env, fn.Labels, fn.Annotations} {
		keys := slices.Sorted(maps.Keys(m))
		put(strconv.Itoa(len(keys)))
		for _, k := range keys {
			put(k)
			put(m[k])
		}
	}
	put(preview.SecretsHash(fn)) // values and names, never in clear
	if r := fn.Resources.String(); r != "" {
		put(r) // only when set, so that the hash of a function without is as before
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Get returns the function's status as the gateway reports it, or
// NotFound. Labels and annotations include what the provider adds
// (faas-netes: faas_function, uid, prometheus.io.scrape). Env is empty on
// faas-netes, whose status carries no environment
// (pkg/k8s/function_status.go). InvocationCount is what the status
// carries: localfaas counts there, while the OpenFaaS gateway adds counts
// to List only (openfaas/faas gateway/metrics/add_metrics.go).
func (c *Client) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	st, err := c.get(ctx, name)
	if err != nil {
		return preview.FunctionStatus{}, err
	}
	return fromStatus(st), nil
}

func (c *Client) get(ctx context.Context, name string) (types.FunctionStatus, error) {
	var st types.FunctionStatus
	if preview.ValidateDNSLabel(name) != nil {
		// Not a name the gateway could hold, and not safe in a path.
		if err := ctx.Err(); err != nil {
			return st, err
		}
		return st, preview.Errorf(preview.NotFound, "function %q not found", name)
	}
	err := c.do(ctx, http.MethodGet, "/system/function/"+name, c.query(), nil, &st)
	if preview.IsNotFound(err) {
		// faas-netes and faasd answer 404 with an empty body.
		c.asleep.forget(name)
		return st, preview.WithCode(preview.NotFound, fmt.Errorf("function %s not found: %w", name, err))
	}
	if err == nil {
		c.asleep.note(name, st.Replicas)
	}
	return st, err
}

// List returns the functions whose labels match selector, sorted by name,
// with the gateway's invocation counts (from its Prometheus, where it has
// one). AvailableReplicas is 0 on faasd, whose list leaves it out
// (pkg/provider/handlers/read.go).
func (c *Client) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	var all []types.FunctionStatus
	if err := c.do(ctx, http.MethodGet, "/system/functions", c.query(), nil, &all); err != nil {
		return nil, err
	}
	out := []preview.FunctionStatus{}
	for _, st := range all {
		c.asleep.note(st.Name, st.Replicas)
		fs := fromStatus(st)
		if fs.Labels.Matches(selector) {
			out = append(out, fs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the function and then the gateway secrets Apply made
// for it (OwnedSecretsAnnotation); a function the gateway does not know
// (404, whatever the body) is success. Secrets written by an Apply that
// failed before its deploy are not found this way and stay (they are
// named after the function, and the next Apply overwrites them).
func (c *Client) Remove(ctx context.Context, name string) error {
	if preview.ValidateDNSLabel(name) != nil {
		return ctx.Err() // no such function can exist
	}
	var owned []string
	cur, err := c.get(ctx, name)
	switch {
	case err == nil:
		owned = ownedSecrets(cur.Annotations)
	case !preview.IsNotFound(err):
		return err
	}
	req := types.DeleteFunctionRequest{FunctionName: name, Namespace: c.namespace}
	defer c.asleep.forget(name)
	if err := preview.IgnoreNotFound(c.do(ctx, http.MethodDelete, "/system/functions", c.query(), req, nil)); err != nil {
		return err
	}
	return c.deleteSecrets(ctx, owned)
}

func (c *Client) query() url.Values {
	q := url.Values{}
	if c.namespace != "" {
		q.Set("namespace", c.namespace)
	}
	return q
}

func fromStatus(st types.FunctionStatus) preview.FunctionStatus {
	fn := preview.Function{Name: st.Name, Image: st.Image,
		Resources: preview.Resources{Requests: reportedResources(st.Requests), Limits: reportedResources(st.Limits)}}
	if len(st.EnvVars) > 0 {
		fn.Env = maps.Clone(st.EnvVars)
	}
	if st.EnvProcess != "" {
		if fn.Env == nil {
			fn.Env = map[string]string{}
		}
		if _, ok := fn.Env["fprocess"]; !ok {
			fn.Env["fprocess"] = st.EnvProcess
		}
	}
	if st.Labels != nil && len(*st.Labels) > 0 {
		fn.Labels = preview.Labels(maps.Clone(*st.Labels))
	}
	owned := ownedSecrets(st.Annotations)
	for _, n := range st.Secrets {
		if !slices.Contains(owned, n) {
			fn.SecretNames = append(fn.SecretNames, n)
		}
	}
	if st.Annotations != nil {
		a := maps.Clone(*st.Annotations)
		delete(a, SpecHashAnnotation)
		delete(a, OwnedSecretsAnnotation)
		if len(a) > 0 {
			fn.Annotations = a
		}
	}
	out := preview.FunctionStatus{
		Function:          fn,
		Replicas:          replicaCount(st.Replicas),
		AvailableReplicas: replicaCount(st.AvailableReplicas),
		InvocationCount:   st.InvocationCount,
		CreatedAt:         st.CreatedAt,
	}
	if fn.Annotations != nil {
		health(&out, fn.Annotations)
		if len(fn.Annotations) == 0 {
			out.Annotations = nil
		}
	}
	return out
}

// HTTPError is an unexpected answer of the gateway. It is wrapped in a
// *preview.Error whose code codeFor chose; reach it with errors.As.
type HTTPError struct {
	Method     string
	Path       string
	StatusCode int
	Body       string // the first KiB of the answer
}

// Error returns one line: method, path, status and the gateway's words.
func (e *HTTPError) Error() string {
	msg := strings.Join(strings.Fields(e.Body), " ")
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("openfaas %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// codeFor classifies a gateway answer. "already exists" in the body is
// AlreadyExists whatever the status (faas-netes answers 500, faasd 400,
// localfaas 409). The function limit of the Community Editions ("maximum:
// 15" from faas-netes pkg/handlers/deploy.go, "EULA allows" from faasd
// pkg/provider/handlers/deploy.go, both 400) is FailedPrecondition:
// repeating the call cannot succeed until functions are removed.
func codeFor(status int, body string) preview.Code {
	lb := strings.ToLower(body)
	if status == http.StatusConflict || strings.Contains(lb, "already exists") {
		return preview.AlreadyExists
	}
	if status == http.StatusBadRequest && (strings.Contains(lb, "maximum:") || strings.Contains(lb, "eula allows")) {
		return preview.FailedPrecondition
	}
	// A deploy naming a secret the gateway lacks: faas-netes "unable to
	// fetch secrets: ..." (pkg/handlers/deploy.go), faasd "unable to find
	// secret: NAME" (pkg/provider/handlers/deploy.go), both 400.
	if status == http.StatusBadRequest && (strings.Contains(lb, "unable to fetch secrets") || strings.Contains(lb, "unable to find secret")) {
		return preview.FailedPrecondition
	}
	return preview.CodeOfHTTPStatus(status)
}

// idempotent reports whether a request may be repeated when it failed
// without an answer or with "unavailable": GET reads, and PUT (update to a
// given state) and DELETE (a missing function is success) converge when
// repeated. POST creates and scales; it is never repeated.
func idempotent(method string) bool {
	return method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete
}

// do sends one request with body as JSON and decodes a 2xx answer into out
// when out is not nil. Idempotent requests are repeated up to maxRetries
// times, with exponential backoff and jitter, while they fail Unavailable.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return preview.WithCode(preview.Internal, err)
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		err, retry := c.once(ctx, method, path, q, payload, body != nil, out)
		if err == nil || !retry || attempt >= c.maxRetries || !idempotent(method) {
			return err
		}
		d := c.backoffBase << attempt
		d = min(d, 5*time.Second)
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// once sends one attempt. retry says whether the failure is one an
// idempotent request may repeat: no answer, 502 or 503.
func (c *Client) once(parent context.Context, method, path string, q url.Values, payload []byte, hasBody bool, out any) (err error, retry bool) {
	if err := parent.Err(); err != nil {
		return err, false
	}
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return preview.WithCode(preview.InvalidArgument, err), false
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "glimpse-openfaas")
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if perr := parent.Err(); perr != nil {
			return perr, false
		}
		if ctx.Err() != nil {
			return preview.Errorf(preview.DeadlineExceeded, "openfaas %s %s: no answer within %s", method, path, c.timeout), false
		}
		code := preview.Unavailable
		if method != http.MethodGet {
			// The request may have reached the gateway: not "nothing
			// happened", unless it never connected.
			code = preview.Unknown
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				code = preview.Unavailable
			}
		}
		return preview.Errorf(code, "openfaas %s %s: %w", method, path, err), true
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		he := &HTTPError{Method: method, Path: path, StatusCode: resp.StatusCode, Body: string(b)}
		code := codeFor(resp.StatusCode, he.Body)
		return preview.WithCode(code, he), code == preview.Unavailable
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, false
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		if perr := parent.Err(); perr != nil {
			return perr, false
		}
		return preview.Errorf(preview.Internal, "openfaas %s %s: decoding the answer: %w", method, path, err), false
	}
	return nil, false
}

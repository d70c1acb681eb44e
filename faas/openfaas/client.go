package openfaas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/preview"
)

func init() {
	preview.Runtimes.Register("openfaas", open)
}

// open opens "openfaas://host:port?namespace=ns&tls=true". Credentials come
// from OPENFAAS_USERNAME (default admin) and OPENFAAS_PASSWORD.
func open(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.FunctionRuntime, error) {
	q, err := preview.QueryParams(u, "namespace", "tls")
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas URL needs host:port, such as openfaas://127.0.0.1:8080")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas URL takes no path, got %q", u.Path)
	}
	scheme := "http"
	if v := q.Get("tls"); v != "" {
		useTLS, err := strconv.ParseBool(v)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "tls=%q is not a boolean", v)
		}
		if useTLS {
			scheme = "https"
		}
	}
	user := o.Env("OPENFAAS_USERNAME")
	if user == "" {
		user = "admin"
	}
	return New(scheme+"://"+u.Host, &Options{
		Namespace: q.Get("namespace"),
		Username:  user,
		Password:  o.Env("OPENFAAS_PASSWORD"),
	})
}

// Options configure a Client. The zero value (or nil) means defaults.
type Options struct {
	// Namespace is sent with every call (query and body); empty means the
	// gateway's default function namespace.
	Namespace string
	// Username and Password are sent as HTTP basic auth when Password is
	// not empty. Username defaults to "admin".
	Username string
	Password string
	// HTTPClient replaces the default client (timeouts: 10s to connect,
	// 5 minutes per request, since a gateway may answer a deploy only once
	// the function is up).
	HTTPClient *http.Client
}

// Client is a preview.FunctionRuntime over the REST API of an OpenFaaS
// gateway (faas-netes, faasd, or localfaas's GatewayHandler). It is safe
// for concurrent use and never retries a request on its own; errors carry
// codes mapped from the HTTP status (see codeFor).
type Client struct {
	base      *url.URL
	namespace string
	user      string
	password  string
	hc        *http.Client
}

var _ preview.FunctionRuntime = (*Client)(nil)

// SpecHashAnnotation is the annotation in which Apply records a hash of the
// function's desired state, so that an unchanged Apply sends no update
// (faasd, for one, restarts a function on every update). Get and List do
// not return it.
const SpecHashAnnotation = "glimpse.dev/spec-hash"

// New returns a client for the gateway at baseURL ("http://127.0.0.1:8080").
func New(baseURL string, opts *Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "openfaas gateway URL %q: want http(s)://host:port", baseURL)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Username == "" {
		o.Username = "admin"
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = 10 * time.Second
		tr.Proxy = nil // the gateway is ours to reach directly
		hc = &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	}
	return &Client{base: u, namespace: o.Namespace, user: o.Username, password: o.Password, hc: hc}, nil
}

// Apply creates or updates the function: it reads the function first and
// sends nothing when the spec hash it recorded matches; otherwise it PUTs
// (update) and, when the gateway answers 404, POSTs (create). When the POST
// finds the function already there (a concurrent create: 409, or
// faas-netes's 500 / faasd's 400 saying "already exists"), it PUTs once
// more. A gateway error leaves whatever the gateway did; repeating Apply
// converges.
func (c *Client) Apply(ctx context.Context, fn preview.Function) error {
	if err := preview.ValidateDNSLabel(fn.Name); err != nil {
		return preview.Errorf(preview.InvalidArgument, "function name %q: %v", fn.Name, err)
	}
	if fn.Image == "" {
		return preview.Errorf(preview.InvalidArgument, "function %s: image is required", fn.Name)
	}
	hash := specHash(fn)
	if cur, err := c.get(ctx, fn.Name); err == nil {
		if cur.Annotations != nil && (*cur.Annotations)[SpecHashAnnotation] == hash && cur.Image == fn.Image {
			return nil
		}
	} else if !preview.IsNotFound(err) {
		return err
	}
	d := c.deployment(fn, hash)
	err := c.do(ctx, http.MethodPut, "/system/functions", c.query(), d, nil)
	if !preview.IsNotFound(err) {
		return err
	}
	err = c.do(ctx, http.MethodPost, "/system/functions", c.query(), d, nil)
	if preview.CodeOf(err) == preview.AlreadyExists {
		err = c.do(ctx, http.MethodPut, "/system/functions", c.query(), d, nil)
	}
	return err
}

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
	return types.FunctionDeployment{
		Service:     fn.Name,
		Image:       fn.Image,
		Namespace:   c.namespace,
		EnvVars:     fn.Env,
		Labels:      &labels,
		Annotations: &ann,
	}
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
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Get returns the function's status, or NotFound.
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
	return st, err
}

// List returns the functions whose labels match selector, sorted by name.
func (c *Client) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	var all []types.FunctionStatus
	if err := c.do(ctx, http.MethodGet, "/system/functions", c.query(), nil, &all); err != nil {
		return nil, err
	}
	out := []preview.FunctionStatus{}
	for _, st := range all {
		fs := fromStatus(st)
		if fs.Labels.Matches(selector) {
			out = append(out, fs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Scale asks for replicas and returns the count the gateway then reports.
// OpenFaaS CE refuses zero with 400 ("cannot be set to 0"); Scale then
// returns the unchanged count read back, without error, so callers see the
// clamp. Negative counts are InvalidArgument, a missing function NotFound.
func (c *Client) Scale(ctx context.Context, name string, replicas int) (int, error) {
	if replicas < 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "function %s: replicas must not be negative, got %d", name, replicas)
	}
	if _, err := c.get(ctx, name); err != nil {
		return 0, err
	}
	req := types.ScaleServiceRequest{ServiceName: name, Replicas: uint64(replicas), Namespace: c.namespace}
	err := c.do(ctx, http.MethodPost, "/system/scale-function/"+name, c.query(), req, nil)
	var he *HTTPError
	switch {
	case err == nil:
	case replicas == 0 && errors.As(err, &he) && he.StatusCode == http.StatusBadRequest && strings.Contains(he.Body, "cannot be set to 0"):
		// CE: the gateway keeps its replicas.
	default:
		return 0, err
	}
	st, err := c.get(ctx, name)
	if err != nil {
		return 0, err
	}
	return int(st.Replicas), nil
}

// Remove deletes the function; a function the gateway does not know (404)
// is success.
func (c *Client) Remove(ctx context.Context, name string) error {
	req := types.DeleteFunctionRequest{FunctionName: name, Namespace: c.namespace}
	return preview.IgnoreNotFound(c.do(ctx, http.MethodDelete, "/system/functions", c.query(), req, nil))
}

func (c *Client) query() url.Values {
	q := url.Values{}
	if c.namespace != "" {
		q.Set("namespace", c.namespace)
	}
	return q
}

func fromStatus(st types.FunctionStatus) preview.FunctionStatus {
	fn := preview.Function{Name: st.Name, Image: st.Image, Env: st.EnvVars}
	if st.Labels != nil && len(*st.Labels) > 0 {
		fn.Labels = preview.Labels(maps.Clone(*st.Labels))
	}
	if st.Annotations != nil {
		a := maps.Clone(*st.Annotations)
		delete(a, SpecHashAnnotation)
		if len(a) > 0 {
			fn.Annotations = a
		}
	}
	return preview.FunctionStatus{
		Function:          fn,
		Replicas:          int(st.Replicas),
		AvailableReplicas: int(st.AvailableReplicas),
		InvocationCount:   st.InvocationCount,
	}
}

// HTTPError is an unexpected answer of the gateway. It is wrapped in a
// *preview.Error whose code codeFor chose; reach it with errors.As.
type HTTPError struct {
	Method     string
	Path       string
	StatusCode int
	Body       string // the first KiB of the answer
}

func (e *HTTPError) Error() string {
	msg := strings.TrimSpace(e.Body)
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("openfaas %s %s: %d: %s", e.Method, e.Path, e.StatusCode, msg)
}

// codeFor classifies a gateway answer. "already exists" in the body is
// AlreadyExists whatever the status (faas-netes answers 500, faasd 400).
func codeFor(status int, body string) preview.Code {
	if status == http.StatusConflict || strings.Contains(strings.ToLower(body), "already exists") {
		return preview.AlreadyExists
	}
	switch status {
	case http.StatusNotFound:
		return preview.NotFound
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return preview.InvalidArgument
	case http.StatusUnauthorized, http.StatusForbidden:
		return preview.PermissionDenied
	case http.StatusPreconditionFailed:
		return preview.FailedPrecondition
	case http.StatusTooManyRequests:
		return preview.ResourceExhausted
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return preview.Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return preview.Unavailable
	case http.StatusGatewayTimeout:
		return preview.DeadlineExceeded
	}
	if status >= 500 {
		return preview.Internal
	}
	return preview.Unknown
}

// do sends one request with body as JSON and decodes a 2xx answer into out
// when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return preview.WithCode(preview.Internal, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return preview.WithCode(preview.InvalidArgument, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		code := preview.Unavailable
		if method != http.MethodGet {
			// The request may have reached the gateway; not safe to
			// retry blindly.
			code = preview.Unknown
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				code = preview.Unavailable // never connected: nothing happened
			}
		}
		return preview.Errorf(code, "openfaas %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		he := &HTTPError{Method: method, Path: path, StatusCode: resp.StatusCode, Body: string(b)}
		return preview.WithCode(codeFor(resp.StatusCode, he.Body), he)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return preview.Errorf(preview.Internal, "openfaas %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

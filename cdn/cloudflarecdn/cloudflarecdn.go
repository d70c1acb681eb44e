// Package cloudflarecdn is a preview.CDNPurger on Cloudflare's cache purge
// API (v4, POST /zones/{zone_id}/purge_cache, plain net/http): after each
// deploy the Pipeline purges the preview's host, so Cloudflare fetches the
// new commit's pages instead of serving the previous commit's.
//
// What is purged (Options.Mode):
//
//   - "auto" (the default): {"hosts": [...]}; when Cloudflare refuses purge
//     by hostname for the zone (a 400, or a 403 that is not an
//     authentication error: plans without purge by hostname answer so),
//     the purger falls back to {"files": [...]}, the preview's file URLs,
//     and keeps doing so for the life of the purger. A preview without
//     static files has no URLs to fall back to: the refusal is returned.
//   - "hosts", "prefixes" ({"prefixes": ["pr-42.hello.example.com"]}, a
//     host is a valid prefix) or "files" only.
//
// Batches: at most Options.Batch (default 30) hosts, prefixes or files per
// request. Cloudflare's purge page documents "Maximum 30 prefixes per API
// call" (purge by prefix), and at most 100 operations per request for
// every plan (500 single-file URLs on Enterprise); 30 is within all of
// them, so the default is safe on every plan and for every purge type.
//
// Rate limits: a 429 is retried after the Retry-After header's delay
// (seconds, or an HTTP date; one second when absent), at most
// Options.Retries times and never longer than Options.MaxWait for one
// wait; 5xx answers and transport errors are retried the same way with
// exponential backoff. The free plan allows 5 purge requests per minute.
//
// URL (registered as cloudflare in preview.CDNs; the DNS mux has its own
// cloudflare scheme):
//
//	cloudflare://ZONE[?mode=auto|hosts|prefixes|files][&batch=30]
//
// ZONE is the zone's 32-character ID or its name (example.com), resolved
// once with GET /zones?name=. The API token (Cache Purge permission) comes
// from CLOUDFLARE_API_TOKEN, never the URL. Unknown query parameters are
// errors.
//
// Errors: a refused token (401, 403 with code 10000) is PermissionDenied, a
// missing zone NotFound, a rate limit still hit after the retries
// ResourceExhausted, 5xx and transport failures Unavailable, other 4xx
// InvalidArgument; *APIError (status, Cloudflare's error codes) stays
// reachable with errors.As.
//
// Documentation followed (tests run against an httptest fake of it,
// fake_test.go): https://developers.cloudflare.com/cache/how-to/purge-cache/
// (limits per plan and per request), .../purge_by_prefix/ (30 prefixes per
// call), https://developers.cloudflare.com/api/go/resources/cache/methods/purge
// (the request bodies {"hosts"}, {"prefixes"}, {"files"}),
// https://developers.cloudflare.com/fundamentals/api/reference/limits
// (429, Retry-After in seconds).
package cloudflarecdn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.CDNs.
const Scheme = "cloudflare"

// EnvAPIToken is the environment variable the URL opener reads the API
// token from.
const EnvAPIToken = "CLOUDFLARE_API_TOKEN"

// DefaultBaseURL is Cloudflare's v4 API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

// DefaultBatch is how many hosts, prefixes or files one request carries.
const DefaultBatch = 30

// Purge modes (Options.Mode).
const (
	ModeAuto     = "auto"
	ModeHosts    = "hosts"
	ModePrefixes = "prefixes"
	ModeFiles    = "files"
)

var zoneIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func init() {
	preview.CDNs.Register(Scheme, openURL)
}

// Options configure a Purger.
type Options struct {
	// Token is the API token (bearer); required.
	Token string
	// BaseURL is the API's base; empty means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Mode is one of the Mode constants; empty means ModeAuto.
	Mode string
	// Batch is the most items per request; 0 means DefaultBatch.
	Batch int
	// Retries is how often one request is retried after a 429, a 5xx or
	// a transport error; 0 means 5, negative means none.
	Retries int
	// MaxWait caps one wait before a retry; 0 means 2 minutes. A
	// Retry-After longer than MaxWait ends the retries
	// (ResourceExhausted).
	MaxWait time.Duration
	// Logger receives the fallback notice; nil means slog.Default().
	Logger *slog.Logger
}

// Purger is a preview.CDNPurger on one Cloudflare zone. It is safe for
// concurrent use.
type Purger struct {
	zone    string // ID or name
	o       Options
	client  *http.Client
	log     *slog.Logger
	zoneMu  sync.Mutex
	zoneID  string
	noHosts atomic.Bool // hosts refused: files from now on (auto)
	// sleep waits d or until ctx ends (tests replace it).
	sleep func(ctx context.Context, d time.Duration) error
}

var _ preview.CDNPurger = (*Purger)(nil)

// New returns a Purger on zone (its ID or name). It does no I/O.
func New(zone string, o Options) (*Purger, error) {
	if zone == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: zone must not be empty")
	}
	if o.Token == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: no API token (set %s)", EnvAPIToken)
	}
	switch o.Mode {
	case "":
		o.Mode = ModeAuto
	case ModeAuto, ModeHosts, ModePrefixes, ModeFiles:
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: mode %q: want auto, hosts, prefixes or files", o.Mode)
	}
	if o.Batch < 0 || o.Batch > 500 {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: batch %d: want 1 to 500", o.Batch)
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Minute
	}
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	p := &Purger{zone: zone, o: o, client: o.HTTPClient, log: o.Logger, sleep: sleepCtx}
	if p.client == nil {
		p.client = &http.Client{Timeout: 30 * time.Second}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if zoneIDPattern.MatchString(zone) {
		p.zoneID = zone
	}
	return p, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.CDNPurger, error) {
	zone := u.Host
	if zone == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: want cloudflare://ZONE[?mode=...&batch=N], got %q", u.Redacted())
	}
	opts := Options{Token: o.Env(EnvAPIToken), Logger: nil}
	if o != nil {
		opts.Logger = o.Logger
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "mode":
			opts.Mode = v
		case "batch":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: batch=%q: want a positive number", v)
			}
			opts.Batch = n
		default:
			return nil, preview.Errorf(preview.InvalidArgument, "cloudflarecdn: unknown URL parameter %q (known: mode, batch)", k)
		}
	}
	return New(zone, opts)
}

// Purge purges req.Hosts (or, by mode, their prefixes or req.URLs) in
// batches of Options.Batch.
func (p *Purger) Purge(ctx context.Context, req preview.PurgeRequest) error {
	if len(req.Hosts) == 0 && len(req.URLs) == 0 {
		return nil
	}
	zoneID, err := p.resolveZone(ctx)
	if err != nil {
		return err
	}
	mode := p.o.Mode
	if mode == ModeAuto && p.noHosts.Load() {
		mode = ModeFiles
	}
	switch mode {
	case ModeFiles:
		return p.purgeAll(ctx, zoneID, "files", req.URLs)
	case ModePrefixes:
		return p.purgeAll(ctx, zoneID, "prefixes", req.Hosts)
	case ModeHosts:
		return p.purgeAll(ctx, zoneID, "hosts", req.Hosts)
	}
	err = p.purgeAll(ctx, zoneID, "hosts", req.Hosts)
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || !ae.refusesHosts() || len(req.URLs) == 0 {
		return err
	}
	p.noHosts.Store(true)
	p.log.Warn("cloudflarecdn: purge by hostname refused, purging file URLs from now on", "zone", p.zone, "err", err)
	return p.purgeAll(ctx, zoneID, "files", req.URLs)
}

func (p *Purger) purgeAll(ctx context.Context, zoneID, kind string, items []string) error {
	for len(items) > 0 {
		n := min(len(items), p.o.Batch)
		body, _ := json.Marshal(map[string][]string{kind: items[:n]})
		if _, err := p.do(ctx, http.MethodPost, "/zones/"+url.PathEscape(zoneID)+"/purge_cache", body); err != nil {
			return fmt.Errorf("cloudflarecdn: purge %s %s: %w", kind, items[0], err)
		}
		items = items[n:]
	}
	return nil
}

// resolveZone returns the zone's ID, looking a name up once.
func (p *Purger) resolveZone(ctx context.Context) (string, error) {
	p.zoneMu.Lock()
	defer p.zoneMu.Unlock()
	if p.zoneID != "" {
		return p.zoneID, nil
	}
	res, err := p.do(ctx, http.MethodGet, "/zones?name="+url.QueryEscape(p.zone), nil)
	if err != nil {
		return "", fmt.Errorf("cloudflarecdn: look up zone %s: %w", p.zone, err)
	}
	var zones []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(res, &zones); err != nil {
		return "", preview.Errorf(preview.Internal, "cloudflarecdn: look up zone %s: %v", p.zone, err)
	}
	for _, z := range zones {
		if strings.EqualFold(z.Name, p.zone) && z.ID != "" {
			p.zoneID = z.ID
			return z.ID, nil
		}
	}
	return "", preview.Errorf(preview.NotFound, "cloudflarecdn: zone %s not found (or the token cannot see it)", p.zone)
}

// APIError is an answer of Cloudflare's API that is not a success.
type APIError struct {
	Status int
	Errors []CodeMessage
	// RetryAfter is the server's delay on a 429, zero otherwise.
	RetryAfter time.Duration
}

// CodeMessage is one entry of the envelope's errors.
type CodeMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	for _, m := range e.Errors {
		fmt.Fprintf(&b, "; %d: %s", m.Code, m.Message)
	}
	return b.String()
}

func (e *APIError) hasCode(c int) bool {
	for _, m := range e.Errors {
		if m.Code == c {
			return true
		}
	}
	return false
}

// auth reports a refused token: 401, or 403 with code 10000
// ("Authentication error").
func (e *APIError) auth() bool {
	return e.Status == http.StatusUnauthorized || (e.Status == http.StatusForbidden && (e.hasCode(10000) || len(e.Errors) == 0))
}

// refusesHosts reports an answer that means "this zone cannot purge by
// hostname": a 400, or a 403 that is not an authentication error.
func (e *APIError) refusesHosts() bool {
	return e.Status == http.StatusBadRequest || (e.Status == http.StatusForbidden && !e.auth())
}

func (e *APIError) code() preview.Code {
	switch {
	case e.auth():
		return preview.PermissionDenied
	case e.Status == http.StatusForbidden:
		return preview.FailedPrecondition
	case e.Status == http.StatusNotFound:
		return preview.NotFound
	case e.Status == http.StatusTooManyRequests:
		return preview.ResourceExhausted
	case e.Status >= 500:
		return preview.Unavailable
	}
	return preview.InvalidArgument
}

type envelope struct {
	Success bool            `json:"success"`
	Errors  []CodeMessage   `json:"errors"`
	Result  json.RawMessage `json:"result"`
}

// do sends one API request, retrying 429s (after Retry-After), 5xx
// answers and transport errors, and returns the envelope's result.
func (p *Purger) do(ctx context.Context, method, path string, body []byte) (json.RawMessage, error) {
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := p.once(ctx, method, path, body)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		wait := backoff
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			wait = ae.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
		case errors.As(err, &ae) && ae.Status >= 500:
		case errors.As(err, &ae):
			return nil, err // not retryable
		}
		if attempt >= p.o.Retries || wait > p.o.MaxWait {
			return nil, err
		}
		if err := p.sleep(ctx, wait); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, p.o.MaxWait)
	}
}

func (p *Purger) once(ctx context.Context, method, path string, body []byte) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.o.BaseURL+path, rd)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.o.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, preview.WithCode(preview.Unavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, preview.WithCode(preview.Unavailable, err)
	}
	var env envelope
	jerr := json.Unmarshal(b, &env)
	if resp.StatusCode/100 == 2 && jerr == nil && env.Success {
		return env.Result, nil
	}
	ae := &APIError{Status: resp.StatusCode, Errors: env.Errors}
	if ae.Status/100 == 2 {
		// A 200 whose envelope says failure (or is not JSON).
		ae.Status = http.StatusBadGateway
		if jerr == nil && len(env.Errors) > 0 {
			ae.Status = http.StatusBadRequest
		}
	}
	if ae.Status == http.StatusTooManyRequests {
		ae.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return nil, preview.WithCode(ae.code(), ae)
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Package cloudflaredns is a preview.DNS on Cloudflare's DNS records API
// (v4, through cloudflare-go v6): each preview host gets one record, a
// CNAME to the configured target or an A/AAAA record, optionally proxied.
//
// Ownership rides in the record's comment, in the versioned form of
// dns/internal/ownership ("glimpse/1 app=hello commit=3f2c1ab owner=o
// pr=42"). Only records whose comment decodes as Glimpse's are ever changed
// or deleted: Ensure refuses (FailedPrecondition) to replace a record at the
// host that is not, and Remove leaves such a record alone. The comment is
// one short line (Cloudflare refuses newlines in comments); tags are not
// used.
//
// URL (registered as cloudflare in preview.DNSProviders):
//
//	cloudflare://ZONE?target=edge.example.com[&proxied=true][&ttl=60]
//	cloudflare://ZONE?a=203.0.113.7[&proxied=true][&ttl=60]
//
// ZONE is the zone's 32-character ID or its name (example.com), which is
// resolved once with GET /zones?name=. The API token comes from
// CLOUDFLARE_API_TOKEN, never the URL. ttl defaults to 1 (Cloudflare's
// "automatic"). Unknown query parameters are errors.
//
// Errors: 401/403 and error code 10000 (authentication error) are
// PermissionDenied, 404 NotFound, 429 ResourceExhausted (after the SDK's
// retries, which wait as long as the Retry-After header says), 5xx and
// transport failures Unavailable; the SDK's *dns.Error stays reachable with
// errors.As.
//
// # The fake the tests run against
//
// The tests run the previewtest DNS suite against an httptest server
// (fake_test.go) that implements what this package calls, following
// Cloudflare's documentation rather than this client:
//
//   - The v4 envelope {success, errors[{code, message}], messages, result}
//     and, on lists, result_info {page, per_page, count, total_count,
//     total_pages}; page-number pagination where a page past the last one
//     has an empty result (the SDK's auto-pager stops on an empty page, not
//     on total_pages).
//   - GET /zones?name= (zone lookup by name).
//   - GET /zones/{zone_id}/dns_records with page, per_page, name.exact,
//     comment.startswith and type (filters case-insensitive, as documented).
//   - POST /zones/{zone_id}/dns_records, PUT and PATCH and DELETE
//     /zones/{zone_id}/dns_records/{id} with the fields name, type, content,
//     ttl, proxied, comment; DELETE answers {"result": {"id": ...}}.
//   - A/AAAA records cannot share a name with a CNAME (400); an identical
//     record is error 81057 "record already exists" (400); a missing or wrong
//     bearer token is error 10000 "Authentication error" (403); an unknown
//     record or zone is 404; a rate limit is 429 with Retry-After in seconds.
//
// Where the documentation says so:
//
//   - https://developers.cloudflare.com/api/go/resources/dns/subresources/records/methods/create
//     (POST /zones/{zone_id}/dns_records; A/AAAA records cannot exist on the
//     same name as CNAME records; DNS Write permission; bearer token).
//   - https://developers.cloudflare.com/fundamentals/api/reference/limits
//     (1200 requests per 5 minutes per token; 429; retry-after is the number
//     of seconds, rounded up, until capacity is available).
//   - https://developers.cloudflare.com/dns/manage-dns-records/reference/record-attributes
//     (comments may not hold newlines; tags are name:value pairs).
//
// The error codes 81057 and 10000 and the envelope's exact shape are taken
// from the project's testbed notes (../shared/TESTBED.md) and the SDK's
// response types, not from a documentation page read for this package.
package cloudflaredns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudflare/cloudflare-go/v6"
	cfdns "github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/zones"

	"github.com/glimpse-dev/glimpse/dns/internal/ownership"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.DNSProviders.
const Scheme = "cloudflare"

// EnvAPIToken is the environment variable the URL opener reads the API
// token from.
const EnvAPIToken = "CLOUDFLARE_API_TOKEN"

// maxAttempts bounds how often Ensure re-reads and retries after a
// concurrent writer created the record first.
const maxAttempts = 4

var zoneIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func init() {
	preview.DNSProviders.Register(Scheme, openURL)
}

// Options configure a Provider. Exactly one of Target and A must be set.
type Options struct {
	// Target makes each host a CNAME to this name.
	Target string
	// A makes each host an A (or, for IPv6, AAAA) record.
	A netip.Addr
	// Proxied routes the host through Cloudflare's proxy.
	Proxied bool
	// TTL in seconds; zero means 1, Cloudflare's "automatic".
	TTL int
	// BaseURL of the API; empty means Cloudflare's
	// (https://api.cloudflare.com/client/v4/). Tests point it at a fake.
	BaseURL string
	// MaxRetries of the SDK for 429 and 5xx answers and transport errors;
	// zero means the SDK's default (2), negative means none.
	MaxRetries int
	// HTTPClient; nil means the SDK's default.
	HTTPClient *http.Client
	// PerPage is the page size of list calls; zero means 100.
	PerPage int
	// Logger receives the provider's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Provider is the Cloudflare preview.DNS. It is safe for concurrent use.
type Provider struct {
	records *cfdns.RecordService
	zones   *zones.ZoneService
	zone    string // ID or name, as given
	typ     string // CNAME, A or AAAA
	content string
	proxied bool
	ttl     int
	perPage int
	log     *slog.Logger

	mu     sync.Mutex
	zoneID string // resolved
}

var _ preview.DNS = (*Provider)(nil)

// New returns a provider for zone (an ID or a zone name) authenticated
// with token. It checks its arguments and does no I/O.
func New(zone, token string, opts *Options) (*Provider, error) {
	if opts == nil {
		opts = &Options{}
	}
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	if !zoneIDPattern.MatchString(zone) {
		if err := preview.ValidateHost(zone); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "cloudflare zone %q is neither a zone ID nor a zone name", zone)
		}
	}
	if token == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflare needs an API token with DNS Write permission in %s", EnvAPIToken)
	}
	p := &Provider{zone: zone, proxied: opts.Proxied, ttl: opts.TTL, perPage: opts.PerPage, log: opts.Logger}
	switch {
	case opts.Target != "" && opts.A.IsValid():
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflare: give a CNAME target or an address, not both")
	case opts.Target != "":
		t := strings.ToLower(strings.TrimSuffix(opts.Target, "."))
		if err := preview.ValidateHost(t); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "cloudflare target: %v", err)
		}
		p.typ, p.content = "CNAME", t
	case opts.A.Is4():
		p.typ, p.content = "A", opts.A.String()
	case opts.A.IsValid():
		p.typ, p.content = "AAAA", opts.A.String()
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflare needs target=NAME (a CNAME) or a=IP (an A record)")
	}
	if p.ttl == 0 {
		p.ttl = 1
	}
	if p.ttl != 1 && (p.ttl < 30 || p.ttl > 86400) {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflare ttl %d: want 1 (automatic) or 30 to 86400 seconds", p.ttl)
	}
	if p.perPage <= 0 {
		p.perPage = 100
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	ro := []option.RequestOption{option.WithAPIToken(token)}
	if opts.BaseURL != "" {
		ro = append(ro, option.WithBaseURL(opts.BaseURL))
	}
	if opts.MaxRetries < 0 {
		ro = append(ro, option.WithMaxRetries(0))
	} else if opts.MaxRetries > 0 {
		ro = append(ro, option.WithMaxRetries(opts.MaxRetries))
	}
	if opts.HTTPClient != nil {
		ro = append(ro, option.WithHTTPClient(opts.HTTPClient))
	}
	p.records = cfdns.NewRecordService(ro...)
	p.zones = zones.NewZoneService(ro...)
	if zoneIDPattern.MatchString(zone) {
		p.zoneID = zone
	}
	return p, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.DNS, error) {
	q, err := preview.QueryParams(u, "target", "a", "proxied", "ttl")
	if err != nil {
		return nil, err
	}
	zone := u.Host
	if zone == "" {
		zone = u.Opaque
	}
	if zone == "" || (u.Path != "" && u.Path != "/") {
		return nil, preview.Errorf(preview.InvalidArgument, "cloudflare URL is cloudflare://ZONE_ID_OR_NAME?target=..., got %s", preview.Redact(u))
	}
	opts := &Options{Target: q.Get("target"), Logger: o.Log()}
	if v := q.Get("a"); v != "" {
		if opts.A, err = netip.ParseAddr(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "a=%q is not an IP address", v)
		}
	}
	if v := q.Get("proxied"); v != "" {
		if opts.Proxied, err = strconv.ParseBool(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "proxied=%q is not a boolean", v)
		}
	}
	if v := q.Get("ttl"); v != "" {
		if opts.TTL, err = strconv.Atoi(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "ttl=%q is not a number of seconds", v)
		}
	}
	return New(zone, o.Env(EnvAPIToken), opts)
}

// Ensure creates host's record, or updates it (content, proxied, TTL and
// the ownership comment) when it is Glimpse's. It is idempotent: an
// identical record is left as it is. A record at host that Glimpse does
// not own (any A, AAAA or CNAME without Glimpse's comment) is
// FailedPrecondition and nothing changes. When Glimpse owns several
// records at host (left by a race), the first is updated and the others
// deleted.
func (p *Provider) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	comment := ownership.Encode(labels)
	if strings.ContainsAny(comment, "\r\n") {
		return preview.Errorf(preview.InvalidArgument, "cloudflare: labels must not hold newlines")
	}
	zoneID, err := p.zoneIDFor(ctx)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		ours, foreign, err := p.at(ctx, zoneID, host)
		if err != nil {
			return err
		}
		if len(foreign) > 0 {
			return preview.Errorf(preview.FailedPrecondition, "cloudflare: %s already has a %s record that Glimpse does not own (its comment is not Glimpse's); not replacing it", host, foreign[0].Type)
		}
		if len(ours) == 0 {
			_, err := p.records.New(ctx, cfdns.RecordNewParams{
				ZoneID: cloudflare.F(zoneID),
				Body: cfdns.RecordNewParamsBody{
					Name:    cloudflare.F(host),
					Type:    cloudflare.F(cfdns.RecordNewParamsBodyType(p.typ)),
					Content: cloudflare.F(p.content),
					TTL:     cloudflare.F(cfdns.TTL(p.ttl)),
					Proxied: cloudflare.F(p.proxied),
					Comment: cloudflare.F(comment),
				},
			})
			if err == nil {
				return nil
			}
			err = classify(ctx, "cloudflare create "+host, err)
			if preview.CodeOf(err) == preview.AlreadyExists && attempt < maxAttempts {
				continue // a concurrent Ensure won; read again
			}
			return err
		}
		keep := ours[0]
		for _, extra := range ours[1:] {
			if err := p.delete(ctx, zoneID, host, extra.ID); err != nil {
				return err
			}
		}
		if keep.Type == cfdns.RecordResponseType(p.typ) && strings.EqualFold(keep.Content, p.content) &&
			keep.Proxied == p.proxied && int(keep.TTL) == p.ttl && keep.Comment == comment {
			return nil
		}
		_, err = p.records.Update(ctx, keep.ID, cfdns.RecordUpdateParams{
			ZoneID: cloudflare.F(zoneID),
			Body: cfdns.RecordUpdateParamsBody{
				Name:    cloudflare.F(host),
				Type:    cloudflare.F(cfdns.RecordUpdateParamsBodyType(p.typ)),
				Content: cloudflare.F(p.content),
				TTL:     cloudflare.F(cfdns.TTL(p.ttl)),
				Proxied: cloudflare.F(p.proxied),
				Comment: cloudflare.F(comment),
			},
		})
		if err == nil {
			return nil
		}
		err = classify(ctx, "cloudflare update "+host, err)
		if preview.IsNotFound(err) && attempt < maxAttempts {
			continue // removed meanwhile; read again
		}
		return err
	}
}

// Hosts lists the zone's records whose comment is Glimpse's (the API's
// comment.startswith filter, then decoded here) and returns the names of
// those whose labels match selector, sorted and without duplicates.
func (p *Provider) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	zoneID, err := p.zoneIDFor(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := p.list(ctx, cfdns.RecordListParams{
		ZoneID:  cloudflare.F(zoneID),
		Comment: cloudflare.F(cfdns.RecordListParamsComment{Startswith: cloudflare.F(ownership.Header)}),
	}, "cloudflare list records")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := []string{}
	for _, r := range recs {
		l, ok := ownership.Decode(r.Comment)
		if !ok || !managedType(r.Type) || !l.Matches(selector) {
			continue
		}
		h := strings.ToLower(r.Name)
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Remove deletes Glimpse's records at host. A host without records is
// success; records there that Glimpse does not own are left untouched
// (and that is success too, with a warning in the log). When one of
// several deletes fails, the error is returned and a later Remove deletes
// the rest.
func (p *Provider) Remove(ctx context.Context, host string) error {
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	zoneID, err := p.zoneIDFor(ctx)
	if err != nil {
		return err
	}
	ours, foreign, err := p.at(ctx, zoneID, host)
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		p.log.WarnContext(ctx, "cloudflare: not removing records that Glimpse does not own", "host", host, "records", len(foreign))
	}
	for _, r := range ours {
		if err := p.delete(ctx, zoneID, host, r.ID); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) delete(ctx context.Context, zoneID, host, id string) error {
	_, err := p.records.Delete(ctx, id, cfdns.RecordDeleteParams{ZoneID: cloudflare.F(zoneID)})
	return preview.IgnoreNotFound(classify(ctx, "cloudflare delete "+host, err))
}

// at returns the A, AAAA and CNAME records named host: Glimpse's and the
// others.
func (p *Provider) at(ctx context.Context, zoneID, host string) (ours, foreign []cfdns.RecordResponse, err error) {
	recs, err := p.list(ctx, cfdns.RecordListParams{
		ZoneID: cloudflare.F(zoneID),
		Name:   cloudflare.F(cfdns.RecordListParamsName{Exact: cloudflare.F(host)}),
	}, "cloudflare list "+host)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		if !strings.EqualFold(r.Name, host) || !managedType(r.Type) {
			continue
		}
		if _, ok := ownership.Decode(r.Comment); ok {
			ours = append(ours, r)
		} else {
			foreign = append(foreign, r)
		}
	}
	return ours, foreign, nil
}

func managedType(t cfdns.RecordResponseType) bool {
	return t == "CNAME" || t == "A" || t == "AAAA"
}

func (p *Provider) list(ctx context.Context, params cfdns.RecordListParams, what string) ([]cfdns.RecordResponse, error) {
	params.PerPage = cloudflare.F(float64(p.perPage))
	pager := p.records.ListAutoPaging(ctx, params)
	var out []cfdns.RecordResponse
	for pager.Next() {
		out = append(out, pager.Current())
	}
	if err := pager.Err(); err != nil {
		return nil, classify(ctx, what, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// zoneIDFor returns the zone's ID, looking a zone name up once.
func (p *Provider) zoneIDFor(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zoneID != "" {
		return p.zoneID, nil
	}
	page, err := p.zones.List(ctx, zones.ZoneListParams{Name: cloudflare.F(p.zone)})
	if err != nil {
		return "", classify(ctx, "cloudflare zone "+p.zone, err)
	}
	for _, z := range page.Result {
		if strings.EqualFold(z.Name, p.zone) {
			p.zoneID = z.ID
			return z.ID, nil
		}
	}
	return "", preview.Errorf(preview.NotFound, "cloudflare zone %s: not found (or the token may not read it)", p.zone)
}

// classify gives an SDK error its code; the SDK error stays reachable.
func classify(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return preview.WithCode(preview.DeadlineExceeded, fmt.Errorf("%s: %w", what, err))
		}
		return preview.WithCode(preview.Canceled, fmt.Errorf("%s: %w", what, err))
	}
	var apiErr *cfdns.Error
	if !errors.As(err, &apiErr) {
		return preview.WithCode(preview.Unavailable, fmt.Errorf("%s: %w", what, err))
	}
	msg := describe(apiErr)
	wrapped := &oneLine{msg: fmt.Sprintf("%s: %d %s", what, apiErr.StatusCode, msg), err: err}
	for _, e := range apiErr.Errors {
		switch e.Code {
		case 10000, 9109, 6003, 6111:
			return preview.WithCode(preview.PermissionDenied, wrapped)
		case 81057, 81053, 81058:
			return preview.WithCode(preview.AlreadyExists, wrapped)
		case 7003, 7000, 81044:
			return preview.WithCode(preview.NotFound, wrapped)
		}
	}
	switch s := apiErr.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return preview.WithCode(preview.PermissionDenied, wrapped)
	case s == http.StatusNotFound:
		return preview.WithCode(preview.NotFound, wrapped)
	case s == http.StatusTooManyRequests:
		return preview.WithCode(preview.ResourceExhausted, wrapped)
	case s >= 500:
		return preview.WithCode(preview.Unavailable, wrapped)
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		return preview.WithCode(preview.InvalidArgument, wrapped)
	}
	return wrapped
}

func describe(e *cfdns.Error) string {
	var parts []string
	for _, d := range e.Errors {
		parts = append(parts, fmt.Sprintf("%d %s", d.Code, strings.ReplaceAll(d.Message, "\n", " ")))
	}
	if len(parts) == 0 {
		return http.StatusText(e.StatusCode)
	}
	return strings.Join(parts, "; ")
}

// oneLine is an SDK error with a one-line message (the SDK's own message
// embeds the raw JSON body); Unwrap reaches the SDK error.
type oneLine struct {
	msg string
	err error
}

func (e *oneLine) Error() string { return e.msg }
func (e *oneLine) Unwrap() error { return e.err }

// Package rfc2136dns is a preview.DNS that keeps each preview's record on an
// authoritative server by RFC 2136 dynamic updates signed with TSIG
// (hmac-sha256), for teams running BIND, PowerDNS, Knot or any other server
// that accepts them.
//
// For host h in zone z it writes two record sets: the preview's record at h
// (a CNAME to the configured target, or an A record) and, at the companion
// name _glimpse.h, a TXT record whose strings are the ownership labels in
// the versioned form of dns/internal/ownership ("glimpse/1", "app=hello",
// "pr=42", ...). The labels cannot sit at h itself because a CNAME allows no
// other data at its name. A host is Glimpse's only while that TXT record
// exists and decodes: Ensure refuses (FailedPrecondition) to replace a
// record at h that is not, and Remove leaves such a record alone.
//
// Every change is one update message with prerequisites on what was read
// just before (RFC 2136 section 2.4), so a concurrent writer makes it fail
// on the server instead of being overwritten; the provider then reads again
// and decides again, a few times, before it reports Aborted.
//
// Hosts reads the zone by AXFR (signed with the same key), so the server
// must allow the key to transfer the zone; it lists the names whose
// companion TXT record matches the selector.
//
// URL (registered as rfc2136 in preview.DNSProviders):
//
//	rfc2136://HOST[:PORT]/ZONE?target=edge.example.com[&ttl=60]
//	rfc2136://HOST[:PORT]/ZONE?a=203.0.113.7[&ttl=60]
//
// The port defaults to 53. The key comes from the environment, never the
// URL: GLIMPSE_TSIG_KEY is the key's name and GLIMPSE_TSIG_SECRET its
// base64 secret. Unknown query parameters are errors.
//
// Errors: a server that refuses the update (REFUSED), or a TSIG failure
// (NOTAUTH with BADSIG/BADKEY/BADTIME, or a response whose signature does
// not verify) is PermissionDenied; NOTAUTH without a TSIG error (the server
// is not authoritative for the zone) is NotFound; SERVFAIL, refused
// connections and network timeouts are Unavailable, or DeadlineExceeded when
// the context's deadline passed. Messages are one line.
package rfc2136dns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/glimpse-dev/glimpse/dns/internal/ownership"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.DNSProviders.
const Scheme = "rfc2136"

// Environment variables the URL opener reads the TSIG key from.
const (
	EnvTSIGKey    = "GLIMPSE_TSIG_KEY"
	EnvTSIGSecret = "GLIMPSE_TSIG_SECRET"
)

// CompanionPrefix is the first label of the name that holds a host's
// ownership TXT record.
const CompanionPrefix = "_glimpse"

// DefaultTTL is the TTL of records when Options.TTL is zero.
const DefaultTTL = 60 * time.Second

// maxAttempts bounds how often a change is re-read and retried after a
// concurrent writer made its prerequisites fail.
const maxAttempts = 5

func init() {
	preview.DNSProviders.Register(Scheme, openURL)
}

// TSIGKey is a TSIG key: its name and base64 secret. The algorithm is
// hmac-sha256.
type TSIGKey struct {
	Name   string
	Secret string
}

// Options configure a Provider. Exactly one of Target and A must be set.
type Options struct {
	// Target makes each host a CNAME to this name (such as the edge's
	// host name).
	Target string
	// A makes each host an A (or, for IPv6, AAAA) record with this address.
	A netip.Addr
	// TTL of the records; zero means DefaultTTL.
	TTL time.Duration
	// Timeout bounds each exchange with the server when the context has
	// no earlier deadline; zero means 10s.
	Timeout time.Duration
	// Logger receives the provider's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Provider is the RFC 2136 preview.DNS. It is safe for concurrent use.
type Provider struct {
	server  string // host:port
	zone    string // fully qualified, lower case
	key     TSIGKey
	keyFQDN string
	target  string // fully qualified CNAME target, or ""
	addr    netip.Addr
	ttl     uint32
	timeout time.Duration
	log     *slog.Logger
}

var _ preview.DNS = (*Provider)(nil)

// New returns a provider that updates zone on server (host:port) signed
// with key. It checks its arguments and does no I/O.
func New(server, zone string, key TSIGKey, opts *Options) (*Provider, error) {
	if opts == nil {
		opts = &Options{}
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 server %q is not host:port", server)
	}
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	if err := preview.ValidateHost(zone); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 zone: %v", err)
	}
	if key.Name == "" || key.Secret == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 needs a TSIG key: set %s and %s", EnvTSIGKey, EnvTSIGSecret)
	}
	if _, err := base64.StdEncoding.DecodeString(key.Secret); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 TSIG secret is not base64")
	}
	p := &Provider{
		server:  server,
		zone:    dns.Fqdn(zone),
		key:     key,
		keyFQDN: dns.Fqdn(strings.ToLower(key.Name)),
		addr:    opts.A,
		timeout: opts.Timeout,
		log:     opts.Logger,
	}
	switch {
	case opts.Target != "" && opts.A.IsValid():
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136: give a CNAME target or an address, not both")
	case opts.Target != "":
		t := strings.ToLower(strings.TrimSuffix(opts.Target, "."))
		if err := preview.ValidateHost(t); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 target: %v", err)
		}
		p.target = dns.Fqdn(t)
	case opts.A.IsValid():
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 needs target=NAME (a CNAME) or a=IP (an A record)")
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second || ttl > 24*time.Hour*365 {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 ttl %v out of range", ttl)
	}
	p.ttl = uint32(ttl / time.Second)
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.DNS, error) {
	q, err := preview.QueryParams(u, "target", "a", "ttl")
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 URL needs a server, such as rfc2136://ns1.example.com:53/example.com?target=edge.example.com")
	}
	server := u.Host
	if u.Port() == "" {
		server = net.JoinHostPort(u.Hostname(), "53")
	}
	zone := strings.Trim(u.Path, "/")
	if zone == "" || strings.Contains(zone, "/") {
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 URL needs the zone as its path, such as rfc2136://%s/example.com", u.Host)
	}
	opts := &Options{Target: q.Get("target"), Logger: o.Log()}
	if v := q.Get("a"); v != "" {
		if opts.A, err = netip.ParseAddr(v); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "a=%q is not an IP address", v)
		}
	}
	if v := q.Get("ttl"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, preview.Errorf(preview.InvalidArgument, "ttl=%q is not a positive number of seconds", v)
		}
		opts.TTL = time.Duration(n) * time.Second
	}
	return New(server, zone, TSIGKey{Name: o.Env(EnvTSIGKey), Secret: o.Env(EnvTSIGSecret)}, opts)
}

// state is what the server holds for one host.
type state struct {
	owner   *dns.TXT // the companion TXT record, nil when there is none
	labels  preview.Labels
	ours    bool // owner decodes as Glimpse's labels
	foreign bool // the host has data and no Glimpse ownership
}

// Ensure creates host's record (CNAME to the target, or A) and its
// ownership TXT record, or replaces both when they are Glimpse's. It is
// idempotent. A host that already has records Glimpse does not own is
// FailedPrecondition and nothing changes. The change is one atomic update;
// on a partial failure nothing changed.
func (p *Provider) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	name, err := p.name(host)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	txt, err := p.ownerTXT(name, labels)
	if err != nil {
		return err
	}
	rec := p.record(name)
	for attempt := 1; ; attempt++ {
		st, err := p.read(ctx, name)
		if err != nil {
			return err
		}
		if st.foreign {
			return preview.Errorf(preview.FailedPrecondition, "rfc2136: %s already has records that Glimpse does not own (no %s TXT record); not replacing them", host, CompanionPrefix)
		}
		if st.ours && st.labels != nil && sameRecord(ctx, p, name, rec) && sameTXT(st.owner, txt) {
			return nil
		}
		m := new(dns.Msg)
		m.SetUpdate(p.zone)
		if st.owner == nil {
			// Nothing there: both names must still be unused.
			m.NameNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name}}, &dns.ANY{Hdr: dns.RR_Header{Name: companion(name)}}})
		} else {
			m.Used([]dns.RR{st.owner})
		}
		m.RemoveRRset(p.managed(name))
		m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: companion(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
		m.Insert([]dns.RR{rec, txt})
		err = p.update(ctx, m, "ensure "+host)
		if !errors.Is(err, errPrereq) {
			return err
		}
		if attempt == maxAttempts {
			return preview.Errorf(preview.Aborted, "rfc2136 ensure %s: the records kept changing under concurrent writers", host)
		}
	}
}

// Hosts transfers the zone (AXFR) and returns the hosts whose ownership
// TXT record carries labels matching selector, sorted. A record without a
// Glimpse TXT record is never listed.
func (p *Provider) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bctx, cancel := p.bound(ctx)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(bctx, "tcp", p.server)
	if err != nil {
		return nil, p.classify(ctx, bctx, "rfc2136 transfer "+strings.TrimSuffix(p.zone, "."), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(bctx, func() { conn.Close() })
	defer stop()
	if dl, ok := bctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, TsigSecret: p.secrets()}
	m := new(dns.Msg)
	m.SetAxfr(p.zone)
	m.SetTsig(p.keyFQDN, dns.HmacSHA256, 300, time.Now().Unix())
	envs, err := tr.In(m, p.server)
	if err != nil {
		return nil, p.classify(ctx, bctx, "rfc2136 transfer "+strings.TrimSuffix(p.zone, "."), err)
	}
	out := []string{}
	seen := map[string]bool{}
	for env := range envs {
		if env.Error != nil {
			// Drain so that the reader goroutine ends.
			for range envs {
			}
			return nil, p.classify(ctx, bctx, "rfc2136 transfer "+strings.TrimSuffix(p.zone, "."), env.Error)
		}
		for _, rr := range env.RR {
			t, ok := rr.(*dns.TXT)
			if !ok {
				continue
			}
			host, ok := strings.CutPrefix(strings.ToLower(t.Hdr.Name), CompanionPrefix+".")
			if !ok {
				continue
			}
			l, ok := ownership.DecodeTokens(t.Txt)
			if !ok || !l.Matches(selector) {
				continue
			}
			host = strings.TrimSuffix(host, ".")
			if !seen[host] {
				seen[host] = true
				out = append(out, host)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// Remove deletes host's record and its ownership TXT record when Glimpse
// owns them. A host without records is success; a host whose records
// Glimpse does not own is left untouched and is success too (there is no
// Glimpse record to remove), with a warning in the log. It is one atomic
// update.
func (p *Provider) Remove(ctx context.Context, host string) error {
	name, err := p.name(host)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		st, err := p.read(ctx, name)
		if err != nil {
			return err
		}
		if st.foreign {
			p.log.WarnContext(ctx, "rfc2136: not removing records that Glimpse does not own", "host", host)
			return nil
		}
		if st.owner == nil {
			return nil
		}
		m := new(dns.Msg)
		m.SetUpdate(p.zone)
		m.Used([]dns.RR{st.owner})
		m.RemoveRRset(p.managed(name))
		m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: companion(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
		err = p.update(ctx, m, "remove "+host)
		if !errors.Is(err, errPrereq) {
			return err
		}
		if attempt == maxAttempts {
			return preview.Errorf(preview.Aborted, "rfc2136 remove %s: the records kept changing under concurrent writers", host)
		}
	}
}

// name validates host and returns it fully qualified.
func (p *Provider) name(host string) (string, error) {
	if err := preview.ValidateHost(host); err != nil {
		return "", err
	}
	fq := dns.Fqdn(host)
	if fq == p.zone || !strings.HasSuffix(fq, "."+p.zone) {
		return "", preview.Errorf(preview.InvalidArgument, "rfc2136: host %q is not inside zone %s", host, strings.TrimSuffix(p.zone, "."))
	}
	return fq, nil
}

func companion(name string) string { return CompanionPrefix + "." + name }

func (p *Provider) ownerTXT(name string, labels preview.Labels) (*dns.TXT, error) {
	toks := ownership.Tokens(labels)
	for _, t := range toks {
		if len(t) > 255 {
			return nil, preview.Errorf(preview.InvalidArgument, "rfc2136: label %.40q... is longer than a TXT string (255 bytes)", t)
		}
	}
	return &dns.TXT{Hdr: dns.RR_Header{Name: companion(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: p.ttl}, Txt: toks}, nil
}

// record returns the preview's record at name.
func (p *Provider) record(name string) dns.RR {
	if p.target != "" {
		return &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: p.ttl}, Target: p.target}
	}
	if p.addr.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: p.ttl}, A: p.addr.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: p.ttl}, AAAA: p.addr.AsSlice()}
}

// managed returns the record sets at name that Glimpse writes, for
// deletion: whatever the configuration was when they were written.
func (p *Provider) managed(name string) []dns.RR {
	var out []dns.RR
	for _, t := range []uint16{dns.TypeCNAME, dns.TypeA, dns.TypeAAAA} {
		out = append(out, &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET}})
	}
	return out
}

// read queries the server for host's ownership TXT record and its data.
func (p *Provider) read(ctx context.Context, name string) (state, error) {
	var st state
	txt, err := p.query(ctx, companion(name), dns.TypeTXT)
	if err != nil {
		return st, err
	}
	for _, rr := range txt {
		if t, ok := rr.(*dns.TXT); ok {
			st.owner = t
			st.labels, st.ours = ownership.DecodeTokens(t.Txt)
			break
		}
	}
	if st.owner != nil && len(txt) > 1 {
		st.ours = false // more than one TXT record: someone else writes there too
	}
	if st.ours {
		return st, nil
	}
	data, err := p.query(ctx, name, dns.TypeANY)
	if err != nil {
		return st, err
	}
	st.foreign = len(data) > 0 || st.owner != nil
	return st, nil
}

// query returns the records of type t at name, from the server itself.
func (p *Provider) query(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.RecursionDesired = false
	r, err := p.exchange(ctx, m, "query "+strings.TrimSuffix(name, "."))
	if err != nil {
		return nil, err
	}
	if r.Rcode == dns.RcodeNameError {
		return nil, nil
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if strings.EqualFold(rr.Header().Name, name) && (t == dns.TypeANY || rr.Header().Rrtype == t) {
			out = append(out, rr)
		}
	}
	return out, nil
}

// errPrereq marks an update whose prerequisites failed: someone changed
// the records since they were read.
var errPrereq = errors.New("prerequisite failed")

func (p *Provider) update(ctx context.Context, m *dns.Msg, what string) error {
	_, err := p.exchange(ctx, m, what)
	return err
}

// exchange sends m signed over TCP and classifies the outcome.
func (p *Provider) exchange(ctx context.Context, m *dns.Msg, what string) (*dns.Msg, error) {
	bctx, cancel := p.bound(ctx)
	defer cancel()
	m.SetTsig(p.keyFQDN, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: p.secrets()}
	r, _, err := c.ExchangeContext(bctx, m, p.server)
	if r != nil {
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			return nil, preview.Errorf(preview.PermissionDenied, "rfc2136 %s: TSIG key %s rejected (%s)", what, strings.TrimSuffix(p.keyFQDN, "."), rcodeName(int(t.Error)))
		}
	}
	if err != nil {
		return nil, p.classify(ctx, bctx, "rfc2136 "+what, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return r, nil
	case dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset:
		return nil, fmt.Errorf("rfc2136 %s: %s: %w", what, rcodeName(r.Rcode), errPrereq)
	case dns.RcodeRefused:
		return nil, preview.Errorf(preview.PermissionDenied, "rfc2136 %s: %s refused it (is key %s allowed to update zone %s?)", what, p.server, strings.TrimSuffix(p.keyFQDN, "."), strings.TrimSuffix(p.zone, "."))
	case dns.RcodeNotAuth:
		return nil, preview.Errorf(preview.NotFound, "rfc2136 %s: %s is not authoritative for zone %s", what, p.server, strings.TrimSuffix(p.zone, "."))
	case dns.RcodeNotZone:
		return nil, preview.Errorf(preview.InvalidArgument, "rfc2136 %s: name outside zone %s", what, strings.TrimSuffix(p.zone, "."))
	case dns.RcodeNotImplemented:
		return nil, preview.Errorf(preview.Unimplemented, "rfc2136 %s: %s does not implement it", what, p.server)
	case dns.RcodeServerFailure:
		return nil, preview.Errorf(preview.Unavailable, "rfc2136 %s: %s answered SERVFAIL", what, p.server)
	default:
		return nil, preview.Errorf(preview.Internal, "rfc2136 %s: %s answered %s", what, p.server, rcodeName(r.Rcode))
	}
}

func (p *Provider) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < p.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.timeout)
}

func (p *Provider) secrets() map[string]string { return map[string]string{p.keyFQDN: p.key.Secret} }

// classify gives a transport error its code. ctx is the caller's context,
// bctx the one bounded by the provider's timeout.
func (p *Provider) classify(ctx, bctx context.Context, what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The connection's deadline is bctx's; its timer may fire a
		// moment after the read gave up.
		select {
		case <-bctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return preview.WithCode(preview.DeadlineExceeded, err)
		}
		return preview.WithCode(preview.Canceled, err)
	}
	switch {
	case errors.Is(err, dns.ErrSig), errors.Is(err, dns.ErrTime), errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg), errors.Is(err, dns.ErrAuth):
		return preview.WithCode(preview.PermissionDenied, err)
	case strings.Contains(err.Error(), "bad xfr rcode"):
		// dns.Transfer reports the server's answer only as text.
		if strings.HasSuffix(err.Error(), ": "+strconv.Itoa(dns.RcodeRefused)) || strings.HasSuffix(err.Error(), ": "+strconv.Itoa(dns.RcodeNotAuth)) {
			return preview.WithCode(preview.PermissionDenied, err)
		}
		return preview.WithCode(preview.Unavailable, err)
	}
	// Refused connections, resets, timeouts without the context's
	// deadline, short reads: the server may answer next time.
	return preview.WithCode(preview.Unavailable, err)
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

// sameRecord reports whether name already holds exactly rec.
func sameRecord(ctx context.Context, p *Provider, name string, rec dns.RR) bool {
	got, err := p.query(ctx, name, rec.Header().Rrtype)
	if err != nil || len(got) != 1 {
		return false
	}
	return dns.IsDuplicate(got[0], rec) && got[0].Header().Ttl == rec.Header().Ttl
}

func sameTXT(a, b *dns.TXT) bool {
	return a != nil && b != nil && slices.Equal(a.Txt, b.Txt) && a.Hdr.Ttl == b.Hdr.Ttl
}

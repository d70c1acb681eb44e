package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// ttl is the time to live of the records, in seconds: short, since
// previews come and go.
const ttl = 60

// commentAccount marks the rrsets this provider owns; their comment holds
// the Glimpse labels as JSON.
const commentAccount = "glimpse"

// PDNS is a Glimpse DNS provider over the PowerDNS authoritative server's
// HTTP API. Each preview host gets one rrset (A or AAAA when the target is
// an IP address, CNAME otherwise) whose comment carries its labels. Ensure
// and Remove are idempotent (REPLACE and DELETE of the rrset); PowerDNS
// applies each PATCH atomically, so a failed call changes nothing. It is
// safe for concurrent use; writes are serialised because PowerDNS's
// sqlite backend refuses concurrent writers.
type PDNS struct {
	api    string // http://host:port/api/v1/servers/<server>/zones/<zone>.
	key    string
	zone   string // "example.test", no trailing dot
	target string
	rtype  string
	http   *http.Client
	write  sync.Mutex
}

// New opens the provider for u: pdns://HOST:PORT/ZONE?target=T[&server=S],
// with the API key in key (from PDNS_API_KEY, never in the URL).
func New(u *url.URL, key string) (*PDNS, error) {
	q := u.Query()
	for k := range q {
		if k != "target" && k != "server" {
			return nil, preview.Errorf(preview.InvalidArgument, "pdns URL: unknown parameter %q (known: target, server)", k)
		}
	}
	zone := strings.Trim(u.Path, "/")
	if u.Host == "" || zone == "" || q.Get("target") == "" {
		return nil, preview.Errorf(preview.InvalidArgument, "pdns URL %q: want pdns://HOST:PORT/ZONE?target=ADDRESS", u.Redacted())
	}
	if key == "" {
		return nil, preview.Errorf(preview.PermissionDenied, "pdns: PDNS_API_KEY is not set")
	}
	server := q.Get("server")
	if server == "" {
		server = "localhost"
	}
	p := &PDNS{key: key, zone: zone, target: q.Get("target"), http: &http.Client{}, rtype: "CNAME"}
	p.api = "http://" + u.Host + "/api/v1/servers/" + url.PathEscape(server) + "/zones/" + url.PathEscape(zone+".")
	if ip := net.ParseIP(p.target); ip != nil {
		p.rtype = map[bool]string{true: "A", false: "AAAA"}[ip.To4() != nil]
	} else if !strings.HasSuffix(p.target, ".") {
		p.target += "."
	}
	return p, nil
}

type rrset struct {
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	TTL        int       `json:"ttl,omitempty"`
	ChangeType string    `json:"changetype,omitempty"`
	Records    []record  `json:"records"`
	Comments   []comment `json:"comments"`
}

type record struct {
	Content  string `json:"content"`
	Disabled bool   `json:"disabled"`
}

type comment struct {
	Content string `json:"content"`
	Account string `json:"account"`
}

// call sends one API request and decodes the answer into out (when not
// nil), classifying every failure with a preview code.
func (p *PDNS) call(ctx context.Context, method, query string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.api+query, r)
	if err != nil {
		return preview.WithCode(preview.InvalidArgument, err)
	}
	req.Header.Set("X-API-Key", p.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return preview.WithCode(preview.CodeOf(cerr), cerr)
		}
		return preview.Errorf(preview.Unavailable, "powerdns %s: %v", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return preview.Errorf(preview.CodeOfHTTPStatus(resp.StatusCode), "powerdns %s zone %s: %s: %s", method, p.zone, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	return preview.WithCode(preview.Internal, json.NewDecoder(resp.Body).Decode(out))
}

// check validates host and returns its rrset name (with the final dot).
func (p *PDNS) check(host string) (string, error) {
	if err := preview.ValidateHost(host); err != nil {
		return "", preview.WithCode(preview.InvalidArgument, err)
	}
	if !strings.HasSuffix(host, "."+p.zone) {
		return "", preview.Errorf(preview.InvalidArgument, "host %q is not in zone %s", host, p.zone)
	}
	return host + ".", nil
}

func (p *PDNS) patch(ctx context.Context, set rrset) error {
	p.write.Lock()
	defer p.write.Unlock()
	return p.call(ctx, http.MethodPatch, "", map[string][]rrset{"rrsets": {set}}, nil)
}

// Ensure creates or replaces host's record, labelled with labels.
func (p *PDNS) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	name, err := p.check(host)
	if err != nil {
		return err
	}
	l, _ := json.Marshal(labels)
	return p.patch(ctx, rrset{Name: name, Type: p.rtype, TTL: ttl, ChangeType: "REPLACE",
		Records: []record{{Content: p.target}}, Comments: []comment{{Content: string(l), Account: commentAccount}}})
}

// Remove deletes host's record; a missing one is success.
func (p *PDNS) Remove(ctx context.Context, host string) error {
	name, err := p.check(host)
	if err != nil {
		return err
	}
	return p.patch(ctx, rrset{Name: name, Type: p.rtype, ChangeType: "DELETE", Records: []record{}, Comments: []comment{}})
}

// Hosts lists the hosts of this provider's records whose labels match
// selector.
func (p *PDNS) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	var zone struct{ RRsets []rrset }
	if err := p.call(ctx, http.MethodGet, "?rrsets=true", nil, &zone); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range zone.RRsets {
		for _, c := range s.Comments {
			var l preview.Labels
			if s.Type == p.rtype && c.Account == commentAccount && json.Unmarshal([]byte(c.Content), &l) == nil && l.Matches(selector) {
				out = append(out, strings.TrimSuffix(s.Name, "."))
				break
			}
		}
	}
	return out, nil
}

var _ preview.DNS = (*PDNS)(nil)

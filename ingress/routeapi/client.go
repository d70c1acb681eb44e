package routeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/internal/basicauth"
	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme of the admin API client this package registers
// in preview.Routers: edge://host:port (plain HTTP), or
// edge://host:port?tls=true for HTTPS.
const Scheme = "edge"

// AdminUser is the basic-auth user of the admin API.
const AdminUser = basicauth.User

func init() {
	preview.Routers.Register(Scheme, openClient)
}

// openClient opens an edge:// URL. The password comes from GLIMPSE_PASSWORD,
// else from <home>/gateway-password (the file the daemon writes), else none
// is sent.
func openClient(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.Router, error) {
	q, err := preview.QueryParams(u, "tls")
	if err != nil {
		return nil, err
	}
	if u.Host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") {
		return nil, preview.Errorf(preview.InvalidArgument, "want edge://host:port")
	}
	scheme := "http"
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "tls=%q is not a boolean", v)
		}
		if on {
			scheme = "https"
		}
	}
	pw := o.Env("GLIMPSE_PASSWORD")
	if pw == "" && o.Home != "" {
		if b, err := os.ReadFile(filepath.Join(o.Home, "gateway-password")); err == nil {
			pw = strings.TrimSpace(string(b))
		}
	}
	return NewClient(scheme+"://"+u.Host, pw, nil), nil
}

// Client is a preview.Router that drives a Router (the daemon's edge)
// through its route API (Handler). It is safe for concurrent use. Its errors carry the code
// the server reported, or one derived from the HTTP status; a server that
// cannot be reached is Unavailable.
type Client struct {
	base     string
	password string
	hc       *http.Client
}

var _ preview.Router = (*Client)(nil)

// NewClient returns a client of the admin API at baseURL
// ("http://127.0.0.1:8080"). A non-empty password is sent with basic auth
// as user AdminUser. hc nil means a client with a 30 s timeout.
func NewClient(baseURL, password string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), password: password, hc: hc}
}

// SetRoute stores r for r.Host when the stored route's Version equals
// r.Version (PUT; see preview.Router) and returns the route as stored. A
// version that does not match is Aborted.
func (c *Client) SetRoute(ctx context.Context, r preview.Route) (preview.Route, error) {
	host := preview.NormalizeHost(r.Host)
	if err := preview.ValidateHost(host); err != nil {
		return preview.Route{}, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return preview.Route{}, preview.Errorf(preview.InvalidArgument, "route: %v", err)
	}
	var stored preview.Route
	if err := c.do(ctx, http.MethodPut, AdminPath+"/"+url.PathEscape(host), body, &stored); err != nil {
		return preview.Route{}, err
	}
	return stored, nil
}

// Route returns the route for host, or NotFound.
func (c *Client) Route(ctx context.Context, host string) (preview.Route, error) {
	var rt preview.Route
	err := c.do(ctx, http.MethodGet, AdminPath+"/"+url.PathEscape(preview.NormalizeHost(host)), nil, &rt)
	return rt, err
}

// Routes lists the routes whose labels match selector.
func (c *Client) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	p := AdminPath
	if len(selector) > 0 {
		p += "?selector=" + url.QueryEscape(FormatSelector(selector))
	}
	var list RouteList
	if err := c.do(ctx, http.MethodGet, p, nil, &list); err != nil {
		return nil, err
	}
	if list.Routes == nil {
		list.Routes = []preview.Route{}
	}
	return list.Routes, nil
}

// Activity returns the server's per-function activity (the edge's);
// the client thus satisfies preview.ActivityReporter.
func (c *Client) Activity(ctx context.Context) ([]preview.Activity, error) {
	var list ActivityList
	if err := c.do(ctx, http.MethodGet, ActivityPath, nil, &list); err != nil {
		return nil, err
	}
	return list.Functions, nil
}

// DeleteRoute removes the route for host; a missing route is success.
func (c *Client) DeleteRoute(ctx context.Context, host string) error {
	host = preview.NormalizeHost(host)
	if host == "" {
		return preview.Errorf(preview.InvalidArgument, "host must not be empty")
	}
	return preview.IgnoreNotFound(c.do(ctx, http.MethodDelete, AdminPath+"/"+url.PathEscape(host), nil, nil))
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "edge: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.password != "" {
		req.SetBasicAuth(AdminUser, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return preview.WithCode(preview.Unavailable, fmt.Errorf("edge: %s %s: %w", method, c.base+path, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return preview.WithCode(preview.Unavailable, fmt.Errorf("edge: %s %s: reading response: %w", method, path, err))
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		code := preview.CodeOfHTTPStatus(resp.StatusCode)
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			msg = eb.Error
			if c, ok := preview.ParseCode(eb.Code); ok && c != preview.Unknown {
				code = c
			}
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return preview.Errorf(code, "edge: %s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return preview.Errorf(preview.Internal, "edge: %s %s: bad response: %v", method, path, err)
		}
	}
	return nil
}

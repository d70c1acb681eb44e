package githubloop

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v89/github"

	"github.com/glimpse-dev/glimpse/preview"
)

// EnvAppKeyFile names the file with a GitHub App's private key (PEM), the
// environment alternative to `glimpse serve --github-app-key-file`.
const EnvAppKeyFile = "GLIMPSE_GITHUB_APP_KEY_FILE"

// tokenMargin is how long before its expires_at an installation token is
// replaced: calls in flight with it must not see it expire.
const tokenMargin = 5 * time.Minute

// AppAuth authenticates as an installation of a GitHub App, as
// docs.github.com documents it ("Authenticating as a GitHub App
// installation"): a JWT signed RS256 with the app's private key (claims
// iat 60 s in the past against clock drift, exp 9 minutes ahead, under
// GitHub's 10-minute limit, and iss the app's ID or client ID; see
// "Generating a JSON Web Token (JWT) for a GitHub App") is exchanged by
// POST /app/installations/{id}/access_tokens (answered 201 with token and
// expires_at) for an installation token, which is cached and replaced 5
// minutes before its expires_at (GitHub's are valid for one hour).
//
// The installation is the one of the repository when InstallationID is 0
// (GET /repos/{owner}/{repo}/installation, with the JWT), found once.
// Tokens and the JWT never appear in errors or logs. It is safe for
// concurrent use: concurrent callers share one refresh.
type AppAuth struct {
	// AppID is the iss claim: the app's ID or its client ID.
	AppID string
	// InstallationID is the installation; 0 finds the repository's.
	InstallationID int64
	// Owner and Repo name the repository, for finding the installation.
	Owner, Repo string
	Key         *rsa.PrivateKey
	// APIURL is the REST API's base URL; "" is https://api.github.com/.
	APIURL string
	// HTTPClient makes the token calls; default http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// ParseAppKey parses a GitHub App private key in PEM: PKCS#1 ("RSA
// PRIVATE KEY", the file GitHub lets you download) or PKCS#8.
func ParseAppKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, preview.Errorf(preview.InvalidArgument, "GitHub App private key: no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "GitHub App private key: neither PKCS#1 nor PKCS#8 RSA")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, preview.Errorf(preview.InvalidArgument, "GitHub App private key: not an RSA key (GitHub signs app JWTs with RS256)")
	}
	return rk, nil
}

func (a *AppAuth) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// JWT returns a new app JWT (RS256; iat, exp, iss as documented).
func (a *AppAuth) JWT() (string, error) {
	if a.Key == nil || a.AppID == "" {
		return "", preview.Errorf(preview.InvalidArgument, "GitHub App auth needs the app ID and its private key")
	}
	now := a.now().Unix()
	// iss: a numeric app ID is sent as a number, a client ID as a string.
	var iss any = a.AppID
	if n, err := json.Number(a.AppID).Int64(); err == nil {
		iss = n
	}
	claims, _ := json.Marshal(map[string]any{"iat": now - 60, "exp": now + 9*60, "iss": iss})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(nil, a.Key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing the GitHub App JWT: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// Token returns the installation token, from the cache while it is more
// than 5 minutes from its expiry, else a new one.
func (a *AppAuth) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.now().Before(a.expires.Add(-tokenMargin)) {
		return a.token, nil
	}
	return a.refresh(ctx)
}

// Invalidate drops tok from the cache (GitHub refused it: revoked, or the
// installation's permissions changed), so the next Token gets a new one.
// A token already replaced is left alone.
func (a *AppAuth) Invalidate(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == tok {
		a.token = ""
	}
}

// refresh gets a new installation token; a.mu is held.
func (a *AppAuth) refresh(ctx context.Context) (string, error) {
	jwt, err := a.JWT()
	if err != nil {
		return "", err
	}
	opts := []github.ClientOptionsFunc{github.WithAuthToken(jwt)}
	if a.HTTPClient != nil {
		opts = append(opts, github.WithHTTPClient(a.HTTPClient))
	}
	if a.APIURL != "" {
		u := strings.TrimSuffix(a.APIURL, "/") + "/"
		opts = append(opts, github.WithURLs(&u, &u))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return "", err
	}
	if a.InstallationID == 0 {
		inst, resp, err := c.Apps.GetRepositoryInstallation(ctx, a.Owner, a.Repo)
		if err != nil {
			return "", appError(resp, err, fmt.Sprintf("finding the GitHub App's installation on %s/%s", a.Owner, a.Repo))
		}
		a.InstallationID = inst.GetID()
	}
	tok, resp, err := c.Apps.CreateInstallationToken(ctx, a.InstallationID, nil)
	if err != nil {
		return "", appError(resp, err, fmt.Sprintf("getting a token of GitHub App installation %d", a.InstallationID))
	}
	if resp.StatusCode != http.StatusCreated || tok.GetToken() == "" || tok.ExpiresAt == nil {
		return "", preview.Errorf(preview.Unavailable, "getting a token of GitHub App installation %d: answer %d without token and expires_at", a.InstallationID, resp.StatusCode)
	}
	a.token, a.expires = tok.GetToken(), tok.ExpiresAt.Time
	return a.token, nil
}

// appError classifies a failed app call in one line; GitHub's message is
// kept, never a credential.
func appError(resp *github.Response, err error, what string) error {
	msg := err.Error()
	var ge *github.ErrorResponse
	if errors.As(err, &ge) {
		msg = ge.Message
	}
	code := preview.Unavailable
	if resp != nil {
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			code = preview.PermissionDenied
		case http.StatusNotFound:
			code = preview.NotFound
		}
	}
	return preview.WithCode(code, fmt.Errorf("%s: %s", what, oneLine(msg)))
}

// Transport returns an http.RoundTripper that sends each request over base
// (nil: http.DefaultTransport) with the installation token. A 401 drops
// the token and retries the request once with a new one when its body can
// be sent again.
func (a *AppAuth) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &appTransport{auth: a, base: base}
}

type appTransport struct {
	auth *AppAuth
	base http.RoundTripper
}

func (t *appTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := t.auth.Token(req.Context())
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
		if attempt > 0 && req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, err
		}
		t.auth.Invalidate(tok)
		if req.Body != nil && req.GetBody == nil {
			return resp, nil // the body is spent: the caller sees the 401
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}

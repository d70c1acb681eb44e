package ociregistry

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/glimpse-dev/glimpse/preview"
)

// IsLocalHost reports whether a registry host[:port] is on this machine:
// localhost, *.localhost or a loopback IP. Such hosts are spoken to over
// plain HTTP.
func IsLocalHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParseReference parses an image reference ("host/repo:tag",
// "host/repo@sha256:..."), choosing plain HTTP when insecure is set or the
// host is local (IsLocalHost). A malformed reference is an InvalidArgument
// error.
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "image reference %q: %s", ref, strings.Join(strings.Fields(err.Error()), " "))
	}
	// name.ParseReference lets through registries such as "h::" that
	// are no host[:port]; the pull would fail later, as an internal error.
	if u, err := url.Parse("https://" + r.Context().RegistryStr() + "/"); err != nil || u.Host != r.Context().RegistryStr() {
		return nil, preview.Errorf(preview.InvalidArgument, "image reference %q: registry %q is not a host[:port]", ref, r.Context().RegistryStr())
	}
	if insecure || IsLocalHost(r.Context().RegistryStr()) {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "image reference %q: %s", ref, strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	return r, nil
}

// Environment variables of the GitHub Container Registry credentials, as
// GitHub Actions names them: a token with the packages scopes and, when
// set, the user it belongs to.
const (
	EnvGitHubToken = "GITHUB_TOKEN"
	EnvGitHubActor = "GITHUB_ACTOR"
)

// Keychain returns the credentials Glimpse uses for registries, first match
// wins:
//  1. basic auth from EnvUsername/EnvPassword (read through getenv; nil
//     means os.Getenv) for host when either is set; an empty host applies
//     them to every registry;
//  2. the Docker configuration (authn.DefaultKeychain: ~/.docker/config.json
//     or $DOCKER_CONFIG, its auths and its credential helpers such as
//     docker-credential-ecr-login for ECR or docker-credential-gcloud);
//  3. for ghcr.io, EnvGitHubToken (user EnvGitHubActor, or "glimpse").
//
// Anything else is anonymous.
func Keychain(getenv func(string) string, host string) authn.Keychain {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &envKeychain{user: getenv(EnvUsername), pass: getenv(EnvPassword), host: host,
		ghToken: getenv(EnvGitHubToken), ghActor: getenv(EnvGitHubActor)}
}

type envKeychain struct {
	user, pass, host string
	ghToken, ghActor string
}

func (k *envKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if (k.user != "" || k.pass != "") && (k.host == "" || res.RegistryStr() == k.host) {
		return &authn.Basic{Username: k.user, Password: k.pass}, nil
	}
	a, err := authn.DefaultKeychain.Resolve(res)
	if err != nil || a != authn.Anonymous {
		return a, err
	}
	if k.ghToken != "" && res.RegistryStr() == "ghcr.io" {
		user := k.ghActor
		if user == "" {
			user = "glimpse"
		}
		return &authn.Basic{Username: user, Password: k.ghToken}, nil
	}
	return a, nil
}

// Classify attaches a preview.Code to an error from go-containerregistry,
// keeping the original reachable with errors.As:
//
//	ctx done                          Canceled / DeadlineExceeded
//	404, *_UNKNOWN                    NotFound
//	401, 403, DENIED, UNAUTHORIZED    PermissionDenied
//	405, UNSUPPORTED                  Unimplemented
//	429, TOOMANYREQUESTS              ResourceExhausted
//	other 4xx                         InvalidArgument
//	408, 502, 503, 504, UNAVAILABLE   Unavailable
//	dial failure (refused, DNS)       Unavailable
//	TLS failure, HTTP server          FailedPrecondition
//
// Errors that already carry a code keep it. nil stays nil.
func Classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c := preview.CodeOf(err); c != preview.Unknown {
		return preview.WithCode(c, err)
	}
	if ctx != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return preview.WithCode(preview.DeadlineExceeded, err)
		}
		return preview.WithCode(preview.Canceled, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return preview.WithCode(codeOfTransport(te), err)
	}
	var bad *name.ErrBadName
	if errors.As(err, &bad) {
		return preview.WithCode(preview.InvalidArgument, err)
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &dnsErr):
		return preview.WithCode(preview.Unavailable, err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return preview.WithCode(preview.Unavailable, err)
	}
	var certErr *x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return preview.WithCode(preview.FailedPrecondition, err)
	}
	return err
}

func codeOfTransport(te *transport.Error) preview.Code {
	for _, d := range te.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return preview.PermissionDenied
		case transport.UnsupportedErrorCode:
			return preview.Unimplemented
		case transport.TooManyRequestsErrorCode:
			return preview.ResourceExhausted
		case transport.UnavailableErrorCode:
			return preview.Unavailable
		case transport.NameUnknownErrorCode, transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.BlobUploadUnknownErrorCode:
			if te.StatusCode == http.StatusNotFound {
				return preview.NotFound
			}
		case transport.ManifestBlobUnknownErrorCode:
			return preview.FailedPrecondition
		}
	}
	switch s := te.StatusCode; {
	case s == http.StatusNotFound:
		return preview.NotFound
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		return preview.PermissionDenied
	case s == http.StatusMethodNotAllowed, s == http.StatusNotImplemented:
		return preview.Unimplemented
	case s == http.StatusTooManyRequests:
		return preview.ResourceExhausted
	case s == http.StatusRequestTimeout, s == http.StatusBadGateway, s == http.StatusServiceUnavailable, s == http.StatusGatewayTimeout:
		return preview.Unavailable
	case s == http.StatusRequestEntityTooLarge:
		return preview.ResourceExhausted
	case s >= 400 && s < 500:
		return preview.InvalidArgument
	case s >= 500:
		return preview.Internal
	}
	return preview.Unknown
}

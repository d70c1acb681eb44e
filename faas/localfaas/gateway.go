package localfaas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"

	"github.com/glimpse-dev/glimpse/internal/basicauth"
	"github.com/glimpse-dev/glimpse/preview"
)

// GatewayNamespace is the one namespace the gateway serves, the default
// function namespace of OpenFaaS. Requests that name another namespace are
// refused with 400, as faas-netes does.
const GatewayNamespace = "openfaas-fn"

// GatewayUser is the basic-auth user name of the gateway's /system API.
const GatewayUser = basicauth.User

// PasswordFile is the name, under the home directory, of the file that
// LoadOrCreatePassword keeps the gateway password in.
const PasswordFile = "gateway-password"

const maxRequestBody = 1 << 20

// GatewayHandler returns an http.Handler serving the OpenFaaS gateway API
// over this runtime, so the openfaas client and faas-cli can drive it:
//
//	GET    /system/functions                list (?namespace= accepted)
//	POST   /system/functions                deploy: 202; 409 if it exists
//	PUT    /system/functions                update: 202; 404 if missing
//	DELETE /system/functions                {"functionName"}: 202; 404 if missing
//	GET    /system/function/{name}          status: 200; 404 if missing
//	POST   /system/scale-function/{name}    {"serviceName","replicas"}: 202
//	GET    /system/info                     gateway info (faas-cli version)
//	GET    /system/namespaces               ["openfaas-fn"]
//	GET    /system/logs                     function logs as NDJSON (see logs)
//	GET    /system/secrets                  secret names (never values)
//	POST   /system/secrets                  {"name","value"|"rawValue"}: 202; 409 if it exists
//	PUT    /system/secrets                  replace: 202; 404 if missing
//	DELETE /system/secrets                  {"name"}: 202; 404 if missing
//	*      /function/{name}[/path]          proxy to the function
//	GET    /healthz                         200 (faas-cli ready)
//
// Bodies are faas-provider types. Deploying an existing function answers
// 409 Conflict with "already exists" in the body (faas-netes answers 500
// and faasd 400 with the same words; the openfaas client reads all three as
// AlreadyExists, and faas-cli never POSTs an existing function because it
// tries PUT first). Replicas above 1 are clamped to 1 and 0 is accepted
// (unlike OpenFaaS CE). Other errors map from their code: InvalidArgument
// 400, FailedPrecondition 412, PermissionDenied 403, ResourceExhausted 429,
// Unavailable 503, DeadlineExceeded 504, anything else 500.
//
// /system/* requires HTTP basic auth as user "admin" with password; an
// empty password refuses every /system call. /function/* needs no auth, as
// in OpenFaaS; a function scaled to zero is scaled to one by its first
// request (which waits until the process is ready), and every proxied
// request counts one invocation.
func (r *Runtime) GatewayHandler(password string) http.Handler {
	g := &gateway{r: r}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(proxyTargetKey{}).(proxyTarget)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.addr
			pr.Out.URL.Path = t.path
			pr.Out.URL.RawPath = t.rawPath
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			http.Error(w, "function unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	sys := http.NewServeMux()
	sys.HandleFunc("GET /system/functions", g.list)
	sys.HandleFunc("POST /system/functions", g.deploy(applyCreate))
	sys.HandleFunc("PUT /system/functions", g.deploy(applyUpdate))
	sys.HandleFunc("DELETE /system/functions", g.delete)
	sys.HandleFunc("GET /system/function/{name}", g.get)
	sys.HandleFunc("POST /system/scale-function/{name}", g.scale)
	sys.HandleFunc("GET /system/info", g.info)
	sys.HandleFunc("GET /system/namespaces", g.namespaces)
	sys.HandleFunc("GET /system/logs", g.logs)
	sys.HandleFunc("GET /system/secrets", g.listSecrets)
	sys.HandleFunc("POST /system/secrets", g.writeSecret(applyCreate))
	sys.HandleFunc("PUT /system/secrets", g.writeSecret(applyUpdate))
	sys.HandleFunc("DELETE /system/secrets", g.deleteSecret)

	mux := http.NewServeMux()
	mux.Handle("/system/", basicAuth(password, sys))
	// faas-cli ready polls the gateway's /healthz without credentials
	// (faas-cli commands/ready.go).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("/function/{name}", g.invoke)
	mux.HandleFunc("/function/{name}/{path...}", g.invoke)
	return mux
}

type gateway struct {
	r     *Runtime
	proxy *httputil.ReverseProxy
}

func basicAuth(password string, next http.Handler) http.Handler {
	return basicauth.Require(password, "unauthorized", next)
}

// checkNamespace answers 400 and returns false unless every namespace given
// is empty or GatewayNamespace.
func checkNamespace(w http.ResponseWriter, nss ...string) bool {
	for _, ns := range nss {
		if ns != "" && ns != GatewayNamespace {
			http.Error(w, "namespace must be: "+GatewayNamespace, http.StatusBadRequest)
			return false
		}
	}
	return true
}

func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxRequestBody))
	if err := dec.Decode(v); err != nil {
		http.Error(w, "cannot parse request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch preview.CodeOf(err) {
	case preview.NotFound:
		status = http.StatusNotFound
	case preview.AlreadyExists:
		status = http.StatusConflict
	case preview.InvalidArgument:
		status = http.StatusBadRequest
	case preview.FailedPrecondition:
		status = http.StatusPreconditionFailed
	case preview.PermissionDenied:
		status = http.StatusForbidden
	case preview.ResourceExhausted:
		status = http.StatusTooManyRequests
	case preview.Unavailable, preview.Canceled:
		status = http.StatusServiceUnavailable
	case preview.DeadlineExceeded:
		status = http.StatusGatewayTimeout
	case preview.Unimplemented:
		status = http.StatusNotImplemented
	}
	// One line, even when the error quotes a request's name unquoted.
	http.Error(w, strings.Join(strings.Fields(err.Error()), " "), status)
}

func (g *gateway) list(w http.ResponseWriter, req *http.Request) {
	if !checkNamespace(w, req.URL.Query().Get("namespace")) {
		return
	}
	out := []types.FunctionStatus{}
	for _, s := range g.r.snapshot("") {
		out = append(out, toStatus(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *gateway) get(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if !checkNamespace(w, req.URL.Query().Get("namespace")) {
		return
	}
	s := g.r.snapshot(name)
	if len(s) == 0 {
		http.Error(w, fmt.Sprintf("function %q not found", name), http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, toStatus(s[0]))
}

func (g *gateway) deploy(mode applyMode) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		var d types.FunctionDeployment
		if !decodeBody(w, req, &d) || !checkNamespace(w, req.URL.Query().Get("namespace"), d.Namespace) {
			return
		}
		if err := g.r.apply(req.Context(), fromDeployment(d), mode); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (g *gateway) delete(w http.ResponseWriter, req *http.Request) {
	var d types.DeleteFunctionRequest
	if !decodeBody(w, req, &d) || !checkNamespace(w, req.URL.Query().Get("namespace"), d.Namespace) {
		return
	}
	if d.FunctionName == "" {
		http.Error(w, "functionName is required", http.StatusBadRequest)
		return
	}
	existed, err := g.r.remove(req.Context(), d.FunctionName, 0)
	if err != nil {
		writeError(w, err)
		return
	}
	if !existed {
		http.Error(w, fmt.Sprintf("function %q not found", d.FunctionName), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (g *gateway) scale(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	var s types.ScaleServiceRequest
	if !decodeBody(w, req, &s) || !checkNamespace(w, req.URL.Query().Get("namespace"), s.Namespace) {
		return
	}
	if s.ServiceName != "" && s.ServiceName != name {
		http.Error(w, fmt.Sprintf("serviceName %q does not match the path's %q", s.ServiceName, name), http.StatusBadRequest)
		return
	}
	if _, err := g.r.Scale(req.Context(), name, int(min(s.Replicas, 1))); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// gatewayInfo has the JSON shape of the OpenFaaS gateway's /system/info
// (github.com/openfaas/faas/gateway/types.GatewayInfo), which faas-cli
// reads.
type gatewayInfo struct {
	Provider *types.ProviderInfo `json:"provider"`
	Version  *types.VersionInfo  `json:"version"`
	Arch     string              `json:"arch"`
}

func (g *gateway) info(w http.ResponseWriter, req *http.Request) {
	v := buildVersion()
	writeJSON(w, http.StatusOK, gatewayInfo{
		Provider: &types.ProviderInfo{Name: "localfaas", Orchestration: "process", Version: v},
		Version:  v,
		Arch:     runtime.GOARCH,
	})
}

func (g *gateway) namespaces(w http.ResponseWriter, req *http.Request) {
	writeJSON(w, http.StatusOK, []string{GatewayNamespace})
}

type proxyTargetKey struct{}

type proxyTarget struct{ addr, path, rawPath string }

// invoke proxies /function/{name}[/path] to the function's process. The
// name may carry the namespace as "name.openfaas-fn", as in OpenFaaS.
func (g *gateway) invoke(w http.ResponseWriter, req *http.Request) {
	seg := req.PathValue("name")
	name, ns, _ := strings.Cut(seg, ".")
	if ns != "" && ns != GatewayNamespace {
		http.Error(w, fmt.Sprintf("function %q not found", seg), http.StatusNotFound)
		return
	}
	addr, err := g.r.Endpoint(name)
	if errors.Is(err, ErrScaledToZero) {
		if _, err = g.r.Scale(req.Context(), name, 1); err == nil {
			err = ErrNotReady // fetch the address below
		}
	}
	if errors.Is(err, ErrNotReady) {
		ctx, cancel := context.WithTimeout(req.Context(), g.r.opts.ReadyTimeout)
		addr, err = g.r.WaitEndpoint(ctx, name)
		cancel()
	}
	if err != nil {
		writeError(w, err)
		return
	}
	g.r.CountInvocation(name)

	// The path after /function/{name}, kept escaped as the client sent it.
	rest := strings.TrimPrefix(req.URL.EscapedPath(), "/function/"+url.PathEscape(seg))
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	p, perr := url.PathUnescape(rest)
	if perr != nil {
		p, rest = "/"+req.PathValue("path"), ""
	}
	t := proxyTarget{addr: addr, path: p}
	if rest != p {
		t.rawPath = rest
	}
	g.proxy.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), proxyTargetKey{}, t)))
}

func fromDeployment(d types.FunctionDeployment) preview.Function {
	fn := preview.Function{Name: d.Service, Image: d.Image, Env: d.EnvVars, SecretNames: d.Secrets}
	if d.EnvProcess != "" {
		fn.Env = cloneMap(fn.Env)
		if fn.Env == nil {
			fn.Env = map[string]string{}
		}
		fn.Env["fprocess"] = d.EnvProcess
	}
	if d.Labels != nil {
		fn.Labels = preview.Labels(*d.Labels)
	}
	if d.Annotations != nil {
		fn.Annotations = *d.Annotations
	}
	return fn
}

func toStatus(s statusSnapshot) types.FunctionStatus {
	st := types.FunctionStatus{
		Name:              s.Name,
		Image:             s.Image,
		Namespace:         GatewayNamespace,
		EnvProcess:        s.Env["fprocess"],
		EnvVars:           s.Env,
		InvocationCount:   s.InvocationCount,
		Replicas:          uint64(s.Replicas),
		AvailableReplicas: uint64(s.AvailableReplicas),
		CreatedAt:         s.created,
		Secrets:           s.SecretNames,
	}
	if s.Labels != nil {
		l := map[string]string(s.Labels)
		st.Labels = &l
	}
	if s.Annotations != nil {
		a := s.Annotations
		st.Annotations = &a
	}
	if a := healthAnnotations(s.FunctionStatus); len(a) > 0 {
		m := map[string]string{}
		if st.Annotations != nil {
			m = maps.Clone(*st.Annotations)
		}
		maps.Copy(m, a)
		st.Annotations = &m
	}
	return st
}

func buildVersion() *types.VersionInfo {
	v := &types.VersionInfo{Release: "dev", SHA: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	const mod = "github.com/glimpse-dev/glimpse"
	if bi.Main.Path == mod && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Release = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			v.Release = d.Version
		}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.SHA = s.Value
		}
	}
	return v
}

// LoadOrCreatePassword returns the gateway password kept in
// home/gateway-password, creating the file (mode 0600, 32 random bytes as
// hex; home is created mode 0700 if missing) when it does not exist.
// Concurrent callers, in one process or several, all get the same
// password: the file appears atomically with its full content. A file
// that exists but is empty is an error.
func LoadOrCreatePassword(home string) (string, error) {
	p := filepath.Join(home, PasswordFile)
	if pw, err := readPassword(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pw, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", preview.WithCode(preview.Internal, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", preview.WithCode(preview.Internal, err)
	}
	pw := hex.EncodeToString(b)
	f, err := os.CreateTemp(home, "."+PasswordFile+"-*")
	if err != nil {
		return "", preview.WithCode(preview.Internal, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = io.WriteString(f, pw+"\n")
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", preview.WithCode(preview.Internal, err)
	}
	// Link fails when the file exists: somebody else won the race.
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readPassword(p)
		}
		return "", preview.WithCode(preview.Internal, err)
	}
	return pw, nil
}

func readPassword(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", preview.WithCode(preview.Internal, err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", preview.Errorf(preview.FailedPrecondition, "%s is empty; delete it to generate a new password", p)
	}
	return pw, nil
}

// statusSnapshot is a function's status plus what only the gateway shows.
type statusSnapshot struct {
	preview.FunctionStatus
	created time.Time
}

// snapshot returns the status of the named function (none when missing),
// or of every function when name is empty, sorted by name.
func (r *Runtime) snapshot(name string) []statusSnapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []statusSnapshot
	for n, e := range r.fns {
		if name == "" || n == name {
			out = append(out, statusSnapshot{e.status(), e.created})
		}
	}
	sortSnapshots(out)
	return out
}

func sortSnapshots(s []statusSnapshot) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}

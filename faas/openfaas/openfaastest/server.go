// Package openfaastest runs in-process emulations of OpenFaaS gateways for
// tests: faas-netes and faasd, called directly or behind the OpenFaaS CE
// gateway, reproducing where their REST answers differ. Each behaviour
// cites the source file it comes from (openfaas/faas-netes pkg/handlers,
// openfaas/faasd pkg/provider/handlers, openfaas/faas gateway); the
// functions themselves do not run. Behaviour of the closed-source
// Standard/Pro editions (Options.Pro) is assumed to be CE's without the
// limits.
package openfaastest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Provider selects whose answers the server reproduces.
type Provider int

// The emulated providers.
const (
	// FaasNetes is faas-netes, OpenFaaS on Kubernetes
	// (github.com/openfaas/faas-netes pkg/handlers).
	FaasNetes Provider = iota + 1
	// Faasd is faasd, OpenFaaS on containerd
	// (github.com/openfaas/faasd pkg/provider/handlers).
	Faasd
)

// String returns "faas-netes" or "faasd".
func (p Provider) String() string {
	switch p {
	case FaasNetes:
		return "faas-netes"
	case Faasd:
		return "faasd"
	}
	return "Provider(" + strconv.Itoa(int(p)) + ")"
}

// Options configure a Server.
type Options struct {
	// Provider is FaasNetes or Faasd (required).
	Provider Provider
	// Gateway puts the OpenFaaS CE gateway in front of the provider, as
	// every install does: it raises scale requests to between 1 and 5
	// replicas before the provider sees them (openfaas/faas
	// gateway/scaling/ranges.go), adds invocation counts to the list
	// (gateway/metrics/add_metrics.go) and serves /function/{name}.
	// Without it the server answers as the provider's own port does.
	Gateway bool
	// Pro drops the Community Edition limits: zero replicas are accepted
	// by gateway and provider, and there is no function limit.
	Pro bool
	// Namespaces are the function namespaces; the first is the default.
	// Default ["openfaas-fn"]. faas-netes CE serves only the default
	// ("namespace must be: openfaas-fn"); faasd any of them ("namespace
	// not valid" for others).
	Namespaces []string
	// Password, when not empty, is required as HTTP basic auth (user
	// admin) on /system/*.
	Password string
	// StaleReads makes the next StaleReads status reads after a scale
	// still report the previous replica count, as faas-netes does while
	// its informer cache lags (pkg/handlers/replica_reader.go reads a
	// DeploymentLister).
	StaleReads int
	// ReportEnv makes faas-netes report envVars in status. Real
	// faas-netes never does: its status is built from the Deployment
	// without the container's environment (pkg/k8s/function_status.go).
	// faasd always reports them.
	ReportEnv bool
	// MaxFunctions is the function limit; 0 means 15, CE's limit
	// (faas-netes pkg/handlers/replica_reader.go MaxFunctions, faasd
	// pkg/provider/handlers/info.go faasdMaxFunctions); negative or Pro
	// means none.
	MaxFunctions int
	// TLS serves https with a self-signed certificate for 127.0.0.1 (see
	// Server.CertificatePEM).
	TLS bool
	// Hook, when not nil, is called with each request before the
	// emulation answers it (and before the gateway's rewriting), so a
	// test can change the state in between, such as creating the
	// function a client is about to create (see Server.Put).
	Hook func(r *http.Request)
}

// Call is one request the server answered.
type Call struct {
	Method, Path string
	// QueryNamespace and BodyNamespace are the namespace the request
	// carried in the ?namespace= query and in its JSON body.
	QueryNamespace, BodyNamespace string
	Status                        int
}

// Server is a running emulation. It is safe for concurrent use.
type Server struct {
	// URL is the base URL of the gateway, "http://127.0.0.1:PORT".
	URL string

	srv *httptest.Server
	o   Options

	mu  sync.Mutex
	fns map[string]*function // by namespace + "/" + name
	// secrets are the stored secrets' values by namespace and name.
	secrets map[string]map[string][]byte
	calls   []Call
}

type function struct {
	namespace   string
	dep         types.FunctionDeployment
	labels      map[string]string
	annotations map[string]string
	replicas    int
	prev        int // replicas reported while stale > 0
	stale       int
	invocations float64
	created     time.Time
}

// NewServer starts an emulation on a loopback port; it is closed when t
// ends.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Provider != FaasNetes && o.Provider != Faasd {
		t.Fatalf("openfaastest: Options.Provider must be FaasNetes or Faasd")
	}
	if len(o.Namespaces) == 0 {
		o.Namespaces = []string{"openfaas-fn"}
	}
	if o.MaxFunctions == 0 {
		o.MaxFunctions = 15
	}
	if o.Pro {
		o.MaxFunctions = -1
	}
	s := &Server{o: o, fns: map[string]*function{}, secrets: map[string]map[string][]byte{}}
	if o.TLS {
		s.srv = httptest.NewTLSServer(s.handler())
	} else {
		s.srv = httptest.NewServer(s.handler())
	}
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server; later requests fail to connect.
func (s *Server) Close() { s.srv.Close() }

// CertificatePEM returns the PEM of the server's certificate with TLS,
// to be trusted as a certificate authority; nil without TLS.
func (s *Server) CertificatePEM() []byte {
	if s.srv.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Put stores d as a deployed function (one replica) without going through
// HTTP, as another client's deploy would; it replaces an existing one.
// Empty d.Namespace means the default.
func (s *Server) Put(d types.FunctionDeployment) {
	ns := d.Namespace
	if ns == "" {
		ns = s.o.Namespaces[0]
	}
	var f *function
	if s.o.Provider == FaasNetes {
		f = &function{namespace: ns, dep: d, labels: netesLabels(d, false), annotations: netesAnnotations(d), replicas: 1, created: time.Now()}
	} else {
		f = faasdFunction(ns, d)
	}
	s.mu.Lock()
	s.fns[ns+"/"+d.Service] = f
	s.mu.Unlock()
}

// Delete removes a function without going through HTTP; a missing one is
// no error.
func (s *Server) Delete(namespace, name string) {
	if namespace == "" {
		namespace = s.o.Namespaces[0]
	}
	s.mu.Lock()
	delete(s.fns, namespace+"/"+name)
	s.mu.Unlock()
}

// Calls returns the requests answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Status returns the stored state of a function (never stale), and
// whether it exists. Empty namespace means the default.
func (s *Server) Status(namespace, name string) (types.FunctionStatus, bool) {
	if namespace == "" {
		namespace = s.o.Namespaces[0]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.fns[namespace+"/"+name]
	if !ok {
		return types.FunctionStatus{}, false
	}
	return s.status(f, false), true
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	sys := http.NewServeMux()
	if s.o.Provider == FaasNetes {
		sys.HandleFunc("GET /system/functions", s.netesList)
		sys.HandleFunc("GET /system/function/{name}", s.netesGet)
		sys.HandleFunc("POST /system/functions", s.netesDeploy)
		sys.HandleFunc("PUT /system/functions", s.netesUpdate)
		sys.HandleFunc("DELETE /system/functions", s.netesDelete)
		sys.HandleFunc("POST /system/scale-function/{name}", s.gatewayScale(s.netesScale))
	} else {
		sys.HandleFunc("GET /system/functions", s.faasdList)
		sys.HandleFunc("GET /system/function/{name}", s.faasdGet)
		sys.HandleFunc("POST /system/functions", s.faasdDeploy)
		sys.HandleFunc("PUT /system/functions", s.faasdUpdate)
		sys.HandleFunc("DELETE /system/functions", s.faasdDelete)
		sys.HandleFunc("POST /system/scale-function/{name}", s.gatewayScale(s.faasdScale))
	}
	s.secretsHandlers(sys)
	mux.Handle("/system/", s.auth(sys))
	if s.o.Gateway {
		mux.HandleFunc("/function/{name}", s.invoke)
		mux.HandleFunc("/function/{name}/{path...}", s.invoke)
	}
	return s.record(mux)
}

// record notes every request with where it carried the namespace.
func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ns struct {
			Namespace string `json:"namespace"`
		}
		json.Unmarshal(body, &ns)
		if s.o.Hook != nil {
			s.o.Hook(r)
		}
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r)
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, QueryNamespace: r.URL.Query().Get("namespace"), BodyNamespace: ns.Namespace, Status: rw.status})
		s.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// auth is the basic auth that the gateway (and each provider's own port)
// puts on /system/* (faas-provider auth.DecorateWithBasicAuth).
func (s *Server) auth(next http.Handler) http.Handler {
	if s.o.Password == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte("admin")) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.o.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="Restricted"`)
			http.Error(w, "invalid credentials", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// gatewayScale is the CE gateway's scale handler in front of next
// (openfaas/faas gateway/scaling/ranges.go MakeHorizontalScalingHandler):
// it rewrites replicas below 1 to 1 and above 5 to 5, answering nothing
// different, so a request for zero silently becomes one.
func (s *Server) gatewayScale(next http.HandlerFunc) http.HandlerFunc {
	if !s.o.Gateway || s.o.Pro {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "Error reading request body", http.StatusBadRequest)
			return
		}
		var req types.ScaleServiceRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "Error unmarshalling request body", http.StatusBadRequest)
			return
		}
		req.Replicas = min(max(req.Replicas, 1), 5)
		b, _ := json.Marshal(req)
		r.Body = io.NopCloser(bytes.NewReader(b))
		next(w, r)
	}
}

// invoke is the gateway's function proxy; the emulated function answers
// 200 and the call counts as an invocation.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	name, ns, _ := strings.Cut(r.PathValue("name"), ".")
	if ns == "" {
		ns = s.o.Namespaces[0]
	}
	s.mu.Lock()
	f, ok := s.fns[ns+"/"+name]
	if ok {
		f.invocations++
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "error finding function "+name+"."+ns+": not found", http.StatusNotFound)
		return
	}
	io.WriteString(w, "ok\n")
}

// status builds the FunctionStatus the provider reports for f; advance
// consumes one stale read.
func (s *Server) status(f *function, advance bool) types.FunctionStatus {
	replicas := f.replicas
	if f.stale > 0 {
		replicas = f.prev
		if advance {
			f.stale--
		}
	}
	labels := maps.Clone(f.labels)
	ann := maps.Clone(f.annotations)
	st := types.FunctionStatus{
		Name:              f.dep.Service,
		Image:             f.dep.Image,
		Namespace:         f.namespace,
		Replicas:          uint64(replicas),
		AvailableReplicas: uint64(replicas),
		Labels:            &labels,
		Annotations:       &ann,
		Secrets:           f.dep.Secrets,
		CreatedAt:         f.created,
	}
	switch s.o.Provider {
	case FaasNetes:
		// pkg/k8s/function_status.go: EnvProcess from the container's
		// "fprocess" variable; no EnvVars; limits and requests from the
		// container's resources.
		st.EnvProcess = f.dep.EnvProcess
		st.Limits, st.Requests = f.dep.Limits, f.dep.Requests
		if s.o.ReportEnv {
			st.EnvVars = maps.Clone(f.dep.EnvVars)
		}
	case Faasd:
		st.EnvProcess = f.dep.EnvProcess
		st.EnvVars = maps.Clone(f.dep.EnvVars)
	}
	return st
}

// list returns the functions of namespace, sorted by name; the CE gateway
// adds invocation counts.
func (s *Server) list(ns string) []types.FunctionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []types.FunctionStatus{}
	for _, f := range s.fns {
		if f.namespace != ns {
			continue
		}
		st := s.status(f, true)
		if s.o.Gateway {
			st.InvocationCount = f.invocations
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b types.FunctionStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *Server) lookup(ns, name string) (types.FunctionStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.fns[ns+"/"+name]
	if !ok {
		return types.FunctionStatus{}, false
	}
	return s.status(f, true), true
}

func (s *Server) overLimit(additional int) (int, bool) {
	n := len(s.fns)
	return n + additional, s.o.MaxFunctions >= 0 && n+additional > s.o.MaxFunctions
}

// scaleTo sets f's replicas, starting StaleReads stale reads. Callers hold
// s.mu.
func (s *Server) scaleTo(f *function, n int) {
	if n != f.replicas {
		f.prev, f.stale = f.replicas, s.o.StaleReads
	}
	f.replicas = n
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

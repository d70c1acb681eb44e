package openfaastest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"

	"github.com/openfaas/faas-provider/types"
)

// The providers' /system/secrets, emulated from their handlers:
//
//   - faas-netes (pkg/handlers/secrets.go): GET lists names (200); POST
//     creates a Kubernetes Secret (202; 409 when it exists); PUT replaces
//     (202; 404 when missing); DELETE (202; 404 when missing). A deploy or
//     update naming a missing secret answers 400 "unable to fetch secrets:
//     ..." (pkg/handlers/deploy.go).
//   - faasd (pkg/provider/handlers/secret.go): GET lists the files (200);
//     POST and PUT both write the file (200); DELETE of a missing one
//     answers 500 with os.Remove's "no such file or directory". A deploy
//     naming a missing secret answers 400 "unable to find secret: NAME"
//     (deploy.go validateSecrets).
//
// Values are kept per namespace; what a function "sees" (Secret) is the
// current value of every secret its deployment names, as the providers
// mount them under /var/openfaas/secrets.

func (s *Server) secretsHandlers(sys *http.ServeMux) {
	sys.HandleFunc("GET /system/secrets", s.listSecrets)
	sys.HandleFunc("POST /system/secrets", s.writeSecret(http.MethodPost))
	sys.HandleFunc("PUT /system/secrets", s.writeSecret(http.MethodPut))
	sys.HandleFunc("DELETE /system/secrets", s.deleteSecret)
}

func (s *Server) secretNamespace(w http.ResponseWriter, r *http.Request, body string) (string, bool) {
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		ns = body
	}
	if s.o.Provider == FaasNetes {
		return s.netesNamespace(w, ns)
	}
	return s.faasdNamespace(w, ns)
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.secretNamespace(w, r, "")
	if !ok {
		return
	}
	s.mu.Lock()
	out := []types.Secret{}
	for name := range s.secrets[ns] {
		out = append(out, types.Secret{Name: name, Namespace: ns})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func decodeSecret(w http.ResponseWriter, r *http.Request) (types.Secret, bool) {
	var sec types.Secret
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &sec); err != nil || sec.Name == "" {
		http.Error(w, "invalid secret", http.StatusBadRequest)
		return sec, false
	}
	return sec, true
}

func (s *Server) writeSecret(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sec, ok := decodeSecret(w, r)
		if !ok {
			return
		}
		ns, ok := s.secretNamespace(w, r, sec.Namespace)
		if !ok {
			return
		}
		v := sec.RawValue
		if len(v) == 0 {
			v = []byte(sec.Value)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_, exists := s.secrets[ns][sec.Name]
		if s.o.Provider == FaasNetes {
			switch {
			case method == http.MethodPost && exists:
				http.Error(w, fmt.Sprintf("secrets %q already exists", sec.Name), http.StatusConflict)
				return
			case method == http.MethodPut && !exists:
				http.Error(w, fmt.Sprintf("secrets %q not found", sec.Name), http.StatusNotFound)
				return
			}
		}
		if s.secrets[ns] == nil {
			s.secrets[ns] = map[string][]byte{}
		}
		s.secrets[ns][sec.Name] = slices.Clone(v)
		if s.o.Provider == FaasNetes {
			w.WriteHeader(http.StatusAccepted)
		}
	}
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	sec, ok := decodeSecret(w, r)
	if !ok {
		return
	}
	ns, ok := s.secretNamespace(w, r, sec.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.secrets[ns][sec.Name]; !exists {
		if s.o.Provider == FaasNetes {
			http.Error(w, fmt.Sprintf("secrets %q not found", sec.Name), http.StatusNotFound)
		} else {
			http.Error(w, fmt.Sprintf("remove /var/lib/faasd-provider/secrets/%s/%s: no such file or directory", ns, sec.Name), http.StatusInternalServerError)
		}
		return
	}
	delete(s.secrets[ns], sec.Name)
	if s.o.Provider == FaasNetes {
		w.WriteHeader(http.StatusAccepted)
	}
}

// checkSecrets answers a deploy or update of d naming a secret that does
// not exist in ns, as the provider does, and reports whether all exist.
// The caller holds s.mu.
func (s *Server) checkSecrets(w http.ResponseWriter, ns string, d types.FunctionDeployment) bool {
	for _, n := range d.Secrets {
		if _, ok := s.secrets[ns][n]; ok {
			continue
		}
		if s.o.Provider == FaasNetes {
			http.Error(w, fmt.Sprintf("unable to fetch secrets: secrets %q not found", n), http.StatusBadRequest)
		} else {
			http.Error(w, "unable to find secret: "+n, http.StatusBadRequest)
		}
		return false
	}
	return true
}

// PutSecret stores a secret in namespace ("" for the first), as faas-cli
// secret create would.
func (s *Server) PutSecret(namespace, name, value string) {
	if namespace == "" {
		namespace = s.o.Namespaces[0]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets[namespace] == nil {
		s.secrets[namespace] = map[string][]byte{}
	}
	s.secrets[namespace][name] = []byte(value)
}

// Secret returns secret name as function fn of namespace ("" for the
// first) would find it mounted: only when its deployment names it.
func (s *Server) Secret(namespace, fn, name string) (string, bool) {
	if namespace == "" {
		namespace = s.o.Namespaces[0]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.fns[namespace+"/"+fn]
	if !ok || !slices.Contains(f.dep.Secrets, name) {
		return "", false
	}
	v, ok := s.secrets[namespace][name]
	return string(v), ok
}

// SecretNames lists the secrets stored in namespace ("" for the first).
func (s *Server) SecretNames(namespace string) []string {
	if namespace == "" {
		namespace = s.o.Namespaces[0]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.secrets[namespace] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

package openfaastest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// faasd (CE) handlers, from github.com/openfaas/faasd pkg/provider/handlers
// at 13f03f3d. It reads the namespace from the JSON body for deploy,
// update, scale and delete ("namespace moved from the querystring into the
// body", delete.go) and from the ?namespace= query for list and status.
// Successful writes answer 200 (the handlers write no status). A function
// is one container: it runs one replica, or none when its task is gone.

// faasdNamespace is utils.go getRequestNamespace + validNamespace: empty
// means the default; an unknown namespace is 400 "namespace not valid".
func (s *Server) faasdNamespace(w http.ResponseWriter, ns string) (string, bool) {
	if ns == "" {
		ns = s.o.Namespaces[0]
	}
	if !slices.Contains(s.o.Namespaces, ns) {
		http.Error(w, "namespace not valid", http.StatusBadRequest)
		return "", false
	}
	return ns, true
}

// faasdList is read.go MakeReadHandler: the list carries no
// availableReplicas.
func (s *Server) faasdList(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.faasdNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	out := s.list(ns)
	for i := range out {
		out[i].AvailableReplicas = 0
	}
	writeJSON(w, out)
}

// faasdGet is replicas.go MakeReplicaReaderHandler: 404 with no body.
func (s *Server) faasdGet(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.faasdNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	st, ok := s.lookup(ns, r.PathValue("name"))
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, st)
}

// faasdDecode reads a JSON body, answering 400 with the parse error.
func faasdDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// faasdLimit is deploy.go preDeploy: the CE EULA's function limit.
func (s *Server) faasdLimit(w http.ResponseWriter, additional int) bool {
	if n, over := s.overLimit(additional); over {
		http.Error(w, fmt.Sprintf("the OpenFaaS CE EULA allows %d/%d function(s), upgrade to faasd Pro to continue", s.o.MaxFunctions, n), http.StatusBadRequest)
		return false
	}
	return true
}

func faasdFunction(ns string, d types.FunctionDeployment) *function {
	f := &function{namespace: ns, dep: d, labels: map[string]string{}, annotations: map[string]string{}, replicas: 1, created: time.Now()}
	if d.Labels != nil {
		maps.Copy(f.labels, *d.Labels)
	}
	if d.Annotations != nil {
		maps.Copy(f.annotations, *d.Annotations)
	}
	return f
}

// faasdDeploy is deploy.go MakeDeployHandler: creating the container of an
// existing function fails, answered as 400 with containerd's "already
// exists".
func (s *Server) faasdDeploy(w http.ResponseWriter, r *http.Request) {
	var d types.FunctionDeployment
	if !faasdDecode(w, r, &d) {
		return
	}
	ns, ok := s.faasdNamespace(w, d.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkSecrets(w, ns, d) || !s.faasdLimit(w, 1) {
		return
	}
	key := ns + "/" + d.Service
	if _, exists := s.fns[key]; exists {
		http.Error(w, fmt.Sprintf("unable to create container: %s, error: container %q: already exists", d.Service, d.Service), http.StatusBadRequest)
		return
	}
	s.fns[key] = faasdFunction(ns, d)
}

// faasdUpdate is update.go MakeUpdateHandler: 404 "function: NAME.NS not
// found"; otherwise the container is removed and deployed again, so the
// function runs one replica afterwards.
func (s *Server) faasdUpdate(w http.ResponseWriter, r *http.Request) {
	var d types.FunctionDeployment
	if !faasdDecode(w, r, &d) {
		return
	}
	ns, ok := s.faasdNamespace(w, d.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkSecrets(w, ns, d) || !s.faasdLimit(w, 0) {
		return
	}
	key := ns + "/" + d.Service
	old, exists := s.fns[key]
	if !exists {
		http.Error(w, fmt.Sprintf("function: %s.%s not found", d.Service, ns), http.StatusNotFound)
		return
	}
	f := faasdFunction(ns, d)
	f.created, f.invocations = old.created, old.invocations
	s.fns[key] = f
}

// faasdDelete is delete.go MakeDeleteHandler: 404 "function NAME.NS not
// found".
func (s *Server) faasdDelete(w http.ResponseWriter, r *http.Request) {
	var req types.DeleteFunctionRequest
	if !faasdDecode(w, r, &req) {
		return
	}
	ns, ok := s.faasdNamespace(w, req.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ns + "/" + req.FunctionName
	if _, exists := s.fns[key]; !exists {
		http.Error(w, fmt.Sprintf("function %s.%s not found", req.FunctionName, ns), http.StatusNotFound)
		return
	}
	delete(s.fns, key)
}

// faasdScale is scale.go MakeReplicaUpdateHandler: the name from the
// body's serviceName (not the path), 404 for a missing function, then
// zero refused with 400 (CE); any other count starts the one task.
func (s *Server) faasdScale(w http.ResponseWriter, r *http.Request) {
	var req types.ScaleServiceRequest
	if !faasdDecode(w, r, &req) {
		return
	}
	ns, ok := s.faasdNamespace(w, req.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, exists := s.fns[ns+"/"+req.ServiceName]
	if !exists {
		http.Error(w, fmt.Sprintf("function: %s.%s not found", req.ServiceName, ns), http.StatusNotFound)
		return
	}
	if req.Replicas == 0 && !s.o.Pro {
		http.Error(w, "replicas must > 0 for faasd CE", http.StatusBadRequest)
		return
	}
	s.scaleTo(f, int(min(req.Replicas, 1)))
}

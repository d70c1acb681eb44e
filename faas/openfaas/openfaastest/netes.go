package openfaastest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// faas-netes (CE) handlers, from github.com/openfaas/faas-netes
// pkg/handlers at 662ce9ce. It reads the namespace from the JSON body for
// deploy and update, and from the ?namespace= query for list, status,
// scale and delete; only the default namespace is served.

// netesNamespace answers 400 unless ns is empty or the default
// ("namespace must be: openfaas-fn", as in every handler).
func (s *Server) netesNamespace(w http.ResponseWriter, ns string) (string, bool) {
	def := s.o.Namespaces[0]
	if ns == "" {
		ns = def
	}
	if ns != def {
		http.Error(w, fmt.Sprintf("namespace must be: %s", def), http.StatusBadRequest)
		return "", false
	}
	return ns, true
}

// netesList is reader.go MakeFunctionReader.
func (s *Server) netesList(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.netesNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	writeJSON(w, s.list(ns))
}

// netesGet is replica_reader.go MakeReplicaReader: 404 with no body for a
// missing function.
func (s *Server) netesGet(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.netesNamespace(w, r.URL.Query().Get("namespace"))
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

// netesValidate is validate.go ValidateDeployRequest.
func netesValidate(w http.ResponseWriter, d types.FunctionDeployment) bool {
	if !dns1123.MatchString(d.Service) {
		http.Error(w, fmt.Sprintf("validation failed: (%s) must be a valid DNS entry for service name", d.Service), http.StatusBadRequest)
		return false
	}
	return true
}

// netesLabels is the pod template's labels: faas_function plus the
// request's (deploy.go makeDeploymentSpec); an update adds "uid"
// (update.go updateDeploymentSpec).
func netesLabels(d types.FunctionDeployment, update bool) map[string]string {
	l := map[string]string{"faas_function": d.Service}
	if update {
		l["uid"] = strconv.Itoa(time.Now().Nanosecond())
	}
	if d.Labels != nil {
		maps.Copy(l, *d.Labels)
	}
	return l
}

// netesAnnotations is deploy.go buildAnnotations: the request's plus
// prometheus.io.scrape=false unless set.
func netesAnnotations(d types.FunctionDeployment) map[string]string {
	a := map[string]string{}
	if d.Annotations != nil {
		maps.Copy(a, *d.Annotations)
	}
	if _, ok := a["prometheus.io.scrape"]; !ok {
		a["prometheus.io.scrape"] = "false"
	}
	return a
}

// netesMinReplicas is deploy.go getMinReplicaCount: the
// com.openfaas.scale.min label sets the replicas of a create or update.
func netesMinReplicas(d types.FunctionDeployment) (int, bool) {
	if d.Labels == nil {
		return 0, false
	}
	v, ok := (*d.Labels)["com.openfaas.scale.min"]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// netesDeploy is deploy.go MakeDeployHandler: 202; an existing function
// makes the Deployment create fail, answered as 500 with Kubernetes's
// "already exists" message; the CE function limit is checked first (400).
func (s *Server) netesDeploy(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var d types.FunctionDeployment
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, fmt.Sprintf("failed to unmarshal request: %s", err), http.StatusBadRequest)
		return
	}
	if !netesValidate(w, d) {
		return
	}
	ns, ok := s.netesNamespace(w, d.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkSecrets(w, ns, d) {
		return
	}
	if _, over := s.overLimit(1); over {
		http.Error(w, fmt.Sprintf("unable to create function, maximum: %d, visit https://openfaas.com/pricing to upgrade to OpenFaaS Standard", s.o.MaxFunctions), http.StatusBadRequest)
		return
	}
	key := ns + "/" + d.Service
	if _, exists := s.fns[key]; exists {
		http.Error(w, fmt.Sprintf("unable create Deployment: deployments.apps %q already exists", d.Service), http.StatusInternalServerError)
		return
	}
	replicas := 1
	if n, ok := netesMinReplicas(d); ok {
		replicas = n
	}
	s.fns[key] = &function{namespace: ns, dep: d, labels: netesLabels(d, false), annotations: netesAnnotations(d), replicas: replicas, created: time.Now()}
	w.WriteHeader(http.StatusAccepted)
}

// netesUpdate is update.go MakeUpdateHandler: 404 when the Deployment is
// missing; the replica count stays unless com.openfaas.scale.min is set.
func (s *Server) netesUpdate(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var d types.FunctionDeployment
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, fmt.Sprintf("unable to unmarshal request: %s", err), http.StatusBadRequest)
		return
	}
	if !netesValidate(w, d) {
		return
	}
	ns, ok := s.netesNamespace(w, d.Namespace)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkSecrets(w, ns, d) {
		return
	}
	f, exists := s.fns[ns+"/"+d.Service]
	if !exists {
		http.Error(w, fmt.Sprintf("unable update Deployment: %s.%s, error: deployments.apps %q not found", d.Service, ns, d.Service), http.StatusNotFound)
		return
	}
	f.dep = d
	f.labels = netesLabels(d, true)
	f.annotations = netesAnnotations(d)
	if n, ok := netesMinReplicas(d); ok {
		s.scaleTo(f, n)
	}
	w.WriteHeader(http.StatusAccepted)
}

// netesDelete is delete.go MakeDeleteHandler: the namespace from the
// query only; 404 with Kubernetes's "not found" message.
func (s *Server) netesDelete(w http.ResponseWriter, r *http.Request) {
	ns, ok := s.netesNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req types.DeleteFunctionRequest
	if err := json.Unmarshal(body, &req); err != nil || req.FunctionName == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ns + "/" + req.FunctionName
	if _, exists := s.fns[key]; !exists {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "deployments.apps %q not found", req.FunctionName)
		return
	}
	delete(s.fns, key)
	w.WriteHeader(http.StatusAccepted)
}

// netesScale is replica_updater.go MakeReplicaUpdater: the name from the
// path, the namespace from the query; zero refused with 400 before the
// function is looked up (CE); a missing function is 500; at most 5
// replicas (MaxReplicas in replica_reader.go).
func (s *Server) netesScale(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ns, ok := s.netesNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req types.ScaleServiceRequest
	if err := json.Unmarshal(body, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("Cannot parse request. Please pass valid JSON."))
		return
	}
	if req.Replicas == 0 && !s.o.Pro {
		http.Error(w, "replicas cannot be set to 0 in OpenFaaS CE", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, exists := s.fns[ns+"/"+name]
	if !exists {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("Unable to lookup function deployment " + name))
		return
	}
	n := int(req.Replicas)
	if !s.o.Pro {
		n = min(n, 5)
	}
	s.scaleTo(f, n)
	w.WriteHeader(http.StatusAccepted)
}

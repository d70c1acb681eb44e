package localfaas

import (
	"net/http"

	"github.com/openfaas/faas-provider/types"
)

// The gateway's /system/secrets, as faas-netes serves it
// (pkg/handlers/secrets.go: GET lists names, POST creates and PUT
// replaces, both 202, DELETE 202) and faas-cli's secret create, update,
// list and remove call it. Bodies are faas-provider types.Secret; Value
// or RawValue carries the value, which no answer ever returns. A POST of
// an existing secret answers 409, a PUT or DELETE of a missing one 404
// (faasd answers 200 to both and creates on PUT).

func (g *gateway) listSecrets(w http.ResponseWriter, req *http.Request) {
	if !checkNamespace(w, req.URL.Query().Get("namespace")) {
		return
	}
	names, err := g.r.SecretNames(req.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]types.Secret, 0, len(names))
	for _, n := range names {
		out = append(out, types.Secret{Name: n, Namespace: GatewayNamespace})
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *gateway) writeSecret(mode applyMode) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		var s types.Secret
		if !decodeBody(w, req, &s) || !checkNamespace(w, req.URL.Query().Get("namespace"), s.Namespace) {
			return
		}
		value := s.RawValue
		if len(value) == 0 {
			value = []byte(s.Value)
		}
		var err error
		if mode == applyCreate {
			err = g.r.CreateSecret(req.Context(), s.Name, value)
		} else {
			err = g.r.UpdateSecret(req.Context(), s.Name, value)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (g *gateway) deleteSecret(w http.ResponseWriter, req *http.Request) {
	var s types.Secret
	if !decodeBody(w, req, &s) || !checkNamespace(w, req.URL.Query().Get("namespace"), s.Namespace) {
		return
	}
	if err := g.r.DeleteSecret(req.Context(), s.Name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

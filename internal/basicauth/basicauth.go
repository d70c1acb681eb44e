// Package basicauth is the one home of the HTTP basic authentication that
// the daemon's APIs (the OpenFaaS gateway API, the route API, registry
// writes) share: one user name, and a constant-time check.
package basicauth

import (
	"crypto/subtle"
	"net/http"
)

// User is the user name of every Glimpse API, as OpenFaaS's gateway uses
// "admin"; the password is the daemon's ($GLIMPSE_HOME/gateway-password
// on one machine).
const User = "admin"

// Valid reports whether r carries user User and password, compared in
// constant time. An empty password never matches.
func Valid(r *http.Request, password string) bool {
	u, p, ok := r.BasicAuth()
	return ok && password != "" &&
		subtle.ConstantTimeCompare([]byte(u), []byte(User)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1
}

// Require wraps next so that requests without valid credentials get 401
// with a WWW-Authenticate challenge and the one-line body msg.
func Require(password, msg string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Valid(r, password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="glimpse"`)
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

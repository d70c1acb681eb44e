// Package function is a golang-middleware handler in the shape of faas-cli's
// template (faas-cli new --lang golang-middleware): no main, its own go.mod
// with module handler/function.
package function

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	var input []byte
	if r.Body != nil {
		defer r.Body.Close()
		input, _ = io.ReadAll(r.Body)
	}
	w.Header().Set("X-Function", "middleware")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "hello from middleware: %s %s body=%q greeting=%s", r.Method, r.URL.Path, input, os.Getenv("GREETING"))
}

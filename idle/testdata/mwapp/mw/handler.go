// Package function answers like examples/hello's function, in the shape of
// an OpenFaaS golang-middleware handler.
package function

import (
	"fmt"
	"net/http"
	"os"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":{"preview":{"pr":%s}}}`, os.Getenv("GLIMPSE_PR"))
}

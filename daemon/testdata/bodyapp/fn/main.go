// Command bodyfn is the local stack's body-test function. Any request is
// answered "<length> <sha256 hex>" of the request body, read in full; with
// ?limit=N it reads at most N bytes, as a function with a body limit of
// its own does, and answers 413 "over N bytes" for a longer body (before
// reading the rest, and then closing the connection, as net/http does).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		limit, err := strconv.ParseInt(r.URL.Query().Get("limit"), 10, 64)
		if err == nil {
			body = http.MaxBytesReader(w, r.Body, limit)
		}
		h := sha256.New()
		n, err := io.Copy(h, body)
		if _, ok := err.(*http.MaxBytesError); ok {
			http.Error(w, fmt.Sprintf("over %d bytes", limit), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil)
}

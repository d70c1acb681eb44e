// Command webfn is the function the dockerbuild tests put in a FROM scratch
// image: it answers every request on $HOST:$PORT with a greeting naming the pull
// request it serves.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from docker, pr %s\n", os.Getenv("GLIMPSE_PR"))
	})
	if err := http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

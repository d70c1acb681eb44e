// Command crashfn answers every request "ok" and exits with status 3 two
// seconds after it starts: a function that deploys and then crashes, every
// time it is restarted.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	time.AfterFunc(2*time.Second, func() {
		fmt.Println("crashfn: crashing, as it always does")
		os.Exit(3)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	if err := http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Command echofn is the function the localfaas tests run: an HTTP server on
// $HOST:$PORT that answers every request with its environment, working
// directory, PID and the request's path and query as JSON. GET /crash makes
// it exit. ECHOFN_MODE=exit makes it exit at once, ECHOFN_MODE=nolisten
// makes it never listen. ECHOFN_PIDFILE names a file it writes its PID to.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if f := os.Getenv("ECHOFN_PIDFILE"); f != "" {
		if err := os.WriteFile(f, []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	switch os.Getenv("ECHOFN_MODE") {
	case "exit":
		fmt.Println("echofn: exiting as asked")
		os.Exit(1)
	case "nolisten":
		for {
			time.Sleep(time.Hour)
		}
	}
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		wd, _ := os.Getwd()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"env": env, "cwd": wd, "pid": os.Getpid(), "args": os.Args,
			"path": r.URL.Path, "rawPath": r.URL.RawPath, "query": r.URL.RawQuery, "host": r.Host, "method": r.Method,
		})
	})
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe(addr, nil))
}

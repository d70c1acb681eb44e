// Command hello is the example preview function: it answers POST /graphql
// with JSON naming the app, pull request and commit it was deployed for
// (from the GLIMPSE_* environment the runtime sets), and listens on $PORT.
package main

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables"`
}

type preview struct {
	App    string `json:"app"`
	PR     int    `json:"pr"`
	Commit string `json:"commit"`
}

func main() {
	pr, _ := strconv.Atoi(os.Getenv("GLIMPSE_PR"))
	me := preview{App: os.Getenv("GLIMPSE_APP"), PR: pr, Commit: os.Getenv("GLIMPSE_COMMIT")}
	answer, _ := json.Marshal(map[string]any{"data": map[string]any{"preview": me}})

	mux := http.NewServeMux()
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if r.ContentLength != 0 {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"message": "invalid JSON body: " + err.Error()}}})
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	addr := net.JoinHostPort(os.Getenv("HOST"), port)
	log.Printf("hello function for %s#%d@%s listening on %s", me.App, me.PR, me.Commit, addr)
	log.Fatal(http.ListenAndServe(addr, mux))
}

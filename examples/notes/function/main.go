// Command function is the notes app's backend: GET /api/notes lists the
// preview's notes as JSON, POST /api/notes {"body": "..."} adds one. It
// finds its database the way Glimpse delivers it: the connection string is
// a secret, a file in $GLIMPSE_SECRETS_DIR (or /var/openfaas/secrets, as on
// OpenFaaS) named by $DATABASE_URL_SECRET; never an environment variable,
// so it shows in no status or log. DATABASE_URL is read as a fallback for
// running it by hand.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func databaseURL() (string, error) {
	name := os.Getenv("DATABASE_URL_SECRET")
	if name == "" {
		if u := os.Getenv("DATABASE_URL"); u != "" {
			return u, nil
		}
		return "", errors.New("no database: DATABASE_URL_SECRET is not set")
	}
	dir := os.Getenv("GLIMPSE_SECRETS_DIR")
	if dir == "" {
		dir = "/var/openfaas/secrets"
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

type note struct {
	ID   int    `json:"id"`
	Body string `json:"body"`
}

func main() {
	url, err := databaseURL()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		log.Fatal("the database URL does not parse")
	}
	cfg.MaxConns = 2
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("GET /api/notes", func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.Query(r.Context(), "SELECT id, body FROM notes ORDER BY id")
		if err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer rows.Close()
		out := []note{}
		for rows.Next() {
			var n note
			if err := rows.Scan(&n.ID, &n.Body); err != nil {
				http.Error(w, "database: "+err.Error(), http.StatusInternalServerError)
				return
			}
			out = append(out, n)
		}
		if err := rows.Err(); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	http.HandleFunc("POST /api/notes", func(w http.ResponseWriter, r *http.Request) {
		var n note
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&n); err != nil || n.Body == "" {
			http.Error(w, `want {"body": "..."}`, http.StatusBadRequest)
			return
		}
		if err := db.QueryRow(r.Context(), "INSERT INTO notes (body) VALUES ($1) RETURNING id", n.Body).Scan(&n.ID); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(n)
	})
	srv := &http.Server{Addr: net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

package openfaas

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

// Logs sends faas-cli's query, decodes NDJSON logs.Message lines, maps
// error statuses to codes and reports a cut stream as Unavailable.
func TestLogsClient(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/system/logs" {
			http.NotFound(w, r)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		query = r.URL.RawQuery
		switch r.URL.Query().Get("name") {
		case "missing":
			http.Error(w, "", http.StatusNotFound)
		case "cut":
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write([]byte(`{"name":"cut","namespace":"ns","instance":"i","timestamp":"2026-01-02T03:04:05Z","text":"a"}` + "\n" + `{"name":"cut","te`))
			w.(http.Flusher).Flush()
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		default:
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write([]byte(`{"name":"fn","namespace":"ns","instance":"fn-1","timestamp":"2026-01-02T03:04:05.5Z","text":"one"}` + "\n" +
				`{"name":"fn","namespace":"ns","instance":"fn-1","timestamp":"2026-01-02T03:04:06Z","text":"two"}` + "\n"))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, &Options{Password: "pw", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []preview.LogLine
	since := time.Date(2026, 1, 2, 3, 0, 0, 0, time.FixedZone("x", 3600))
	err = c.Logs(ctx, "fn", preview.LogOptions{Since: since, Tail: 5, Follow: true}, func(l preview.LogLine) error {
		got = append(got, l)
		return nil
	})
	if err != nil || len(got) != 2 || got[0].Text != "one" || got[0].Instance != "fn-1" || got[0].Function != "fn" ||
		!got[0].Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)) || got[1].Text != "two" {
		t.Fatalf("Logs = %+v, %v", got, err)
	}
	if want := "follow=true&name=fn&namespace=ns&since=2026-01-02T02%3A00%3A00Z&tail=5"; query != want {
		t.Fatalf("query %q, want %q", query, want)
	}
	if err := c.Logs(ctx, "missing", preview.LogOptions{}, func(preview.LogLine) error { return nil }); !preview.IsNotFound(err) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing: %v", err)
	}
	n := 0
	if err := c.Logs(ctx, "cut", preview.LogOptions{}, func(preview.LogLine) error { n++; return nil }); preview.CodeOf(err) != preview.Unavailable || n != 1 {
		t.Fatalf("cut stream: %v after %d lines", err, n)
	}
	bad, _ := New(srv.URL, &Options{Password: "wrong"})
	if err := bad.Logs(ctx, "fn", preview.LogOptions{}, func(preview.LogLine) error { return nil }); err == nil || preview.CodeOf(err) == preview.Unavailable {
		t.Fatalf("wrong password: %v (%v)", err, preview.CodeOf(err))
	}
	if err := c.Logs(ctx, "Not_A_Name", preview.LogOptions{}, nil); !preview.IsNotFound(err) {
		t.Fatalf("invalid name: %v", err)
	}
}

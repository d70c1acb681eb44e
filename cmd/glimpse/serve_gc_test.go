package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/config"
)

// The daemon's scheduled gc, on the local stack: a preview past its ttl
// is taken down and one without a ttl stays, a registry blob that nothing
// references goes, and what it did is in the daemon's log.
func TestScheduledGC(t *testing.T) {
	st, pl, home := inProcessDaemon(t)
	short := upStatic(t, pl, staticApp(t, "short", "ttl: 1s\n"), 1)
	keep := upStatic(t, pl, staticApp(t, "keep", ""), 2)

	// An upload that no manifest references (a push cut short).
	info, err := findServe(context.Background(), home)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("a layer no manifest names")
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	registry := func(method, url string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.SetBasicAuth(st.ClientEnv("GLIMPSE_REGISTRY_USERNAME"), st.ClientEnv("GLIMPSE_REGISTRY_PASSWORD"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	base := "http://" + info.Addr
	resp := registry("POST", base+"/v2/junk/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("starting an upload: %d, location %q", resp.StatusCode, loc)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if resp := registry("PUT", loc+sep+"digest="+digest, blob); resp.StatusCode != http.StatusCreated {
		t.Fatalf("finishing the upload: %d", resp.StatusCode)
	}
	if resp := registry("HEAD", base+"/v2/junk/blobs/"+digest, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the pushed blob: %d", resp.StatusCode)
	}

	time.Sleep(2100 * time.Millisecond) // past the 1s ttl at second resolution
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runScheduledGC(ctx, 100*time.Millisecond, func(ctx context.Context) { scheduledGC(ctx, home, st, time.Millisecond, true, log) })
	}()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "registry gc") < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done

	pvs := listed(t, pl)
	if _, ok := pvs[short.Host]; ok {
		t.Errorf("the preview past its ttl is still there:\n%s", logs.String())
	}
	if _, ok := pvs[keep.Host]; !ok {
		t.Errorf("the preview without a ttl was taken down:\n%s", logs.String())
	}
	if resp := registry("HEAD", base+"/v2/junk/blobs/"+digest, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the unreferenced blob after the scheduled gc: %d, want 404", resp.StatusCode)
	}
	if l := logs.String(); !strings.Contains(l, short.Host) || !strings.Contains(l, "ttl 1s expired") || !strings.Contains(l, "blobs_removed=1") {
		t.Errorf("the daemon's log does not say what gc did:\n%s", l)
	}
}

// gc.every: a positive duration or off; unset is the default period.
func TestGCEveryKey(t *testing.T) {
	var s config.Serve
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"30m", 30 * time.Minute}, {"off", -1}} {
		if err := s.Set("gc.every", c.in); err != nil || s.GCEvery != c.want {
			t.Errorf("gc.every %s: %v, %v; want %v", c.in, s.GCEvery, err, c.want)
		}
	}
	for _, bad := range []string{"0s", "-1m", "often"} {
		err := s.Set("gc.every", bad)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("gc.every %s: %v, want one line", bad, err)
		}
	}
}

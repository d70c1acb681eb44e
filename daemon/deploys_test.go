package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/daemon/daemontest"
	"github.com/glimpse-dev/glimpse/preview"
)

// GET /glimpse/v1/deploys/{app}/{pr}: the last Up the daemon ran, with its
// events, behind the API's credentials; 404 for one it did not run, 400
// for a malformed path.
func TestDeployRecord(t *testing.T) {
	st, err := daemon.Open(t.TempDir(), &daemon.Options{Logger: slog.New(slog.DiscardHandler), Providers: daemon.Providers{NoRegistry: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	onEvent, done := st.TrackUp("hello", 3, "abc1234", nil)
	onEvent(preview.Event{Step: preview.StepBuild, State: preview.EventDone, Message: "pushed sha256:beef"})
	onEvent(preview.Event{Step: preview.StepDeploy, State: preview.EventFailed, Message: "function process exited: exit status 3"})
	done(errors.New("deploy: function process exited: exit status 3"))

	get := func(path string, auth bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		req.RemoteAddr = "127.0.0.1:4000"
		if auth {
			req.SetBasicAuth(st.ClientEnv("GLIMPSE_REGISTRY_USERNAME"), st.ClientEnv("GLIMPSE_REGISTRY_PASSWORD"))
		}
		rec := httptest.NewRecorder()
		st.ServeHTTP(rec, req)
		return rec
	}
	rec := get("/glimpse/v1/deploys/hello/3", true)
	var d daemon.DeployRecord
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &d) != nil {
		t.Fatalf("GET the deploy = %d %s", rec.Code, rec.Body)
	}
	if d.App != "hello" || d.PR != 3 || d.Commit != "abc1234" || d.Result != "failed" || d.Error == "" || d.Finished == nil ||
		len(d.Events) != 2 || d.Events[1].Step != preview.StepDeploy || d.Events[1].State != preview.EventFailed || d.Events[0].Time.IsZero() {
		t.Fatalf("deploy record %+v", d)
	}
	for _, c := range []struct {
		path string
		auth bool
		want int
	}{
		{"/glimpse/v1/deploys/hello/3", false, http.StatusUnauthorized},
		{"/glimpse/v1/deploys/hello/4", true, http.StatusNotFound},
		{"/glimpse/v1/deploys/hello/x", true, http.StatusBadRequest},
		{"/glimpse/v1/deploys/Not_An_App/3", true, http.StatusBadRequest},
	} {
		if rec := get(c.path, c.auth); rec.Code != c.want {
			t.Errorf("GET %s (auth %v) = %d %s, want %d", c.path, c.auth, rec.Code, rec.Body, c.want)
		}
	}
}

// Stack.Down (the dashboard's Delete) takes the preview down as `glimpse
// down` does and then tells the SetAfterDown hook which commit it served
// (the GitHub loop parks the PR there); a preview that does not exist is
// NotFound and calls nothing.
func TestDownCallsAfterDown(t *testing.T) {
	st, pl, _ := daemontest.Open(t, "", nil)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "public", "index.html"), []byte("<p>hi</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: preview.Spec{App: "gone", Assets: &preview.AssetsSpec{Dir: "public"}}, PR: 8, Commit: "c0ffee1"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	st.SetAfterDown(func(app string, pr int, commit string) { got = append(got, fmt.Sprintf("%s#%d@%s", app, pr, commit)) })
	if err := st.Down(ctx, "gone", 8); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "gone#8@c0ffee1" {
		t.Fatalf("after-down calls %v, want gone#8@c0ffee1", got)
	}
	if pvs, err := pl.List(ctx, "gone"); err != nil || len(pvs) != 0 {
		t.Fatalf("after Down: %v, %v", pvs, err)
	}
	if err := st.Down(ctx, "gone", 9); !preview.IsNotFound(err) || len(got) != 1 {
		t.Fatalf("Down of a preview that does not exist: %v (calls %v)", err, got)
	}
}

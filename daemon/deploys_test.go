package daemon_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/glimpse-dev/glimpse/daemon"
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

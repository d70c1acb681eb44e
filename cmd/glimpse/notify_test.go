package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
)

// The CI path against the fake GitHub, with the environment GitHub
// Actions gives a pull_request job: in_progress then success makes one
// comment, edited in place, and one deployment with both statuses; a
// second push's run finishes its own deployment; inactive after down
// marks every deployment inactive; a failure names its step.
func TestNotifyKeepsOneCommentAndTheDeployment(t *testing.T) {
	fake := githubfake.New("acme", "app", "ghs_ci")
	api := httptest.NewServer(fake)
	defer api.Close()
	event := filepath.Join(t.TempDir(), "event.json")
	writeEvent := func(sha string) {
		t.Helper()
		if err := os.WriteFile(event, fake.Event("synchronize", fake.Pull(7, sha, "acme/app", "")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"GITHUB_TOKEN": "ghs_ci", "GITHUB_REPOSITORY": "acme/app", "GLIMPSE_GITHUB_API_URL": api.URL,
		"GITHUB_EVENT_PATH": event, "GITHUB_REF": "refs/pull/7/merge", "GITHUB_SHA": "ffffffffffffffffffffffffffffffffffffffff",
	}
	notify := func(state string, f notifyFlags) error {
		t.Helper()
		var errb bytes.Buffer
		return runNotify(context.Background(), func(k string) string { return env[k] }, state, &f, &errb)
	}
	must := func(state string, f notifyFlags) {
		t.Helper()
		if err := notify(state, f); err != nil {
			t.Fatalf("notify %s: %v", state, err)
		}
	}
	sha1 := strings.Repeat("a", 40)
	writeEvent(sha1)
	must("in_progress", notifyFlags{})
	must("success", notifyFlags{url: "http://pr-7.app.example.com/"})
	cs := fake.Comments(7)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, githubloop.CommentMarker) || !strings.Contains(cs[0].Body, "Ready: http://pr-7.app.example.com/") {
		t.Fatalf("comments after two notifies: %+v, want one, ready", cs)
	}
	ds := fake.Deployments()
	if len(ds) != 1 || ds[0].SHA != sha1 || ds[0].Environment != "preview/pr-7" || !ds[0].Transient {
		t.Fatalf("deployments: %+v, want one of %s in preview/pr-7, transient", ds, sha1)
	}
	if got := states(ds[0]); !slices.Equal(got, []string{"in_progress", "success"}) || ds[0].Statuses[1].EnvironmentURL != "http://pr-7.app.example.com/" {
		t.Fatalf("statuses: %v (%+v), want in_progress, success with the URL", got, ds[0].Statuses)
	}

	// The next push fails at a step.
	sha2 := strings.Repeat("b", 40)
	writeEvent(sha2)
	must("in_progress", notifyFlags{})
	must("failure", notifyFlags{step: "build", message: "npm run build exited 1"})
	ds = fake.Deployments()
	if len(ds) != 2 || ds[1].SHA != sha2 || !slices.Equal(states(ds[1]), []string{"in_progress", "failure"}) || ds[1].Statuses[1].Description != "build: npm run build exited 1" {
		t.Fatalf("deployments after the failing push: %+v", ds)
	}
	if cs := fake.Comments(7); len(cs) != 1 || !strings.Contains(cs[0].Body, "npm run build exited 1") {
		t.Fatalf("comments after the failure: %+v, want the one comment, naming the failure", cs)
	}

	// Closed: glimpse down, then notify inactive.
	must("inactive", notifyFlags{})
	for _, d := range fake.Deployments() {
		if st := states(d); st[len(st)-1] != "inactive" {
			t.Errorf("deployment %d of %s: statuses %v, want inactive last", d.ID, d.SHA, st)
		}
	}
	if cs := fake.Comments(7); len(cs) != 1 || !strings.Contains(cs[0].Body, "No preview: pull request closed") {
		t.Fatalf("comments after inactive: %+v", cs)
	}

	// Bad input and a read-only token: one clear line each.
	for _, c := range []struct {
		state string
		f     notifyFlags
		env   map[string]string
		want  string
	}{
		{"done", notifyFlags{}, nil, `state "done": want in_progress, success, failure or inactive`},
		{"success", notifyFlags{}, nil, "success needs --url"},
		{"success", notifyFlags{url: "http://x/"}, map[string]string{"GITHUB_TOKEN": ""}, "notify needs a GitHub token"},
		{"success", notifyFlags{url: "http://x/", commit: "not;sha"}, nil, `--commit: commit "not;sha"`},
		{"success", notifyFlags{url: "http://x/"}, map[string]string{"GITHUB_TOKEN": "wrong"}, "notify success on pull request #7: "},
	} {
		saved := map[string]string{}
		for k, v := range c.env {
			saved[k] = env[k]
			env[k] = v
		}
		err := notify(c.state, c.f)
		for k, v := range saved {
			env[k] = v
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "ghs_ci") {
			t.Errorf("notify %s %+v = %v, want one line with %q", c.state, c.f, err, c.want)
		}
	}
}

func states(d githubfake.Deployment) []string {
	var out []string
	for _, s := range d.Statuses {
		out = append(out, s.State)
	}
	return out
}

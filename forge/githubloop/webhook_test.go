package githubloop

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GitHub's published test vector ("Validating webhook deliveries").
func TestSignatureTestVector(t *testing.T) {
	t.Parallel()
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !ValidSignature(secret, body, want) {
		t.Fatal("the test vector does not validate")
	}
	for _, bad := range []string{"", "sha256=", "sha1=757107ea", want[:len(want)-1] + "0", strings.ToUpper(want), "sha256=zz"} {
		if ValidSignature(secret, body, bad) {
			t.Errorf("ValidSignature(%q) = true", bad)
		}
	}
	if ValidSignature(nil, body, Sign(nil, body)) {
		t.Error("an empty secret validates")
	}
}

type recordDeliverer struct {
	mu  sync.Mutex
	got []Delivery
	err error
}

func (r *recordDeliverer) Deliver(ctx context.Context, d Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, d)
	return nil
}

const testSecret = "s3cret"

// prPayload builds a pull_request event payload in GitHub's shape.
func prEvent(action string, n int, sha string, mod func(pr map[string]any)) []byte {
	repo := map[string]any{"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"}
	pr := map[string]any{
		"number": n, "state": "open", "draft": false,
		"head":   map[string]any{"sha": sha, "ref": "feature", "repo": repo},
		"base":   map[string]any{"sha": strings.Repeat("0", 40), "ref": "main", "repo": repo},
		"labels": []any{},
	}
	if mod != nil {
		mod(pr)
	}
	b, _ := json.Marshal(map[string]any{"action": action, "number": n, "pull_request": pr, "repository": repo})
	return b
}

// commentEvent builds an issue_comment "created" payload on pull request n.
func commentEvent(n int, body, assoc string) []byte {
	b, _ := json.Marshal(map[string]any{"action": "created",
		"issue":      map[string]any{"number": n, "pull_request": map[string]any{"url": "https://api.github.com/repos/acme/app/pulls/1"}},
		"comment":    map[string]any{"body": body, "author_association": assoc},
		"repository": map[string]any{"full_name": "acme/app"}})
	return b
}

func post(h http.Handler, event, delivery string, body []byte, sig string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(string(body)))
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", delivery)
	r.Header.Set("Content-Type", "application/json")
	if sig != "" {
		r.Header.Set("X-Hub-Signature-256", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestWebhookSignatures(t *testing.T) {
	t.Parallel()
	body := prEvent("opened", 7, strings.Repeat("a", 40), nil)
	for _, tc := range []struct {
		name string
		sig  string
		code int
		n    int
	}{
		{"good", Sign([]byte(testSecret), body), http.StatusAccepted, 1},
		{"wrong secret", Sign([]byte("other"), body), http.StatusUnauthorized, 0},
		{"other body", Sign([]byte(testSecret), append(body, ' ')), http.StatusUnauthorized, 0},
		{"missing", "", http.StatusUnauthorized, 0},
		{"sha1 only", "sha1=0123", http.StatusUnauthorized, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordDeliverer{}
			h := &Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: rec}
			w := post(h, "pull_request", "d-1", body, tc.sig)
			if w.Code != tc.code || len(rec.got) != tc.n {
				t.Fatalf("code %d, %d deliveries; want %d, %d (%s)", w.Code, len(rec.got), tc.code, tc.n, w.Body)
			}
			if strings.Count(w.Body.String(), "\n") != 1 {
				t.Errorf("body %q is not one line", w.Body)
			}
		})
	}
}

func TestWebhookParsesAndRoutes(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("b", 40)
	rec := &recordDeliverer{}
	h := &Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: rec}
	sign := func(b []byte) string { return Sign([]byte(testSecret), b) }

	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	if w := post(h, "ping", "p-1", ping, sign(ping)); w.Code != http.StatusOK {
		t.Errorf("ping: %d", w.Code)
	}
	push := []byte(`{"ref":"refs/heads/main"}`)
	if w := post(h, "push", "x-1", push, sign(push)); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), "ignored") {
		t.Errorf("push: %d %s", w.Code, w.Body)
	}
	edited := prEvent("edited", 7, sha, nil)
	if w := post(h, "pull_request", "x-2", edited, sign(edited)); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), "ignored") {
		t.Errorf("edited: %d %s", w.Code, w.Body)
	}
	fork := prEvent("labeled", 8, sha, func(pr map[string]any) {
		pr["head"].(map[string]any)["repo"] = map[string]any{"full_name": "mallory/app", "clone_url": "https://github.com/mallory/app.git"}
		pr["labels"] = []any{map[string]any{"name": "preview"}}
		pr["draft"] = true
	})
	var p map[string]any
	json.Unmarshal(fork, &p)
	p["label"] = map[string]any{"name": "preview"}
	fork, _ = json.Marshal(p)
	if w := post(h, "pull_request", "x-3", fork, sign(fork)); w.Code != http.StatusAccepted {
		t.Fatalf("fork: %d %s", w.Code, w.Body)
	}
	if len(rec.got) != 1 {
		t.Fatalf("deliveries %d, want 1", len(rec.got))
	}
	d := rec.got[0]
	if d.ID != "x-3" || d.Action != "labeled" || d.Label != "preview" || d.PR.Number != 8 || d.PR.HeadSHA != sha ||
		!d.PR.Fork() || !d.PR.Draft || !d.PR.HasLabel("Preview") || d.PR.CloneURL != "https://github.com/acme/app.git" || d.PR.HeadRef != "feature" {
		t.Errorf("parsed %+v", d)
	}
	other := []byte(strings.ReplaceAll(string(prEvent("opened", 9, sha, nil)), "acme/app", "acme/other"))
	if w := post(h, "pull_request", "x-4", other, sign(other)); w.Code != http.StatusAccepted || len(rec.got) != 1 {
		t.Errorf("other repository: %d %s", w.Code, w.Body)
	}
	bad := []byte(`{"action":"opened","pull_request":{"number":1,"head":{"sha":"nope"}}}`)
	if w := post(h, "pull_request", "x-5", bad, sign(bad)); w.Code != http.StatusBadRequest {
		t.Errorf("bad sha: %d %s", w.Code, w.Body)
	}
	r := httptest.NewRequest(http.MethodGet, WebhookPath, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestWebhookDedupe(t *testing.T) {
	t.Parallel()
	rec := &recordDeliverer{}
	h := &Handler{Secret: []byte(testSecret), Deliver: rec}
	body := prEvent("synchronize", 3, strings.Repeat("c", 40), nil)
	sig := Sign([]byte(testSecret), body)
	for range 3 {
		post(h, "pull_request", "same", body, sig)
	}
	if w := post(h, "pull_request", "same", body, sig); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already processed") {
		t.Errorf("redelivery: %d %s", w.Code, w.Body)
	}
	post(h, "pull_request", "other", body, sig)
	if len(rec.got) != 2 {
		t.Fatalf("processed %d deliveries, want 2", len(rec.got))
	}
	// An unsigned copy never poisons the cache.
	body2 := prEvent("synchronize", 3, strings.Repeat("d", 40), nil)
	post(h, "pull_request", "fresh", body2, "sha256=00")
	post(h, "pull_request", "fresh", body2, Sign([]byte(testSecret), body2))
	// A failed delivery is processed again when GitHub redelivers it.
	rec.err = errors.New("disk full")
	if w := post(h, "pull_request", "retry", body2, Sign([]byte(testSecret), body2)); w.Code != http.StatusInternalServerError {
		t.Errorf("failing deliverer: %d", w.Code)
	}
	rec.err = nil
	post(h, "pull_request", "retry", body2, Sign([]byte(testSecret), body2))
	if len(rec.got) != 4 {
		t.Fatalf("processed %d deliveries, want 4", len(rec.got))
	}
	// The cache is bounded.
	c := newLRU(2)
	c.claim("a")
	c.claim("b")
	c.claim("c")
	if !c.claim("a") || c.claim("c") {
		t.Error("lru does not evict the oldest")
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	t.Parallel()
	rec := &recordDeliverer{}
	h := &Handler{Secret: []byte(testSecret), Deliver: rec, MaxBytes: 1024}
	big := prEvent("opened", 1, strings.Repeat("a", 40), func(pr map[string]any) { pr["body"] = strings.Repeat("x", 2048) })
	if w := post(h, "pull_request", "big", big, Sign([]byte(testSecret), big)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length: %d", w.Code)
	}
	// A chunked body (no Content-Length) is cut off while reading.
	r := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(string(big)))
	r.ContentLength = -1
	r.Header.Set("X-GitHub-Event", "pull_request")
	r.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), big))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || len(rec.got) != 0 {
		t.Errorf("chunked: %d, %d deliveries", w.Code, len(rec.got))
	}
}

func TestSecretFromEnv(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("from-file\n"), 0o600)
	env := map[string]string{EnvWebhookSecretFile: f}
	s, ok, err := SecretFromEnv(func(k string) string { return env[k] })
	if err != nil || !ok || string(s) != "from-file" {
		t.Errorf("file: %q %v %v", s, ok, err)
	}
	env[EnvWebhookSecret] = "direct"
	if s, _, _ := SecretFromEnv(func(k string) string { return env[k] }); string(s) != "direct" {
		t.Errorf("env: %q", s)
	}
	if _, ok, _ := SecretFromEnv(func(string) string { return "" }); ok {
		t.Error("nothing set gives a secret")
	}
}

func TestWebhookCommandUp(t *testing.T) {
	t.Parallel()
	rec := &recordDeliverer{}
	h := &Handler{Secret: []byte(testSecret), Repo: "acme/app", Deliver: rec}
	send := func(id string, body []byte) int {
		return post(h, "issue_comment", id, body, Sign([]byte(testSecret), body)).Code
	}
	onIssue := []byte(strings.Replace(string(commentEvent(3, "/glimpse up", "OWNER")), `,"pull_request":{"url":"https://api.github.com/repos/acme/app/pulls/1"}`, "", 1))
	if strings.Contains(string(onIssue), "pull_request") {
		t.Fatalf("payload still names a pull request: %s", onIssue)
	}
	edited := []byte(strings.Replace(string(commentEvent(3, "/glimpse up", "OWNER")), `"created"`, `"edited"`, 1))
	for id, body := range map[string][]byte{
		"stranger": commentEvent(3, "/glimpse up", "NONE"),
		"chatter":  commentEvent(3, "lgtm, /glimpse up later", "MEMBER"),
		"issue":    onIssue,
		"edited":   edited,
	} {
		if code := send(id, body); code != http.StatusAccepted {
			t.Errorf("%s: %d", id, code)
		}
	}
	if len(rec.got) != 0 {
		t.Fatalf("ignored comments delivered: %+v", rec.got)
	}
	if code := send("ok", commentEvent(3, "  /glimpse up  \nthanks", "COLLABORATOR")); code != http.StatusAccepted {
		t.Fatalf("command: %d", code)
	}
	if len(rec.got) != 1 || rec.got[0].Command != CommandUp || rec.got[0].PR.Number != 3 || rec.got[0].PR.HeadSHA != "" {
		t.Errorf("delivered %+v", rec.got)
	}
}

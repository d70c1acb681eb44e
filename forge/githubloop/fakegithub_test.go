package githubloop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGitHub is an in-memory GitHub REST API for one repository, following
// GitHub's documented endpoints, status codes (201 on create, 200 on
// edit, 404 for unknown ids, 401 without the token, 422 for invalid
// input) and Link header pagination.
type fakeGitHub struct {
	t          *testing.T
	owner, rep string
	token      string

	mu          sync.Mutex
	nextID      int64
	comments    map[int][]*fakeComment // issue number -> comments, oldest first
	deployments []*fakeDeployment
	pulls       []map[string]any
	requests    []string
	// rateLimited requests are refused as GitHub refuses them past the
	// primary rate limit, resetting at limitReset.
	rateLimited int
	limitReset  time.Time
}

type fakeComment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

type fakeDeployment struct {
	ID          int64  `json:"id"`
	Ref         string `json:"ref"`
	SHA         string `json:"sha"`
	Environment string `json:"environment"`
	Transient   bool   `json:"transient_environment"`
	statuses    []fakeStatus
}

type fakeStatus struct {
	State          string `json:"state"`
	Description    string `json:"description"`
	EnvironmentURL string `json:"environment_url"`
}

func newFakeGitHub(t *testing.T) (*fakeGitHub, *httptest.Server) {
	f := &fakeGitHub{t: t, owner: "acme", rep: "app", token: "tok", nextID: 1000, comments: map[int][]*fakeComment{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "4999")
	w.Header().Set("X-RateLimit-Reset", "1900000000")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func ghError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// page slices items by ?page and ?per_page (default 30, max 100) and sets
// the Link header GitHub sends.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) []T {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p <= 0 {
		p = 1
	}
	last := max(1, (len(items)+per-1)/per)
	link := func(n int, rel string) string {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(per))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<http://%s%s>; rel=%q", r.Host, u.RequestURI(), rel)
	}
	var links []string
	if p < last {
		links = append(links, link(p+1, "next"), link(last, "last"))
	}
	if p > 1 {
		links = append(links, link(1, "first"), link(p-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	lo := min((p-1)*per, len(items))
	return items[lo:min(lo+per, len(items))]
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if a := r.Header.Get("Authorization"); a != "Bearer "+f.token && a != "token "+f.token {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	if f.rateLimited > 0 {
		f.rateLimited--
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(f.limitReset.Unix(), 10))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]string{"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
		return
	}
	prefix := "/repos/" + f.owner + "/" + f.rep + "/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	parts := strings.Split(rest, "/")
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			ghError(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
	}
	str := func(k string) string { s, _ := body[k].(string); return s }
	switch {
	case len(parts) == 3 && parts[0] == "issues" && parts[2] == "comments":
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, page(w, r, f.comments[n]))
		case http.MethodPost:
			if str("body") == "" {
				ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
				return
			}
			f.nextID++
			c := &fakeComment{ID: f.nextID, Body: str("body")}
			f.comments[n] = append(f.comments[n], c)
			writeJSON(w, http.StatusCreated, c)
		default:
			ghError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		}
	case len(parts) == 3 && parts[0] == "issues" && parts[1] == "comments" && r.Method == http.MethodPatch:
		id, _ := strconv.ParseInt(parts[2], 10, 64)
		for _, cs := range f.comments {
			for _, c := range cs {
				if c.ID == id {
					c.Body = str("body")
					writeJSON(w, http.StatusOK, c)
					return
				}
			}
		}
		ghError(w, http.StatusNotFound, "Not Found")
	case len(parts) == 1 && parts[0] == "deployments" && r.Method == http.MethodPost:
		if str("ref") == "" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		f.nextID++
		tr, _ := body["transient_environment"].(bool)
		d := &fakeDeployment{ID: f.nextID, Ref: str("ref"), SHA: str("ref"), Environment: str("environment"), Transient: tr}
		if d.Environment == "" {
			d.Environment = "production"
		}
		f.deployments = append(f.deployments, d)
		writeJSON(w, http.StatusCreated, d)
	case len(parts) == 1 && parts[0] == "deployments" && r.Method == http.MethodGet:
		env := r.URL.Query().Get("environment")
		var out []*fakeDeployment
		for i := len(f.deployments) - 1; i >= 0; i-- { // newest first
			if d := f.deployments[i]; env == "" || d.Environment == env {
				out = append(out, d)
			}
		}
		writeJSON(w, http.StatusOK, page(w, r, out))
	case len(parts) == 3 && parts[0] == "deployments" && parts[2] == "statuses" && r.Method == http.MethodPost:
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		for _, d := range f.deployments {
			if d.ID == id {
				switch str("state") {
				case "error", "failure", "inactive", "in_progress", "queued", "pending", "success":
				default:
					ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
					return
				}
				if len(str("description")) > 140 {
					ghError(w, http.StatusUnprocessableEntity, "description is too long (maximum is 140 characters)")
					return
				}
				s := fakeStatus{State: str("state"), Description: str("description"), EnvironmentURL: str("environment_url")}
				d.statuses = append(d.statuses, s)
				f.nextID++
				writeJSON(w, http.StatusCreated, map[string]any{"id": f.nextID, "state": s.State, "description": s.Description, "environment_url": s.EnvironmentURL})
				return
			}
		}
		ghError(w, http.StatusNotFound, "Not Found")
	case len(parts) == 1 && parts[0] == "pulls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, page(w, r, f.pulls))
	default:
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

func (f *fakeGitHub) commentsOf(pr int) []fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeComment
	for _, c := range f.comments[pr] {
		out = append(out, *c)
	}
	return out
}

// statesOf returns "state[:url or description]" of every status of every
// deployment, in order.
func (f *fakeGitHub) statesOf() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, d := range f.deployments {
		var ss []string
		for _, s := range d.statuses {
			ss = append(ss, s.State)
		}
		out = append(out, ss)
	}
	return out
}

// Package githubfake is an in-memory fake of the parts of GitHub's REST API
// that forge/githubloop uses, for one repository, following GitHub's
// documented responses: status codes (201 on create, 200 on edit, 401
// without valid credentials, 404 for unknown ids, 422 for invalid input),
// Link header pagination, rate-limit headers and the primary rate limit's
// 403, and GitHub App installation tokens
// (POST /app/installations/{id}/access_tokens answered 201 with token and
// expires_at after the app's RS256 JWT is verified with its public key).
//
// It is a test double for tests of this module; it is safe for concurrent
// use (one lock around every request).
package githubfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake; it is an http.Handler (serve it with httptest).
type Server struct {
	// Owner and Repo name the one repository served.
	Owner, Repo string
	// Token is a token accepted on repository endpoints ("" accepts none
	// but the installation tokens issued).
	Token string

	// AppID, AppKey and InstallationID configure a GitHub App: a JWT
	// signed with AppKey's private key and issued by AppID gets
	// installation tokens for InstallationID, each valid for TokenTTL
	// (GitHub: one hour).
	AppID          int64
	AppKey         *rsa.PublicKey
	InstallationID int64
	TokenTTL       time.Duration
	// Now is the fake's clock; default time.Now.
	Now func() time.Time

	mu          sync.Mutex
	nextID      int64
	comments    map[int][]*Comment
	deployments []*Deployment
	pulls       []map[string]any
	closed      map[int]map[string]any
	requests    []string
	tokens      map[string]time.Time // installation token -> expires_at
	issued      int
	rateLimited int
	limitReset  time.Time
}

// Comment is an issue comment.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// Deployment is a deployment with its statuses, oldest status first.
type Deployment struct {
	ID          int64    `json:"id"`
	Ref         string   `json:"ref"`
	SHA         string   `json:"sha"`
	Environment string   `json:"environment"`
	Transient   bool     `json:"transient_environment"`
	Statuses    []Status `json:"-"`
}

// Status is a deployment status.
type Status struct {
	ID             int64  `json:"id"`
	State          string `json:"state"`
	Description    string `json:"description"`
	EnvironmentURL string `json:"environment_url"`
}

// New returns a fake of repository owner/repo accepting token.
func New(owner, repo, token string) *Server {
	return &Server{Owner: owner, Repo: repo, Token: token, nextID: 1000,
		comments: map[int][]*Comment{}, closed: map[int]map[string]any{}, tokens: map[string]time.Time{}}
}

func (f *Server) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Pull returns a pull request in the pulls API's shape: number n at head
// sha, from headRepo ("owner/name") into the fake's repository, whose
// clone URL is cloneURL.
func (f *Server) Pull(n int, sha, headRepo, cloneURL string, labels ...string) map[string]any {
	base := map[string]any{"full_name": f.Owner + "/" + f.Repo, "clone_url": cloneURL}
	ls := []any{}
	for _, l := range labels {
		ls = append(ls, map[string]any{"name": l})
	}
	return map[string]any{"number": n, "state": "open", "draft": false,
		"head":   map[string]any{"sha": sha, "ref": "feature", "repo": map[string]any{"full_name": headRepo}},
		"base":   map[string]any{"ref": "main", "repo": base},
		"labels": ls}
}

// Event returns a pull_request webhook payload for action on pull (a
// value from Pull).
func (f *Server) Event(action string, pull map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"action": action, "number": pull["number"], "pull_request": pull,
		"repository": pull["base"].(map[string]any)["repo"]})
	return b
}

// SetPull makes pull (a value from Pull) open, replacing an open pull
// request of the same number.
func (f *Server) SetPull(pull map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := pull["number"]
	f.pulls = slices.DeleteFunc(f.pulls, func(p map[string]any) bool { return p["number"] == n })
	f.pulls = append(f.pulls, pull)
	delete(f.closed, asInt(n))
}

// ClosePull closes pull request n (it stays readable, state "closed").
func (f *Server) ClosePull(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.pulls {
		if asInt(p["number"]) == n {
			c := map[string]any{}
			for k, v := range p {
				c[k] = v
			}
			c["state"] = "closed"
			f.closed[n] = c
			f.pulls = slices.Delete(f.pulls, i, i+1)
			return
		}
	}
}

// DeletePull makes pull request n unknown (404), as for a deleted
// repository or a number that never existed.
func (f *Server) DeletePull(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = slices.DeleteFunc(f.pulls, func(p map[string]any) bool { return asInt(p["number"]) == n })
	delete(f.closed, n)
}

func asInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case int64:
		return int(n)
	}
	return 0
}

// AddComment adds a comment by someone else to issue pr.
func (f *Server) AddComment(pr int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.comments[pr] = append(f.comments[pr], &Comment{ID: f.nextID, Body: body})
}

// DeleteComments deletes every comment of issue pr.
func (f *Server) DeleteComments(pr int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.comments, pr)
}

// Comments returns the comments of issue pr, oldest first.
func (f *Server) Comments(pr int) []Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Comment
	for _, c := range f.comments[pr] {
		out = append(out, *c)
	}
	return out
}

// Deployments returns every deployment, oldest first.
func (f *Server) Deployments() []Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Deployment
	for _, d := range f.deployments {
		c := *d
		c.Statuses = slices.Clone(d.Statuses)
		out = append(out, c)
	}
	return out
}

// States returns the states of every deployment's statuses, oldest
// deployment first.
func (f *Server) States() [][]string {
	var out [][]string
	for _, d := range f.Deployments() {
		var ss []string
		for _, s := range d.Statuses {
			ss = append(ss, s.State)
		}
		out = append(out, ss)
	}
	return out
}

// RateLimit makes the next n requests fail with GitHub's primary rate
// limit (403, X-RateLimit-Remaining: 0) resetting at reset.
func (f *Server) RateLimit(n int, reset time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rateLimited, f.limitReset = n, reset
}

// Requests returns "METHOD /path" of every request, in order.
func (f *Server) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// Issued returns how many installation tokens were issued.
func (f *Server) Issued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// ValidInstallationToken reports whether tok is an installation token
// the fake issued that is neither expired nor revoked: what a git server
// of the repository (GitHub's smart HTTP, user x-access-token) accepts.
func (f *Server) ValidInstallationToken(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.tokens[tok]
	return ok && f.now().Before(exp)
}

// RevokeTokens revokes every installation token issued (GitHub answers
// 401 Bad credentials to them from then on).
func (f *Server) RevokeTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
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

// authorized reports whether the Authorization header carries the
// static token or an unexpired installation token.
func (f *Server) authorized(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(a, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(a, "token ")
	}
	if !ok || tok == "" {
		return false
	}
	if f.Token != "" && tok == f.Token {
		return true
	}
	exp, ok := f.tokens[tok]
	return ok && f.now().Before(exp)
}

func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if rest, ok := strings.CutPrefix(r.URL.Path, "/app/installations/"); ok && r.Method == http.MethodPost {
		f.accessToken(w, r, rest)
		return
	}
	if r.URL.Path == "/repos/"+f.Owner+"/"+f.Repo+"/installation" && r.Method == http.MethodGet {
		// docs.github.com/en/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app
		jwt, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if f.AppKey == nil {
			ghError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
			return
		}
		if msg := f.verifyJWT(jwt); msg != "" {
			ghError(w, http.StatusUnauthorized, msg)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": f.InstallationID, "app_id": f.AppID,
			"access_tokens_url": "http://" + r.Host + "/app/installations/" + strconv.FormatInt(f.InstallationID, 10) + "/access_tokens"})
		return
	}
	if !f.authorized(r) {
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
	prefix := "/repos/" + f.Owner + "/" + f.Repo + "/"
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
			c := &Comment{ID: f.nextID, Body: str("body")}
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
		d := &Deployment{ID: f.nextID, Ref: str("ref"), SHA: str("ref"), Environment: str("environment"), Transient: tr}
		if d.Environment == "" {
			d.Environment = "production"
		}
		f.deployments = append(f.deployments, d)
		writeJSON(w, http.StatusCreated, d)
	case len(parts) == 1 && parts[0] == "deployments" && r.Method == http.MethodGet:
		// Filters as GitHub documents them: environment and sha.
		env, sha := r.URL.Query().Get("environment"), r.URL.Query().Get("sha")
		var out []*Deployment
		for i := len(f.deployments) - 1; i >= 0; i-- { // newest first
			if d := f.deployments[i]; (env == "" || d.Environment == env) && (sha == "" || d.SHA == sha) {
				out = append(out, d)
			}
		}
		writeJSON(w, http.StatusOK, page(w, r, out))
	case len(parts) == 3 && parts[0] == "deployments" && parts[2] == "statuses":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		i := slices.IndexFunc(f.deployments, func(d *Deployment) bool { return d.ID == id })
		if i < 0 {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		d := f.deployments[i]
		switch r.Method {
		case http.MethodGet:
			var out []Status
			for j := len(d.Statuses) - 1; j >= 0; j-- { // newest first
				out = append(out, d.Statuses[j])
			}
			writeJSON(w, http.StatusOK, page(w, r, out))
		case http.MethodPost:
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
			f.nextID++
			s := Status{ID: f.nextID, State: str("state"), Description: str("description"), EnvironmentURL: str("environment_url")}
			d.Statuses = append(d.Statuses, s)
			writeJSON(w, http.StatusCreated, s)
		default:
			ghError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		}
	case len(parts) == 1 && parts[0] == "pulls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, page(w, r, f.pulls))
	case len(parts) == 2 && parts[0] == "pulls" && r.Method == http.MethodGet:
		n, _ := strconv.Atoi(parts[1])
		for _, p := range f.pulls {
			if asInt(p["number"]) == n {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		if p, ok := f.closed[n]; ok {
			writeJSON(w, http.StatusOK, p)
			return
		}
		ghError(w, http.StatusNotFound, "Not Found")
	default:
		ghError(w, http.StatusNotFound, "Not Found")
	}
}

// accessToken implements POST /app/installations/{id}/access_tokens
// (docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app):
// the app's JWT in Authorization: Bearer, verified RS256 with AppKey, iss
// the app ID, iat and exp as "Generating a JSON Web Token (JWT) for a
// GitHub App" requires (iat not in the future, exp not past and no more
// than 10 minutes into the future); 201 with token and expires_at.
func (f *Server) accessToken(w http.ResponseWriter, r *http.Request, rest string) {
	id, ok := strings.CutSuffix(rest, "/access_tokens")
	if !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || f.AppKey == nil {
		ghError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if msg := f.verifyJWT(jwt); msg != "" {
		ghError(w, http.StatusUnauthorized, msg)
		return
	}
	if id != strconv.FormatInt(f.InstallationID, 10) {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	ttl := f.TokenTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	b := make([]byte, 20)
	rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	exp := f.now().Add(ttl).UTC().Truncate(time.Second)
	f.tokens[tok] = exp
	f.issued++
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions":          map[string]string{"contents": "read", "deployments": "write", "issues": "write", "pull_requests": "read"},
		"repository_selection": "selected"})
}

// verifyJWT returns why jwt is refused, or "".
func (f *Server) verifyJWT(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "A JSON web token could not be decoded"
	}
	dec := base64.RawURLEncoding
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iat *int64          `json:"iat"`
		Exp *int64          `json:"exp"`
		Iss json.RawMessage `json:"iss"`
	}
	h, err1 := dec.DecodeString(parts[0])
	c, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(h, &hdr) != nil || json.Unmarshal(c, &claims) != nil {
		return "A JSON web token could not be decoded"
	}
	if hdr.Alg != "RS256" {
		return "A JSON web token could not be decoded"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(f.AppKey, crypto.SHA256, sum[:], sig) != nil {
		return "A JSON web token could not be decoded"
	}
	now := f.now().Unix()
	switch {
	case claims.Iat == nil || claims.Exp == nil:
		return "'Issued at' claim ('iat') and 'Expiration time' claim ('exp') are required"
	case *claims.Iat > now+60:
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	case *claims.Exp <= now:
		return "'Expiration time' claim ('exp') is too far in the past"
	case *claims.Exp > now+600:
		return "'Expiration time' claim ('exp') is too far in the future"
	}
	if strings.Trim(string(claims.Iss), `"`) != strconv.FormatInt(f.AppID, 10) {
		return "Integration not found"
	}
	return ""
}

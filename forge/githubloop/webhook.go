package githubloop

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
)

// WebhookPath is where GitHub delivers webhooks to the daemon.
const WebhookPath = "/webhooks/github"

// MaxPayloadBytes is GitHub's documented cap on a webhook payload (25 MiB);
// bigger bodies are answered 413 unread.
const MaxPayloadBytes = 25 << 20

// Environment variables holding the webhook secret (or a file with it).
const (
	EnvWebhookSecret     = "GLIMPSE_GITHUB_WEBHOOK_SECRET"
	EnvWebhookSecretFile = "GLIMPSE_GITHUB_WEBHOOK_SECRET_FILE"
)

// SecretFromEnv returns the webhook secret from GLIMPSE_GITHUB_WEBHOOK_SECRET,
// or the contents (trailing newline trimmed) of the file that
// GLIMPSE_GITHUB_WEBHOOK_SECRET_FILE names; ok is false when neither is set.
func SecretFromEnv(getenv func(string) string) (secret []byte, ok bool, err error) {
	if s := getenv(EnvWebhookSecret); s != "" {
		return []byte(s), true, nil
	}
	f := getenv(EnvWebhookSecretFile)
	if f == "" {
		return nil, false, nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v", EnvWebhookSecretFile, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, false, fmt.Errorf("%s: %s is empty", EnvWebhookSecretFile, f)
	}
	return []byte(s), true, nil
}

// Sign returns the X-Hub-Signature-256 value GitHub sends for body: "sha256="
// and the hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ValidSignature reports whether header is the X-Hub-Signature-256 of body
// under secret, comparing in constant time. A missing or malformed header
// is invalid.
func ValidSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// PullRequest is what the loop needs of a pull request, from a webhook
// payload or the pulls API.
type PullRequest struct {
	Number  int
	HeadSHA string
	HeadRef string
	// HeadRepo and BaseRepo are "owner/name"; they differ for a fork.
	HeadRepo string
	BaseRepo string
	// CloneURL is the base repository's clone URL; GitHub serves the head
	// commit of every PR (forks included) from it.
	CloneURL string
	Labels   []string
	Draft    bool
}

// Fork reports whether the PR's head lives in another repository.
func (p PullRequest) Fork() bool { return !strings.EqualFold(p.HeadRepo, p.BaseRepo) }

// HasLabel reports whether the PR carries label name (case-insensitive, as
// GitHub compares labels).
func (p PullRequest) HasLabel(name string) bool {
	for _, l := range p.Labels {
		if strings.EqualFold(l, name) {
			return true
		}
	}
	return false
}

// Delivery is one pull_request webhook delivery, parsed, or a command
// comment (issue_comment) on a pull request.
type Delivery struct {
	ID     string // X-GitHub-Delivery
	Action string
	// Command is CommandUp for a "/glimpse up" comment by someone with
	// write access; PR then has only its Number (the head is read from
	// GitHub when the job runs).
	Command string
	// Label is the label added or removed (labeled, unlabeled).
	Label string
	PR    PullRequest
}

// Deliverer takes parsed deliveries; Queue implements it. Deliver must be
// quick (it runs while GitHub waits for the answer) and, once it returns
// nil, must not lose the delivery's ordering: the Queue has persisted its
// generation by then.
type Deliverer interface {
	Deliver(ctx context.Context, d Delivery) error
}

// CommandUp is the comment that builds a pull request's head again (say,
// after StaleAfter took its preview down): a comment whose first line is
// "/glimpse up", by the repository's owner, a member or a collaborator
// (author_association), on a pull request.
const CommandUp = "/glimpse up"

// commenters are the author_associations allowed to run CommandUp.
var commenters = map[string]bool{"OWNER": true, "MEMBER": true, "COLLABORATOR": true}

// Handler receives GitHub webhooks. It answers:
//   - 401 when X-Hub-Signature-256 is missing or wrong (nothing is read
//     further or processed), 413 for a body over MaxBytes, 405 for a method
//     other than POST, 400 for a payload that does not parse;
//   - 200 for ping and for a delivery it has already processed (same
//     X-GitHub-Delivery; GitHub redelivers on timeouts);
//   - 202 for a pull_request action or a CommandUp comment (issue_comment
//     created) it queued, and for events, actions, comments and
//     repositories it ignores;
//   - 500 when the Deliverer fails; the delivery is then not remembered,
//     so GitHub's redelivery is processed.
//
// Bodies of answers are one line of text.
type Handler struct {
	Secret []byte
	// Repo is "owner/name"; deliveries for other repositories are ignored.
	Repo    string
	Deliver Deliverer
	// MaxBytes bounds the body; default MaxPayloadBytes.
	MaxBytes int64
	Logger   *slog.Logger

	once sync.Once
	seen *lru
}

// handled actions of the pull_request event.
// ready_for_review and converted_to_draft matter when drafts are not built.
var prActions = map[string]bool{"opened": true, "reopened": true, "synchronize": true, "closed": true, "labeled": true, "unlabeled": true,
	"ready_for_review": true, "converted_to_draft": true}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { h.seen = newLRU(4096) })
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		reply(w, http.StatusMethodNotAllowed, "webhooks are POSTed")
		return
	}
	limit := h.MaxBytes
	if limit <= 0 {
		limit = MaxPayloadBytes
	}
	if r.ContentLength > limit {
		reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes", limit))
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		reply(w, http.StatusUnauthorized, "missing X-Hub-Signature-256")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes", limit))
			return
		}
		reply(w, http.StatusBadRequest, "reading the payload: "+oneLine(err.Error()))
		return
	}
	if !ValidSignature(h.Secret, body, sig) {
		reply(w, http.StatusUnauthorized, "X-Hub-Signature-256 does not match the payload")
		return
	}
	id := r.Header.Get("X-GitHub-Delivery")
	// Claimed before processing, so that two concurrent copies of one
	// delivery are processed once; forgotten again when processing fails.
	if id != "" && !h.seen.claim(id) {
		reply(w, http.StatusOK, "delivery "+oneLine(id)+" already processed")
		return
	}
	processed := false
	defer func() {
		if !processed {
			h.seen.forget(id)
		}
	}()
	event := r.Header.Get("X-GitHub-Event")
	switch event {
	case "ping":
		processed = true
		reply(w, http.StatusOK, "pong")
		return
	case "pull_request", "issue_comment":
	default:
		processed = true
		reply(w, http.StatusAccepted, "event "+oneLine(event)+" ignored")
		return
	}
	var d Delivery
	if event == "issue_comment" {
		d, err = parseCommentEvent(body)
	} else {
		d, err = parsePullRequestEvent(body)
	}
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error())
		return
	}
	d.ID = id
	if event == "issue_comment" && d.Command == "" {
		processed = true
		reply(w, http.StatusAccepted, "comment ignored (not "+CommandUp+" by a collaborator on a pull request)")
		return
	}
	if event == "pull_request" && !prActions[d.Action] {
		reply(w, http.StatusAccepted, "action "+oneLine(d.Action)+" ignored")
		return
	}
	if h.Repo != "" && !strings.EqualFold(d.PR.BaseRepo, h.Repo) {
		reply(w, http.StatusAccepted, "repository "+oneLine(d.PR.BaseRepo)+" ignored")
		return
	}
	if err := h.Deliver.Deliver(r.Context(), d); err != nil {
		if h.Logger != nil {
			h.Logger.Error("github webhook", "delivery", id, "err", err)
		}
		reply(w, http.StatusInternalServerError, "queueing the delivery: "+oneLine(err.Error()))
		return
	}
	processed = true
	what := d.Action
	if d.Command != "" {
		what = d.Command
	}
	reply(w, http.StatusAccepted, fmt.Sprintf("pull request #%d %s queued", d.PR.Number, what))
}

// Mount returns a handler that sends WebhookPath on every host to wh and
// everything else to next. (The path is then taken from preview hosts
// too; GitHub must reach the daemon on some host.)
func Mount(next, wh http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == WebhookPath {
			wh.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// The fields of GitHub's pull_request event payload the loop reads.
type prPayload struct {
	Action string `json:"action"`
	Label  *struct {
		Name string `json:"name"`
	} `json:"label"`
	PullRequest *prJSON `json:"pull_request"`
}

type repoJSON struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
}

type prJSON struct {
	Number int  `json:"number"`
	Draft  bool `json:"draft"`
	Head   struct {
		SHA  string    `json:"sha"`
		Ref  string    `json:"ref"`
		Repo *repoJSON `json:"repo"` // null when the fork was deleted
	} `json:"head"`
	Base struct {
		Repo repoJSON `json:"repo"`
	} `json:"base"`
	Labels []struct {
		Name string `json:"name"`
	} `json:"labels"`
}

func (p *prJSON) pullRequest() PullRequest {
	pr := PullRequest{Number: p.Number, Draft: p.Draft, HeadSHA: p.Head.SHA, HeadRef: p.Head.Ref,
		BaseRepo: p.Base.Repo.FullName, CloneURL: p.Base.Repo.CloneURL}
	if p.Head.Repo != nil {
		pr.HeadRepo = p.Head.Repo.FullName
	}
	for _, l := range p.Labels {
		pr.Labels = append(pr.Labels, l.Name)
	}
	return pr
}

func parsePullRequestEvent(body []byte) (Delivery, error) {
	var p prPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Delivery{}, fmt.Errorf("pull_request payload: %s", oneLine(err.Error()))
	}
	if p.PullRequest == nil || p.PullRequest.Number <= 0 {
		return Delivery{}, errors.New("pull_request payload without pull_request.number")
	}
	d := Delivery{Action: p.Action, PR: p.PullRequest.pullRequest()}
	if p.Label != nil {
		d.Label = p.Label.Name
	}
	if d.Action != "closed" && !validSHA(d.PR.HeadSHA) {
		return Delivery{}, fmt.Errorf("pull_request payload: head.sha %q is not a commit SHA", oneLine(d.PR.HeadSHA))
	}
	return d, nil
}

// The fields of GitHub's issue_comment event payload the loop reads.
type commentPayload struct {
	Action string `json:"action"`
	Issue  struct {
		Number      int              `json:"number"`
		PullRequest *json.RawMessage `json:"pull_request"` // present on pull requests only
	} `json:"issue"`
	Comment struct {
		Body              string `json:"body"`
		AuthorAssociation string `json:"author_association"`
	} `json:"comment"`
	Repository repoJSON `json:"repository"`
}

// parseCommentEvent parses an issue_comment payload; Command is set only
// for a created CommandUp comment by a collaborator on a pull request.
func parseCommentEvent(body []byte) (Delivery, error) {
	var p commentPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Delivery{}, fmt.Errorf("issue_comment payload: %s", oneLine(err.Error()))
	}
	if p.Issue.Number <= 0 {
		return Delivery{}, errors.New("issue_comment payload without issue.number")
	}
	d := Delivery{Action: p.Action, PR: PullRequest{Number: p.Issue.Number, BaseRepo: p.Repository.FullName}}
	first, _, _ := strings.Cut(strings.TrimSpace(p.Comment.Body), "\n")
	if p.Action == "created" && p.Issue.PullRequest != nil && strings.TrimSpace(first) == CommandUp &&
		commenters[p.Comment.AuthorAssociation] {
		d.Command = CommandUp
	}
	return d, nil
}

func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// lru is a bounded set of recent delivery IDs.
type lru struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[string]*list.Element
}

func newLRU(max int) *lru { return &lru{max: max, ll: list.New(), m: map[string]*list.Element{}} }

// claim adds k and reports whether it was new.
func (c *lru) claim(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.MoveToFront(e)
		return false
	}
	c.m[k] = c.ll.PushFront(k)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(string))
	}
	return true
}

func (c *lru) forget(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.Remove(e)
		delete(c.m, k)
	}
}

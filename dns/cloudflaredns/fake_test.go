package cloudflaredns_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is an httptest server speaking the part of Cloudflare's v4 API
// that the package doc lists, with the documented envelope, pagination and
// errors. It knows one zone.
type fake struct {
	srv      *httptest.Server
	token    string
	zoneID   string
	zoneName string

	mu      sync.Mutex
	records map[string]*record // by ID
	// limited answers the next n requests with 429 and Retry-After.
	limited    int
	retryAfter string
	requests   []time.Time
	urls       []string // "METHOD path?query" of every request
}

type record struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Content    string    `json:"content"`
	TTL        int       `json:"ttl"`
	Proxied    bool      `json:"proxied"`
	Proxiable  bool      `json:"proxiable"`
	Comment    *string   `json:"comment"`
	Tags       []string  `json:"tags"`
	CreatedOn  time.Time `json:"created_on"`
	ModifiedOn time.Time `json:"modified_on"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func newFake(t *testing.T) *fake {
	f := &fake{token: "test-token", zoneID: randomID(), zoneName: "example.test", records: map[string]*record{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *fake) reply(w http.ResponseWriter, status int, result any, info map[string]int, errs ...apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errs == nil {
		errs = []apiError{}
	}
	body := map[string]any{"success": status < 400, "errors": errs, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	json.NewEncoder(w).Encode(body)
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, time.Now())
	f.urls = append(f.urls, r.Method+" "+r.URL.RequestURI())
	if f.limited > 0 {
		f.limited--
		w.Header().Set("Retry-After", f.retryAfter)
		f.reply(w, http.StatusTooManyRequests, nil, nil, apiError{971, "Please wait and consider throttling your request speed"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.reply(w, http.StatusForbidden, nil, nil, apiError{10000, "Authentication error"})
		return
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/client/v4"), "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "zones" && r.Method == http.MethodGet:
		var res []any
		if n := r.URL.Query().Get("name"); n == "" || strings.EqualFold(n, f.zoneName) {
			res = append(res, map[string]any{"id": f.zoneID, "name": f.zoneName, "status": "active"})
		}
		f.page(w, r, res)
		return
	case len(parts) >= 3 && parts[0] == "zones" && parts[2] == "dns_records":
		if parts[1] != f.zoneID {
			f.reply(w, http.StatusNotFound, nil, nil, apiError{7003, "Could not route to /zones/" + parts[1] + "/dns_records, perhaps your object identifier is invalid?"})
			return
		}
	default:
		f.reply(w, http.StatusNotFound, nil, nil, apiError{7000, "No route for that URI"})
		return
	}
	switch {
	case len(parts) == 3 && r.Method == http.MethodGet:
		f.list(w, r)
	case len(parts) == 3 && r.Method == http.MethodPost:
		var in record
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" || in.Type == "" || in.Content == "" {
			f.reply(w, http.StatusBadRequest, nil, nil, apiError{9000, "DNS name, type and content are required"})
			return
		}
		if e, ok := f.conflict(&in, ""); !ok {
			f.reply(w, http.StatusBadRequest, nil, nil, e)
			return
		}
		in.ID = randomID()
		in.Proxiable = in.Type != "TXT"
		in.CreatedOn, in.ModifiedOn = time.Now().UTC(), time.Now().UTC()
		if in.TTL == 0 {
			in.TTL = 1
		}
		f.records[in.ID] = &in
		f.reply(w, http.StatusOK, in, nil)
	case len(parts) == 4:
		cur, ok := f.records[parts[3]]
		if !ok {
			f.reply(w, http.StatusNotFound, nil, nil, apiError{81044, "Record does not exist."})
			return
		}
		switch r.Method {
		case http.MethodGet:
			f.reply(w, http.StatusOK, cur, nil)
		case http.MethodDelete:
			delete(f.records, cur.ID)
			f.reply(w, http.StatusOK, map[string]string{"id": cur.ID}, nil)
		case http.MethodPut, http.MethodPatch:
			next := *cur
			if r.Method == http.MethodPut {
				next = record{ID: cur.ID, CreatedOn: cur.CreatedOn, TTL: 1}
			}
			var in map[string]json.RawMessage
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				f.reply(w, http.StatusBadRequest, nil, nil, apiError{9000, "invalid JSON"})
				return
			}
			for k, v := range in {
				switch k {
				case "name":
					json.Unmarshal(v, &next.Name)
				case "type":
					json.Unmarshal(v, &next.Type)
				case "content":
					json.Unmarshal(v, &next.Content)
				case "ttl":
					json.Unmarshal(v, &next.TTL)
				case "proxied":
					json.Unmarshal(v, &next.Proxied)
				case "comment":
					json.Unmarshal(v, &next.Comment)
				case "tags":
					json.Unmarshal(v, &next.Tags)
				}
			}
			if next.Name == "" || next.Type == "" || next.Content == "" {
				f.reply(w, http.StatusBadRequest, nil, nil, apiError{9000, "DNS name, type and content are required"})
				return
			}
			if e, ok := f.conflict(&next, cur.ID); !ok {
				f.reply(w, http.StatusBadRequest, nil, nil, e)
				return
			}
			next.ModifiedOn = time.Now().UTC()
			next.Proxiable = next.Type != "TXT"
			f.records[cur.ID] = &next
			f.reply(w, http.StatusOK, next, nil)
		default:
			f.reply(w, http.StatusMethodNotAllowed, nil, nil, apiError{10405, "Method not allowed"})
		}
	default:
		f.reply(w, http.StatusMethodNotAllowed, nil, nil, apiError{10405, "Method not allowed"})
	}
}

// conflict checks the documented rules: an identical record exists
// (81057), or A/AAAA and CNAME records share a name (81053).
func (f *fake) conflict(in *record, self string) (apiError, bool) {
	for _, r := range f.records {
		if r.ID == self || !strings.EqualFold(r.Name, in.Name) {
			continue
		}
		if r.Type == in.Type && strings.EqualFold(r.Content, in.Content) {
			return apiError{81057, "Record already exists."}, false
		}
		if (r.Type == "CNAME") != (in.Type == "CNAME") && isAddr(r.Type) && isAddr(in.Type) {
			return apiError{81053, "An A, AAAA, or CNAME record with that host already exists."}, false
		}
		if r.Type == "CNAME" && in.Type == "CNAME" {
			return apiError{81053, "An A, AAAA, or CNAME record with that host already exists."}, false
		}
	}
	return apiError{}, true
}

func isAddr(t string) bool { return t == "A" || t == "AAAA" || t == "CNAME" }

func (f *fake) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var res []any
	var recs []*record
	for _, rec := range f.records {
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Name != recs[j].Name {
			return recs[i].Name < recs[j].Name
		}
		return recs[i].ID < recs[j].ID
	})
	for _, rec := range recs {
		if v := q.Get("name.exact"); v != "" && !strings.EqualFold(rec.Name, v) {
			continue
		}
		if v := q.Get("name"); v != "" && !strings.EqualFold(rec.Name, v) {
			continue
		}
		if v := q.Get("type"); v != "" && rec.Type != v {
			continue
		}
		if v := q.Get("comment.startswith"); v != "" && (rec.Comment == nil || !strings.HasPrefix(strings.ToLower(*rec.Comment), strings.ToLower(v))) {
			continue
		}
		res = append(res, rec)
	}
	f.page(w, r, res)
}

// page answers one page of all: page and per_page as documented
// (defaults 1 and 100); a page past the last one is empty.
func (f *fake) page(w http.ResponseWriter, r *http.Request, all []any) {
	page, perPage := 1, 100
	if v, err := strconv.ParseFloat(r.URL.Query().Get("page"), 64); err == nil && v >= 1 {
		page = int(v)
	}
	if v, err := strconv.ParseFloat(r.URL.Query().Get("per_page"), 64); err == nil && v >= 1 {
		perPage = int(v)
	}
	start := (page - 1) * perPage
	res := []any{}
	if start < len(all) {
		res = all[start:min(start+perPage, len(all))]
	}
	pages := (len(all) + perPage - 1) / perPage
	f.reply(w, http.StatusOK, res, map[string]int{"page": page, "per_page": perPage, "count": len(res), "total_count": len(all), "total_pages": pages})
}

// add puts a record into the zone directly, as someone else would.
func (f *fake) add(name, typ, content string, comment *string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := randomID()
	f.records[id] = &record{ID: id, Name: name, Type: typ, Content: content, TTL: 1, Comment: comment}
	return id
}

func (f *fake) get(id string) (record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[id]
	if !ok {
		return record{}, false
	}
	return *r, true
}

func (f *fake) named(name string) []record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []record
	for _, r := range f.records {
		if r.Name == name {
			out = append(out, *r)
		}
	}
	return out
}

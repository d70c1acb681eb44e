package cloudflarecdn

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fake is an httptest server speaking the part of Cloudflare's v4 API this
// package calls, following the documentation (see the package doc):
//
//   - the envelope {success, errors[{code, message}], messages, result},
//     with result_info on lists;
//   - GET /zones?name= (zone lookup);
//   - POST /zones/{zone_id}/purge_cache with exactly one of files, hosts,
//     prefixes, tags or purge_everything; at most maxOps items per request
//     (the docs: 30 prefixes per call, 100 operations per request), else
//     400; the result is {"id": ...};
//   - a missing or wrong bearer token: 403 with code 10000
//     "Authentication error"; an unknown zone: 404 with code 7003;
//   - a rate limit: 429 with Retry-After in seconds.
//
// Not from a documentation page (the docs do not give them): the error
// codes 1134 (too many items) and 1191 (purge by hostname not available on
// the zone's plan) and their messages; the client keys on the HTTP
// status, not on them.
type fake struct {
	srv      *httptest.Server
	token    string
	zoneID   string
	zoneName string
	maxOps   int

	mu sync.Mutex
	// noHosts answers purges by hostname (and prefix) with 400, as for a
	// plan without them.
	noHosts bool
	// limited answers the next n purges with 429 and retryAfter.
	limited    int
	retryAfter string
	// purges are the accepted purge bodies, in order; tried counts every
	// purge request, answered or refused.
	purges  []map[string][]string
	tried   int
	lookups int
}

func newFake(t *testing.T) *fake {
	f := &fake{token: "test-token", zoneID: "0123456789abcdef0123456789abcdef", zoneName: "example.test", maxOps: 30}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

type cfErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, result any, errs ...cfErr) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errs == nil {
		errs = []cfErr{}
	}
	body := map[string]any{"success": status/100 == 2, "errors": errs, "messages": []any{}, "result": result}
	if list, ok := result.([]map[string]string); ok {
		body["result_info"] = map[string]int{"page": 1, "per_page": 20, "count": len(list), "total_count": len(list), "total_pages": 1}
	}
	json.NewEncoder(w).Encode(body)
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		reply(w, http.StatusForbidden, nil, cfErr{10000, "Authentication error"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/zones":
		f.lookups++
		list := []map[string]string{}
		if strings.EqualFold(r.URL.Query().Get("name"), f.zoneName) {
			list = append(list, map[string]string{"id": f.zoneID, "name": f.zoneName, "status": "active"})
		}
		reply(w, http.StatusOK, list)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/zones/") && strings.HasSuffix(r.URL.Path, "/purge_cache"):
		f.tried++
		zone := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/zones/"), "/purge_cache")
		if zone != f.zoneID {
			reply(w, http.StatusNotFound, nil, cfErr{7003, "Could not route to /zones/" + zone + "/purge_cache, perhaps your object identifier is invalid?"})
			return
		}
		if f.limited > 0 {
			f.limited--
			w.Header().Set("Retry-After", f.retryAfter)
			reply(w, http.StatusTooManyRequests, nil, cfErr{971, "Please wait and consider throttling your request speed"})
			return
		}
		var body map[string][]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body) != 1 {
			reply(w, http.StatusBadRequest, nil, cfErr{1012, "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\""})
			return
		}
		for kind, items := range body {
			switch kind {
			case "files", "hosts", "prefixes", "tags":
			default:
				reply(w, http.StatusBadRequest, nil, cfErr{1012, "unknown purge type " + kind})
				return
			}
			if len(items) == 0 || len(items) > f.maxOps {
				reply(w, http.StatusBadRequest, nil, cfErr{1134, "too many items in one purge request"})
				return
			}
			if f.noHosts && (kind == "hosts" || kind == "prefixes") {
				reply(w, http.StatusBadRequest, nil, cfErr{1191, "purge by " + kind + " is not available on this zone's plan"})
				return
			}
		}
		f.purges = append(f.purges, body)
		reply(w, http.StatusOK, map[string]string{"id": f.zoneID})
	default:
		reply(w, http.StatusNotFound, nil, cfErr{7000, "No route for that URI"})
	}
}

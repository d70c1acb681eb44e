package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/glimpse-dev/glimpse/idle"
	"github.com/glimpse-dev/glimpse/preview"
)

// Health is what /healthz answers a client that accepts application/json;
// any other client gets the plain "ok\n" it always got, so old clients
// and scripts keep working. A new field may be added; none is removed.
type Health struct {
	// Status is "ok".
	Status string `json:"status"`
	// Idle is the idle timeout of the previews whose glimpse.yaml sets
	// no idle.after: Options.IdleAfter (source "serve"), else
	// idle.DefaultAfter (source "default"). glimpse ls and status show
	// it for those previews.
	Idle preview.IdleTimeout `json:"idle"`
	// Leader is this replica's part in the leader election that decides
	// which replica runs the idle controller; absent when the daemon runs
	// none (it then runs the controller itself). See SetLeader.
	Leader *LeaderStatus `json:"leader,omitempty"`
}

// LeaderStatus is what /healthz says about the leader election.
type LeaderStatus struct {
	// Lease is the coordination.k8s.io Lease contended for,
	// NAMESPACE/NAME.
	Lease string `json:"lease"`
	// Identity is this replica's name in the Lease (holderIdentity).
	Identity string `json:"identity"`
	// Leading is whether this replica holds the Lease now, and so runs
	// the idle controller.
	Leading bool `json:"leading"`
}

// SetLeader records this replica's part in the leader election, for
// /healthz; nil means no election. It is safe to call at any time, from
// any goroutine (the election calls it when leadership changes).
func (s *Stack) SetLeader(st *LeaderStatus) {
	if st != nil {
		c := *st
		st = &c
	}
	s.leader.Store(st)
}

// idleDefault is the idle timeout of previews whose app sets none, and
// where it comes from.
func idleDefault(after time.Duration) preview.IdleTimeout {
	if after > 0 {
		return preview.IdleTimeout{After: after, Source: preview.IdleFromServe}
	}
	return preview.IdleTimeout{After: idle.DefaultAfter, Source: preview.IdleFromDefault}
}

// IdleDefault returns the idle timeout of the previews whose glimpse.yaml
// sets none (see Health.Idle).
func (s *Stack) IdleDefault() preview.IdleTimeout { return s.idleDefault }

// serveHealth answers /healthz: JSON Health when the client accepts
// application/json, else "ok\n".
func (s *Stack) serveHealth(w http.ResponseWriter, r *http.Request) {
	for _, v := range r.Header["Accept"] {
		if strings.Contains(v, "application/json") {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(Health{Status: "ok", Idle: s.idleDefault, Leader: s.leader.Load()})
			return
		}
	}
	w.Write([]byte("ok\n"))
}

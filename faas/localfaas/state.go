package localfaas

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
	"github.com/glimpse-dev/glimpse/preview"
)

// stateFile is the persisted desired state, home/functions.json.
type stateFile struct {
	Version   int             `json:"version"`
	Functions []stateFunction `json:"functions"`
}

type stateFunction struct {
	preview.Function
	Replicas  int       `json:"replicas"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"createdAt"`
}

const stateVersion = 1

func loadState(p string) (stateFile, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{Version: stateVersion}, nil
	}
	if err != nil {
		return stateFile{}, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return stateFile{}, preview.Errorf(preview.FailedPrecondition, "localfaas: %s is not valid: %v", p, err)
	}
	if st.Version != stateVersion {
		return stateFile{}, preview.Errorf(preview.FailedPrecondition, "localfaas: %s has version %d; this build reads version %d", p, st.Version, stateVersion)
	}
	return st, nil
}

// save writes the current desired state. Concurrent saves are ordered by
// the generation of their snapshot, so an older snapshot never overwrites a
// newer one.
func (r *Runtime) save() error {
	r.mu.RLock()
	gen := r.gen.Add(1)
	st := stateFile{Version: stateVersion, Functions: make([]stateFunction, 0, len(r.fns))}
	for _, e := range r.fns {
		st.Functions = append(st.Functions, stateFunction{Function: e.fn, Replicas: e.replicas, Digest: e.digest, CreatedAt: e.created})
	}
	r.mu.RUnlock()
	sort.Slice(st.Functions, func(i, j int) bool { return st.Functions[i].Name < st.Functions[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return preview.WithCode(preview.Internal, err)
	}

	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	if gen <= r.savedGen {
		return nil
	}
	if err := atomicfile.Write(r.statePath, b, &atomicfile.Options{SyncDir: true}); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: saving state: %w", err))
	}
	r.savedGen = gen
	return nil
}

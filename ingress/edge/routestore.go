package edge

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
	"github.com/glimpse-dev/glimpse/preview"
)

// RouteStore persists the edge's routes. The Edge serialises its calls
// (one at a time, in the order of the changes), keeps the table in memory
// and reads the store only in New. A failed Put or Delete leaves the
// stored state as it was or with the change applied, never a mix, and the
// Edge then does not apply the change in memory either.
type RouteStore interface {
	// Load returns every stored route.
	Load() ([]preview.Route, error)
	// Put stores r, replacing the route for r.Host.
	Put(r preview.Route) error
	// Delete removes the route for host; a missing one is success.
	Delete(host string) error
	// Close releases the store.
	Close() error
}

// JournalStore is the RouteStore of one machine: a snapshot (path +
// ".snap", gob-encoded routes, replaced atomically) plus a journal beside
// it (path + ".log", one JSON line per change, fsynced), so a change writes
// one line whatever the number of routes. When the journal holds more
// entries than the table has routes (and at least compactAfter), the next
// change writes a new snapshot and empties the journal. A crash mid-append
// leaves a torn last line, which the next open ignores; a crash between
// snapshot and truncation replays changes the snapshot already holds,
// which is harmless (puts and deletes are idempotent). The snapshot is gob
// because a daemon with 10,000 routes decodes it about three times faster
// than JSON (BenchmarkOpen10k). A state file of the edge's earlier format
// (JSON at path itself) is read when there is no snapshot, and replaced by
// one at once.
type JournalStore struct {
	path string
	mu   sync.Mutex
	log  *os.File
	// entries is the number of lines in the journal; table mirrors the
	// stored state for compaction.
	entries int
	table   map[string]preview.Route
}

// compactAfter is the smallest journal that is compacted.
const compactAfter = 1024

// OpenJournalStore opens (creating its directory) the store whose
// snapshot is path. A corrupt snapshot is FailedPrecondition, so a daemon
// never starts silently without its routes.
func OpenJournalStore(path string) (*JournalStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fileErr(err)
	}
	routes, err := readSnapshot(path + ".snap")
	legacy := false
	if errors.Is(err, fs.ErrNotExist) {
		routes, err = readState(path)
		legacy = err == nil && routes != nil
	}
	if err != nil {
		return nil, err
	}
	s := &JournalStore{path: path, table: make(map[string]preview.Route, len(routes))}
	for _, r := range routes {
		s.table[r.Host] = r
	}
	if err := s.replay(); err != nil {
		return nil, err
	}
	s.log, err = os.OpenFile(path+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fileErr(err)
	}
	if legacy {
		if err := s.compactLocked(); err != nil {
			s.log.Close()
			return nil, err
		}
		os.Remove(path)
	}
	return s, nil
}

// readSnapshot reads a gob snapshot; fs.ErrNotExist when there is none.
func readSnapshot(p string) ([]preview.Route, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: read route snapshot: %v", err)
	}
	defer f.Close()
	var snap routeSnapshot
	if err := gob.NewDecoder(bufio.NewReaderSize(f, 256<<10)).Decode(&snap); err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: route snapshot %s is corrupt: %v", p, err)
	}
	if snap.Version != 1 {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: route snapshot %s has version %d, this edge reads version 1", p, snap.Version)
	}
	return snap.Routes, nil
}

// routeSnapshot is the gob form of the snapshot.
type routeSnapshot struct {
	Version int
	Routes  []preview.Route
}

// journalEntry is one line of the journal: a put or a delete.
type journalEntry struct {
	Put    *preview.Route `json:"put,omitempty"`
	Delete string         `json:"delete,omitempty"`
}

func (s *JournalStore) replay() error {
	f, err := os.Open(s.path + ".log")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return preview.Errorf(preview.FailedPrecondition, "edge: read route journal: %v", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // a line without its newline is a torn write: ignored
		}
		if err != nil {
			return preview.Errorf(preview.FailedPrecondition, "edge: read route journal: %v", err)
		}
		var e journalEntry
		if err := json.Unmarshal(bytes.TrimSpace(line), &e); err != nil {
			return preview.Errorf(preview.FailedPrecondition, "edge: route journal %s.log is corrupt at entry %d: %v", s.path, s.entries+1, err)
		}
		switch {
		case e.Put != nil:
			s.table[e.Put.Host] = *e.Put
		case e.Delete != "":
			delete(s.table, e.Delete)
		}
		s.entries++
	}
}

// Load returns the stored routes, in no particular order.
func (s *JournalStore) Load() ([]preview.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]preview.Route, 0, len(s.table))
	for _, r := range s.table {
		out = append(out, r)
	}
	return out, nil
}

// Put appends the route to the journal.
func (s *JournalStore) Put(r preview.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(journalEntry{Put: &r}, func() { s.table[r.Host] = r })
}

// Delete appends the deletion to the journal; nothing when host has no
// route.
func (s *JournalStore) Delete(host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.table[host]; !ok {
		return nil
	}
	return s.appendLocked(journalEntry{Delete: host}, func() { delete(s.table, host) })
}

func (s *JournalStore) appendLocked(e journalEntry, apply func()) error {
	if s.log == nil {
		return preview.Errorf(preview.FailedPrecondition, "edge: route store is closed")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return preview.Errorf(preview.Internal, "edge: %v", err)
	}
	off, err := s.log.Seek(0, io.SeekEnd)
	if err != nil {
		return fileErr(err)
	}
	if _, err := s.log.Write(append(b, '\n')); err == nil {
		err = s.log.Sync()
	} else {
		// Undo a partial line so the journal stays replayable.
		s.log.Truncate(off)
		return fileErr(err)
	}
	apply()
	s.entries++
	if s.entries >= compactAfter && s.entries > len(s.table) {
		if err := s.compactLocked(); err != nil {
			// The change is stored in the journal; compaction is retried
			// at the next change.
			return nil
		}
	}
	return nil
}

// compactLocked writes a snapshot of the table and empties the journal.
func (s *JournalStore) compactLocked() error {
	routes := make([]preview.Route, 0, len(s.table))
	for _, r := range s.table {
		routes = append(routes, r)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(routeSnapshot{Version: 1, Routes: routes}); err != nil {
		return preview.Errorf(preview.Internal, "edge: %v", err)
	}
	if err := writeAtomic(s.path+".snap", buf.Bytes()); err != nil {
		return err
	}
	if err := s.log.Truncate(0); err != nil {
		return fileErr(err)
	}
	if err := s.log.Sync(); err != nil {
		return fileErr(err)
	}
	s.entries = 0
	return nil
}

// Close closes the journal. Later calls fail.
func (s *JournalStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.log.Close()
	s.log = nil
	return err
}

// memoryStore keeps nothing: the routes of an Edge without a state file.
type memoryStore struct{}

func (memoryStore) Load() ([]preview.Route, error) { return nil, nil }
func (memoryStore) Put(preview.Route) error        { return nil }
func (memoryStore) Delete(string) error            { return nil }
func (memoryStore) Close() error                   { return nil }

// stateFile is the edge's earlier state file: all routes as JSON.
type stateFile struct {
	Version int             `json:"version"`
	Routes  []preview.Route `json:"routes"`
}

func readState(p string) ([]preview.Route, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: read state file: %v", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: state file %s is corrupt: %v", p, err)
	}
	if st.Version != 1 {
		return nil, preview.Errorf(preview.FailedPrecondition, "edge: state file %s has version %d, this edge reads version 1", p, st.Version)
	}
	return st.Routes, nil
}

// writeState writes routes to p in the edge's earlier JSON state format
// (tests and benchmarks use it to make such files).
func writeState(p string, routes []preview.Route) error {
	sort.Slice(routes, func(i, j int) bool { return routes[i].Host < routes[j].Host })
	b, err := json.Marshal(stateFile{Version: 1, Routes: routes})
	if err != nil {
		return preview.Errorf(preview.Internal, "edge: %v", err)
	}
	return writeAtomic(p, append(b, '\n'))
}

// writeAtomic replaces p with b (see package atomicfile).
func writeAtomic(p string, b []byte) error {
	if err := atomicfile.Write(p, b, nil); err != nil {
		return fileErr(err)
	}
	return nil
}

func fileErr(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return preview.WithCode(preview.PermissionDenied, fmt.Errorf("edge: write route state: %w", err))
	}
	return preview.WithCode(preview.Internal, fmt.Errorf("edge: write route state: %w", err))
}

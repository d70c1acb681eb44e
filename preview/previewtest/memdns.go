package previewtest

import (
	"context"
	"sort"
	"sync"

	"github.com/glimpse-dev/glimpse/preview"
)

// MemDNS is an in-memory preview.DNS: one record per host, holding the
// labels of its last Ensure. Hosts must be valid host names
// (preview.ValidateHost: lower case, no port, no trailing dot); anything
// else is InvalidArgument and changes nothing. It is safe for concurrent use
// and honours cancellation; nothing persists.
type MemDNS struct {
	mu      sync.Mutex
	records map[string]preview.Labels
}

// NewMemDNS returns a MemDNS without records.
func NewMemDNS() *MemDNS { return &MemDNS{records: map[string]preview.Labels{}} }

var _ preview.DNS = (*MemDNS)(nil)

// Ensure creates host's record or replaces its labels with labels.
func (d *MemDNS) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[host] = labels.Clone()
	return nil
}

// Hosts returns the hosts whose record labels match selector, sorted.
func (d *MemDNS) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []string{}
	for h, l := range d.records {
		if l.Matches(selector) {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Remove deletes host's record; a missing record is success.
func (d *MemDNS) Remove(ctx context.Context, host string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := preview.ValidateHost(host); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.records, host)
	return nil
}

// Labels returns the labels of host's record; ok is false when there is
// none. It is for tests that inspect the state directly.
func (d *MemDNS) Labels(host string) (labels preview.Labels, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.records[host]
	return l.Clone(), ok
}

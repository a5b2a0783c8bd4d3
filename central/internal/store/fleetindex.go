package store

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/machinequery"
)

// fleetIndex is every machine record of the fleet in memory, with what
// a query reads of it, so that a search of the whole fleet reads no
// file: loaded from bucket "fleet" when the store opens (and after a
// Restore), and brought up to date with the records each transaction
// changed once it commits. The records it holds are never modified (the
// derivation copies a record it changes), so a reader may keep one.
type fleetIndex struct {
	mu sync.RWMutex
	// machines by key (site "/" id). sorted holds them in key order, one
	// after the other in memory (a search reads it from start to end),
	// and machines points into it; a new machine is held on its own and
	// makes the index dirty: sorted is rebuilt at the next read.
	machines map[string]*indexed
	sorted   []indexed
	dirty    bool
	// labels of each site, which each of its machines' subjects holds.
	labels map[string]map[string]string

	version uint64
	changed chan struct{}
}

// indexed is one machine with what a query reads of it (its site's
// labels included).
type indexed struct {
	s   machinequery.Subject
	key string
	m   *fleet.Machine
}

func newFleetIndex(version uint64) *fleetIndex {
	return &fleetIndex{machines: map[string]*indexed{}, labels: map[string]map[string]string{},
		version: version, changed: make(chan struct{})}
}

// machineKey is a machine's key in the index and the cursor of a page:
// its site, a slash and its id (neither has a slash).
func machineKey(site, id string) string { return site + "/" + id }

// loadFleetIndex reads every record and every site's labels of the store
// at version.
func loadFleetIndex(tx *bolt.Tx, version uint64) (*fleetIndex, error) {
	x := newFleetIndex(version)
	err := tx.Bucket(bucketSites).ForEach(func(k, _ []byte) error {
		s, err := siteIn(tx, string(k))
		if err == nil {
			x.labels[s.ID] = s.Labels
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketFleet).ForEachBucket(func(site []byte) error {
		b := tx.Bucket(bucketFleet).Bucket(site)
		return b.ForEach(func(k, _ []byte) error {
			m, err := machineRecord(b, string(k))
			if err == nil && m != nil {
				x.set(m)
			}
			return err
		})
	})
	return x, err
}

// set puts m into the index (the caller holds mu, or owns x): in place
// if it holds the machine, else on its own until sorted is rebuilt.
func (x *fleetIndex) set(m *fleet.Machine) {
	key := machineKey(m.Site, m.ID)
	s := subjectOf(m)
	s.Labels = x.labels[m.Site]
	if e, ok := x.machines[key]; ok {
		e.m, e.s = m, s
		return
	}
	x.machines[key] = &indexed{key: key, m: m, s: s}
	x.dirty = true
}

// setLabels sets site's labels, in its machines' subjects too.
func (x *fleetIndex) setLabels(site string, labels map[string]string) {
	if old, ok := x.labels[site]; ok && maps.Equal(old, labels) {
		return
	}
	x.labels[site] = labels
	prefix := site + "/"
	for key, e := range x.machines {
		if strings.HasPrefix(key, prefix) {
			e.s.Labels = labels
		}
	}
}

// subjectOf is what a query reads of m (its site's labels are added at
// match time).
func subjectOf(m *fleet.Machine) machinequery.Subject {
	s := machinequery.Subject{ID: m.ID, Hostname: m.Hostname, MACs: m.MACs, Tags: m.Tags, State: m.State,
		Workflow: machinequery.None, Site: m.Site, OrderStatus: machinequery.None}
	if m.Workflow != nil {
		s.Workflow = m.Workflow.Status
	}
	if m.LastOrder != nil {
		s.Order, s.OrderStatus = m.LastOrder.Key, m.LastOrder.Status
	}
	s.Addrs = []netip.Addr{} // central knows no machine's addresses
	return s
}

// update applies a committed transaction's changes and, if there were
// any, moves the version on and wakes the watchers.
func (x *fleetIndex) update(changes []fleetChange) {
	if len(changes) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range changes {
		switch {
		case c.SiteOnly:
			x.setLabels(c.Site, c.Labels)
		case c.M == nil:
			if _, ok := x.machines[machineKey(c.Site, c.ID)]; ok {
				delete(x.machines, machineKey(c.Site, c.ID))
				x.dirty = true
			}
		default:
			x.set(c.M)
		}
	}
	x.version++
	close(x.changed)
	x.changed = make(chan struct{})
}

// view calls fn with the machines in key order (sorted first if they
// changed), under the index's read lock.
func (x *fleetIndex) view(fn func(sorted []indexed)) {
	for {
		x.mu.RLock()
		if !x.dirty {
			defer x.mu.RUnlock()
			fn(x.sorted)
			return
		}
		x.mu.RUnlock()
		x.mu.Lock()
		if x.dirty {
			x.rebuild()
		}
		x.mu.Unlock()
	}
}

// rebuild lays the machines out in key order, one after the other (the
// caller holds mu for writing).
func (x *fleetIndex) rebuild() {
	sorted := make([]indexed, 0, len(x.machines))
	for _, e := range x.machines {
		sorted = append(sorted, *e)
	}
	slices.SortFunc(sorted, func(a, b indexed) int { return strings.Compare(a.key, b.key) })
	for i := range sorted {
		x.machines[sorted[i].key] = &sorted[i]
	}
	x.sorted, x.dirty = sorted, false
}

// now is a seed of the index's version: a store opened (or restored)
// later starts at a larger version than any before it had reached, so
// that a stream resumed across a restart still sees a change.
func versionSeed() uint64 { return uint64(time.Now().UnixNano()) }

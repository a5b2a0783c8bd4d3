package orders

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/central/internal/fleet"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// DesiredFleet is a fleet.Reader of what central's store alone says: the
// machines of each site's desired state (no state, no last order) and
// the sites' links as connected tells. It is what orders resolve
// against until central is given the fleet model (package fleet), which
// knows every machine and its orders; its queries are the terms
// site:<glob>, id:<glob>, hostname:<glob> and tag:<tag>.
type DesiredFleet struct {
	DB *store.DB
	// Connected says whether a site's session is up; nil: none is.
	Connected func(site string) bool

	mu      sync.Mutex
	changed chan struct{}
}

var _ fleet.Reader = (*DesiredFleet)(nil)

// all returns every desired machine, by site then id.
func (f *DesiredFleet) all() ([]*fleet.Machine, error) {
	sites, err := f.DB.Sites()
	if err != nil {
		return nil, err
	}
	var out []*fleet.Machine
	for _, s := range sites {
		items, err := f.DB.ListDesired(s.ID, store.KindMachine)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			out = append(out, machineOf(s.ID, it.Key, it.Object))
		}
	}
	slices.SortFunc(out, func(a, b *fleet.Machine) int {
		return strings.Compare(a.Site+"/"+a.ID, b.Site+"/"+b.ID)
	})
	return out, nil
}

// match reports whether m matches every term of q.
func match(q string, m *fleet.Machine) (bool, error) {
	for _, term := range strings.Fields(q) {
		key, val, ok := strings.Cut(term, ":")
		var hit bool
		switch {
		case !ok:
			return false, errs.Invalid("q", "term %q is not one of site:, id:, hostname:, tag:", clip(term))
		case key == "site":
			hit, _ = path.Match(val, m.Site)
		case key == "id":
			hit, _ = path.Match(val, m.ID)
		case key == "hostname":
			hit, _ = path.Match(val, m.Hostname)
		case key == "tag":
			hit = slices.Contains(m.Tags, val)
		default:
			return false, errs.Invalid("q", "term %q is not one of site:, id:, hostname:, tag:", clip(term))
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// Machines answers a page of the machines q matches.
func (f *DesiredFleet) Machines(q string, limit int, after string) (*fleet.Page, error) {
	all, err := f.all()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	page := &fleet.Page{Machines: []*fleet.Machine{}}
	for _, m := range all {
		ok, err := match(q, m)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		page.Total++
		if key := m.Site + "/" + m.ID; key > after && len(page.Machines) < limit {
			page.Machines = append(page.Machines, m)
		} else if key > after && page.Next == "" {
			last := page.Machines[len(page.Machines)-1]
			page.Next = last.Site + "/" + last.ID
		}
	}
	return page, nil
}

// Machine answers one machine.
func (f *DesiredFleet) Machine(site, id string) (*fleet.Machine, error) {
	raw, err := f.DB.Desired(site, store.KindMachine, id)
	if err != nil {
		return nil, err
	}
	return machineOf(site, id, raw), nil
}

// machineOf is the fleet's view of a desired machine.
func machineOf(site, id string, raw json.RawMessage) *fleet.Machine {
	var m syncproto.Machine
	_ = json.Unmarshal(raw, &m)
	fm := &fleet.Machine{Site: site, ID: id, Hostname: m.Hostname, Tags: m.Tags}
	for _, nic := range m.Interfaces {
		fm.MACs = append(fm.MACs, nic.MAC)
	}
	return fm
}

// Timeline answers nothing: the store alone keeps no timeline.
func (f *DesiredFleet) Timeline(site, id string, limit int) ([]fleet.Event, error) {
	return []fleet.Event{}, nil
}

// Sites answers every site with its link.
func (f *DesiredFleet) Sites() ([]*fleet.Site, error) {
	sites, err := f.DB.Sites()
	if err != nil {
		return nil, err
	}
	out := make([]*fleet.Site, len(sites))
	for i, s := range sites {
		out[i] = &fleet.Site{ID: s.ID, Name: s.Name, Labels: s.Labels, Link: fleet.Link{
			Connected: f.Connected != nil && f.Connected(s.ID), LastSeen: s.LastSeen,
			Revision: s.Revision, AckedRevision: s.AckedRevision, StoredSeq: s.StoredSeq}}
	}
	return out, nil
}

// Summary answers the counts it knows.
func (f *DesiredFleet) Summary(now time.Time) (*fleet.Summary, error) {
	all, err := f.all()
	if err != nil {
		return nil, err
	}
	sites, err := f.Sites()
	if err != nil {
		return nil, err
	}
	sum := &fleet.Summary{Sites: len(sites), Machines: len(all), ByState: map[string]int{}}
	for _, s := range sites {
		if s.Link.Connected {
			sum.SitesConnected++
		}
	}
	return sum, nil
}

// Version is 0: this reader does not follow changes.
func (f *DesiredFleet) Version() uint64 { return 0 }

// Changed is a channel never closed.
func (f *DesiredFleet) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

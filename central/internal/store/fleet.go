package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/machinequery"
	"github.com/outposthq/outpost/syncproto"
)

// The fleet model's reads (fleet.Reader, through Fleet) and the hub's
// records of each site's link and report.

// SetLink records that node holds site's session from since on (at t,
// connected), or that its session that started at since ended at t. The
// end of a session ends only that session's link: a newer session (on
// this node or another) stays.
func (d *DB) SetLink(site, node string, since time.Time, connected bool, t time.Time) error {
	_, err := d.exec(cmdSetLink, &setLinkPayload{Site: site, Node: node, Connected: connected, Since: since.UTC(), Time: t.UTC()})
	return err
}

// ReportSite records what site reported of itself at t (clipped to
// syncproto's limits).
func (d *DB) ReportSite(site string, r *syncproto.Report, t time.Time) error {
	if r == nil {
		return errs.Invalid("report", "is required")
	}
	_, err := d.exec(cmdReportSite, &reportSitePayload{Site: site, Report: r.Clip(), Time: t.UTC()})
	return err
}

// LiveFunc says whether this node holds site's session now, and since
// when it last heard from it (the hub's Status).
type LiveFunc func(site string) (connected bool, heard time.Time)

// SetLive makes the fleet's sites show their link as fn says (the hub of
// the node that serves the fleet's reads, which is the leader, holding
// every session); without it, as the link records say.
func (d *DB) SetLive(fn LiveFunc) { d.live.Store(&fn) }

// Fleet is the fleet model's reader (fleet.Reader): machines from the
// in-memory index, timelines and sites from the file.
type Fleet struct{ d *DB }

// Fleet returns the fleet model's reader.
func (d *DB) Fleet() *Fleet { return &Fleet{d: d} }

var _ fleet.Reader = (*Fleet)(nil)

// Limits of a page of machines.
const (
	DefaultFleetPage = 100
	MaxFleetPage     = 1000
)

// Machines answers a page of the machines q matches (machinequery's
// fleet grammar), in site then id order, after the cursor after
// ("site/id", a page's Next).
func (f *Fleet) Machines(q string, limit int, after string) (*fleet.Page, error) {
	query, err := machinequery.ParseFleet(q)
	if err != nil {
		return nil, errs.Invalid("q", "%s", err.Error())
	}
	if limit <= 0 {
		limit = DefaultFleetPage
	}
	limit = min(limit, MaxFleetPage)
	page := &fleet.Page{Machines: []*fleet.Machine{}}
	x := f.d.index.Load()
	x.view(func(sorted []indexed) {
		page.Version = x.version
		// The page starts after the cursor: the machines before it are
		// only counted.
		from, _ := slices.BinarySearchFunc(sorted, after, func(e indexed, key string) int {
			if e.key <= key {
				return -1
			}
			return 1
		})
		if query.Empty() {
			page.Total = len(sorted)
			page.Machines = pageOf(sorted[from:min(from+limit, len(sorted))])
			if from+limit < len(sorted) {
				page.Next = sorted[from+limit-1].key
			}
			return
		}
		var found []int
		page.Total, found = search(query, sorted, from, limit+1)
		for _, i := range found[:min(limit, len(found))] {
			page.Machines = append(page.Machines, sorted[i].m)
		}
		if len(found) > limit {
			page.Next = sorted[found[limit-1]].key
		}
	})
	return page, nil
}

// searchChunk is how many machines one goroutine of a search matches at
// least: a large fleet is searched on every CPU at once.
const searchChunk = 16384

// search matches q against every machine of sorted and returns how many
// match, and the positions of the first want of them at or after from.
func search(q *machinequery.Query, sorted []indexed, from, want int) (total int, found []int) {
	n := min(runtime.GOMAXPROCS(0), (len(sorted)+searchChunk-1)/searchChunk)
	if n <= 1 {
		return searchPart(q, sorted, 0, len(sorted), from, want)
	}
	totals, founds := make([]int, n), make([][]int, n)
	var wg sync.WaitGroup
	size := (len(sorted) + n - 1) / n
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			totals[c], founds[c] = searchPart(q, sorted, c*size, min((c+1)*size, len(sorted)), from, want)
		}()
	}
	wg.Wait()
	for c := range n {
		total += totals[c]
		found = append(found, founds[c][:min(len(founds[c]), want-len(found))]...)
	}
	return total, found
}

// searchPart is search of sorted[lo:hi].
func searchPart(q *machinequery.Query, sorted []indexed, lo, hi, from, want int) (total int, found []int) {
	for i := lo; i < hi; i++ {
		if !q.Match(&sorted[i].s) {
			continue
		}
		total++
		if i >= from && len(found) < want {
			found = append(found, i)
		}
	}
	return total, found
}

// pageOf is the machines of entries.
func pageOf(entries []indexed) []*fleet.Machine {
	out := make([]*fleet.Machine, len(entries))
	for i := range entries {
		out[i] = entries[i].m
	}
	return out
}

// Machine answers one machine's record.
func (f *Fleet) Machine(site, id string) (*fleet.Machine, error) {
	x := f.d.index.Load()
	x.mu.RLock()
	e := x.machines[machineKey(site, id)]
	x.mu.RUnlock()
	if e == nil {
		return nil, errs.NotFound("machine", site+"/"+id)
	}
	return e.m, nil
}

// Version is the fleet's version: it grows at every change of a record
// or of a site.
func (f *Fleet) Version() uint64 {
	return f.d.index.Load().Version()
}

// Version is the index's version.
func (x *fleetIndex) Version() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.version
}

// Changed returns a channel closed at the fleet's next change.
func (f *Fleet) Changed() <-chan struct{} {
	x := f.d.index.Load()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.changed
}

// Timeline answers the machine's site events and central's revisions
// that touched it or its orders, newest first, at most limit.
func (f *Fleet) Timeline(site, id string, limit int) ([]fleet.Event, error) {
	if limit <= 0 {
		limit = DefaultFleetPage
	}
	limit = min(limit, MaxFleetPage)
	var out []fleet.Event
	err := f.d.view(func(tx *bolt.Tx) error {
		if _, err := siteIn(tx, site); err != nil {
			return err
		}
		events, err := machineSiteEvents(tx, site, id, limit)
		if err != nil {
			return err
		}
		revs, err := machineRevisions(tx, site, id, limit)
		if err != nil {
			return err
		}
		out = append(events, revs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b fleet.Event) int { return b.Time.Compare(a.Time) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// machineSiteEvents reads the machine's newest site events, newest
// first.
func machineSiteEvents(tx *bolt.Tx, site, id string, limit int) ([]fleet.Event, error) {
	out := []fleet.Event{}
	idx := tx.Bucket(bucketMachineEvents).Bucket([]byte(site))
	events := tx.Bucket(bucketEvents).Bucket([]byte(site))
	if idx == nil || events == nil {
		return out, nil
	}
	prefix := append([]byte(id), 0)
	c := idx.Cursor()
	k, _ := c.Seek(machineEventKey(id, 1<<64-1))
	if k == nil {
		k, _ = c.Last()
	} else if !bytes.HasPrefix(k, prefix) || readU64(k[len(prefix):]) != 1<<64-1 {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
		seq := readU64(k[len(prefix):])
		stored, err := get[Event](events, u64(seq))
		if err != nil {
			return nil, err
		}
		if stored == nil {
			continue
		}
		var e fleet.SiteEvent
		if err := json.Unmarshal(stored.Data, &e); err != nil {
			continue
		}
		out = append(out, fleet.Event{Source: fleet.SourceSite, Seq: seq, Time: e.Time, Kind: e.Kind,
			Message: e.Message, By: e.By, Fields: e.Fields})
	}
	return out, nil
}

// machineRevisions reads the site's revisions (those central keeps)
// that put or deleted the machine or an order for it, newest first.
func machineRevisions(tx *bolt.Tx, site, id string, limit int) ([]fleet.Event, error) {
	out := []fleet.Event{}
	b := tx.Bucket(bucketRevisions).Bucket([]byte(site))
	if b == nil {
		return out, nil
	}
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
		var r Revision
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("%w: revision %s/%d: %v", ErrCorrupt, site, readU64(k), err)
		}
		if r.Full {
			continue // a snapshot repeats what the deltas said
		}
		for _, ch := range r.Changes {
			if e, ok := revisionEvent(&r, ch, id); ok {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// revisionEvent is the timeline's entry for a change of a revision, if
// it is about machine id.
func revisionEvent(r *Revision, ch syncproto.Change, id string) (fleet.Event, bool) {
	e := fleet.Event{Source: fleet.SourceCentral, Seq: r.Revision, Time: r.Time, By: r.By,
		Fields: map[string]string{"revision": fmt.Sprint(r.Revision)}}
	verb := "put"
	if ch.Deleted {
		verb = "deleted"
	}
	switch ch.Kind {
	case KindMachine:
		if ch.Key != id {
			return e, false
		}
		e.Kind, e.Message = "machine."+verb, fmt.Sprintf("machine %s %s at central (revision %d)", id, verb, r.Revision)
	case KindOrder:
		var o placedOrder
		if ch.Deleted || json.Unmarshal(ch.Object, &o) != nil || o.MachineID != id {
			return e, false
		}
		e.Kind = "order.placed"
		e.Message = fmt.Sprintf("order %s placed at central: %s machine %s (revision %d)", ch.Key, o.Action, id, r.Revision)
		e.Fields["order"], e.Fields["action"] = ch.Key, o.Action
		if o.Image != "" {
			e.Fields["image"] = o.Image
		}
	default:
		return e, false
	}
	if r.By != "" {
		e.Message += " by " + r.By
	}
	return e, true
}

// Sites answers every site with its link, report and machines by state.
func (f *Fleet) Sites() ([]*fleet.Site, error) {
	sites, err := f.d.Sites()
	if err != nil {
		return nil, err
	}
	counts := map[string]map[string]int{}
	x := f.d.index.Load()
	x.view(func(sorted []indexed) {
		for i := range sorted {
			e := &sorted[i]
			c := counts[e.m.Site]
			if c == nil {
				c = map[string]int{}
				counts[e.m.Site] = c
			}
			c[e.m.State]++
		}
	})
	var live LiveFunc
	if p := f.d.live.Load(); p != nil {
		live = *p
	}
	out := make([]*fleet.Site, 0, len(sites))
	for _, s := range sites {
		out = append(out, fleetSite(s, counts[s.ID], live))
	}
	return out, nil
}

// fleetSite is a site as the fleet shows it.
func fleetSite(s *Site, machines map[string]int, live LiveFunc) *fleet.Site {
	fs := &fleet.Site{ID: s.ID, Name: s.Name, Labels: s.Labels, Machines: machines,
		Link: fleet.Link{Connected: s.Link != nil, LastSeen: s.LastSeen, Revision: s.Revision,
			AckedRevision: s.AckedRevision, StoredSeq: s.StoredSeq}}
	if s.Link != nil {
		fs.Link.Node = s.Link.Node
	}
	if live != nil {
		connected, heard := live(s.ID)
		fs.Link.Connected = connected
		if heard.After(fs.Link.LastSeen) {
			fs.Link.LastSeen = heard
		}
	}
	if r := s.Report; r != nil {
		fs.Appliance = fleet.Appliance{Version: r.Appliance, Nodes: r.Nodes, Voters: r.Voters, Healthy: r.Healthy,
			Leader: r.Leader, Console: r.Console, Problems: r.Problems, Reported: r.Time}
		fs.Link.SiteLastSeq = r.LastSeq
	}
	fs.Link.SiteLastSeq = max(fs.Link.SiteLastSeq, s.StoredSeq)
	fs.Link.EventsBehind = fs.Link.SiteLastSeq - s.StoredSeq
	return fs
}

// Summary limits.
const (
	summaryInFlight = 100
	summaryFailures = 20
	failureWindow   = 24 * time.Hour
)

// Summary answers the fleet overview as of now.
func (f *Fleet) Summary(now time.Time) (*fleet.Summary, error) {
	sites, err := f.Sites()
	if err != nil {
		return nil, err
	}
	sum := &fleet.Summary{Sites: len(sites), ByState: map[string]int{}, InFlight: []*fleet.Machine{}, Failures: []fleet.FailureGroup{}}
	for _, s := range sites {
		if s.Link.Connected {
			sum.SitesConnected++
		}
	}
	groups := map[string]*fleet.FailureGroup{}
	f.d.index.Load().view(func(sorted []indexed) {
		sum.Machines = len(sorted)
		for i := range sorted {
			m := sorted[i].m
			sum.ByState[m.State]++
			if m.InFlight() {
				sum.InFlight = append(sum.InFlight, m)
			}
			if reason, ok := failedSince(m, now.Add(-failureWindow)); ok {
				g := groups[reason]
				if g == nil {
					g = &fleet.FailureGroup{Reason: reason, Machines: []fleet.MachineRef{}}
					groups[reason] = g
				}
				g.Count++
				if len(g.Machines) < summaryFailures {
					g.Machines = append(g.Machines, fleet.MachineRef{Site: m.Site, ID: m.ID})
				}
			}
		}
	})
	sum.InFlightTotal = len(sum.InFlight)
	slices.SortStableFunc(sum.InFlight, func(a, b *fleet.Machine) int { return a.LastOrder.Placed.Compare(b.LastOrder.Placed) })
	if len(sum.InFlight) > summaryInFlight {
		sum.InFlight = sum.InFlight[:summaryInFlight]
	}
	for _, g := range groups {
		sum.Failures = append(sum.Failures, *g)
	}
	slices.SortFunc(sum.Failures, func(a, b fleet.FailureGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason))
	})
	return sum, nil
}

// failedSince reports whether m failed at or after since, and why: its
// state is failed since then, or its last order failed then.
func failedSince(m *fleet.Machine, since time.Time) (string, bool) {
	switch {
	case m.State == "failed" && !m.StateSince.Before(since):
		return cmp.Or(m.Reason, "failed"), true
	case m.LastOrder != nil && m.LastOrder.Status == fleet.OrderFailed && !m.LastOrder.Updated.Before(since):
		return cmp.Or(m.LastOrder.Reason, "order failed"), true
	}
	return "", false
}

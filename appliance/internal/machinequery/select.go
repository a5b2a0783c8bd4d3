package machinequery

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/machinequery"
)

// The grammar, its parser and its matcher are shared with central's
// fleet search (internal/machinequery); this package reads them against
// the site's store.
type (
	// Query is a parsed query.
	Query = machinequery.Query
	// Error is a query Parse refused.
	Error = machinequery.Error
	// Subject is a machine as a query reads it.
	Subject = machinequery.Subject
)

// MaxLen bounds a query's length in bytes.
const MaxLen = machinequery.MaxLen

// NoWorkflow is the workflow state of a machine without a workflow.
const NoWorkflow = machinequery.NoWorkflow

// Parse reads a query of the site's machines.
func Parse(q string) (*Query, error) { return machinequery.Parse(q) }

// Companions are what a query reads besides the machines: their current
// leases and their workflows' states, gathered once for all machines.
type Companions struct {
	byMachine map[string][]netip.Addr // lease addresses by machine id
	byMAC     map[string][]netip.Addr // lease addresses by MAC, for leases naming no machine
	workflows map[string]string       // workflow status by workflow id
}

// NewCompanions gathers the addresses of the leases that hold at now
// (offered or active, not expired; a declined address belongs to no one)
// and the status of each workflow. Either list may be nil.
func NewCompanions(leases []*store.Lease, workflows []*store.Workflow, now time.Time) *Companions {
	statuses := make(map[string]string, len(workflows))
	for _, w := range workflows {
		if w.State != nil {
			statuses[w.ID] = string(w.State.Status)
		}
	}
	return newCompanions(leases, statuses, now)
}

// newCompanions is NewCompanions with the workflows' statuses by id.
func newCompanions(leases []*store.Lease, workflows map[string]string, now time.Time) *Companions {
	c := &Companions{
		byMachine: map[string][]netip.Addr{},
		byMAC:     map[string][]netip.Addr{},
		workflows: workflows,
	}
	for _, l := range leases {
		a, err := netip.ParseAddr(l.IP)
		if err != nil || l.State == store.LeaseDeclined || !l.Holds(now) {
			continue
		}
		if l.MachineID != "" {
			c.byMachine[l.MachineID] = append(c.byMachine[l.MachineID], a)
		} else if mac, err := store.NormalizeMAC(l.MAC); err == nil {
			c.byMAC[mac] = append(c.byMAC[mac], a)
		}
	}
	return c
}

// Subject returns m with its addresses (those its interfaces reserve,
// those its current leases hold) and workflow state.
func (c *Companions) Subject(m *store.Machine) *Subject {
	s := &Subject{ID: m.ID, Hostname: m.Hostname, Tags: m.Tags, State: string(m.State), Workflow: NoWorkflow}
	for _, nic := range m.Interfaces {
		s.MACs = append(s.MACs, nic.MAC)
		if a, err := netip.ParseAddr(nic.IP); err == nil {
			s.Addrs = append(s.Addrs, a)
		}
	}
	if c == nil {
		return s
	}
	s.Addrs = append(s.Addrs, c.byMachine[m.ID]...)
	for _, nic := range m.Interfaces {
		s.Addrs = append(s.Addrs, c.byMAC[nic.MAC]...)
	}
	if st, ok := c.workflows[m.Workflow]; ok && m.Workflow != "" {
		s.Workflow = st
	}
	return s
}

// Filter returns the machines that match q, in their order.
func Filter(q *Query, machines []*store.Machine, c *Companions) []*store.Machine {
	var out []*store.Machine
	for _, m := range machines {
		if q.Match(c.Subject(m)) {
			out = append(out, m)
		}
	}
	return out
}

// Select reads the machines that match q from tx, in id order, judging
// leases at now. It reads the machines once, and the leases and the
// workflows once each only if q asks about them.
func Select(tx *store.Tx, q *Query, now time.Time) ([]*store.Machine, error) {
	machines, err := store.List[store.Machine](tx)
	if err != nil {
		return nil, err
	}
	var leases []*store.Lease
	if q.NeedsAddrs() {
		if leases, err = store.List[store.Lease](tx); err != nil {
			return nil, err
		}
	}
	var workflows map[string]string
	if q.NeedsWorkflows() {
		if workflows, err = workflowStatuses(tx); err != nil {
			return nil, err
		}
	}
	return Filter(q, machines, newCompanions(leases, workflows, now)), nil
}

// workflowStatuses reads the status of every workflow, by id. It decodes
// the status alone: a workflow's plan and actions, which a search never
// reads, are most of its bytes and of the cost of decoding it whole.
func workflowStatuses(tx *store.Tx) (map[string]string, error) {
	out := map[string]string{}
	err := tx.ForEachRaw(&store.Workflow{}, func(key, raw []byte) error {
		var w struct {
			State *struct {
				Status string `json:"status"`
			} `json:"state"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return fmt.Errorf("%w: workflow %q: %v", store.ErrCorrupt, key, err)
		}
		if w.State != nil {
			out[string(key)] = w.State.Status
		}
		return nil
	})
	return out, err
}

package soak

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Violation is one broken invariant: its name and what broke it.
type Violation struct {
	Invariant string        `json:"invariant"`
	Detail    string        `json:"detail"`
	At        time.Duration `json:"at_ns"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s at %.1fs: %s", v.Invariant, v.At.Seconds(), v.Detail)
}

// The invariants' names, as violations carry them.
const (
	InvDupAddress  = "dup_address"
	InvLeaseTable  = "lease_table"
	InvLostEvent   = "lost_event"
	InvDupEvent    = "dup_event"
	InvEventBody   = "event_changed"
	InvOrderOpen   = "order_not_ended"
	InvOrderFailed = "order_failed_without_fault"
	InvResources   = "resource_growth"
	// InvMachineState: a machine's state at the site is not the one
	// its events (as central's fleet model derives it) explain.
	InvMachineState = "machine_state"
	// InvVMBoot: a real VM's provision succeeded but the test OS it
	// installed did not report the metadata the order gave it.
	InvVMBoot = "vm_not_booted"
)

// allowedFailure are the reasons an order may fail for under a fault
// of each kind: prefixes of the order's reason (the site's "<job
// action> failed: ..." for its BMC jobs). A fault of any
// other kind (an agent killed, an image damaged) must cost no order.
var allowedFailure = map[Kind][]string{
	BMCDead:    bmcJobFailures,
	BMCTimeout: bmcJobFailures,
	BMCRefuse:  bmcJobFailures,
}

// bmcJobFailures are the reasons of an order whose BMC job failed.
var bmcJobFailures = []string{"power_cycle failed", "boot_pxe failed", "power_off failed", "power_on failed"}

// Order is an order the soak placed, as the Checker follows it.
type Order struct {
	ID, Machine, Action string
	Placed, Ended       time.Duration
	// State is "" until it ended, then succeeded or failed.
	State, Reason string
}

// Checker checks the soak's invariants from what it is told; it is
// safe for concurrent use. Now is the soak's clock: time since start.
type Checker struct {
	Now func() time.Duration

	mu         sync.Mutex
	holder     map[string]string // address → the MAC holding it
	held       map[string]string // MAC → the address it holds
	acks       int
	orders     map[string]*Order
	samples    map[string][]Sample
	violations []Violation
}

// NewChecker returns a Checker on clock now.
func NewChecker(now func() time.Duration) *Checker {
	return &Checker{Now: now, holder: map[string]string{}, held: map[string]string{},
		orders: map[string]*Order{}, samples: map[string][]Sample{}}
}

// Violate records a broken invariant.
func (c *Checker) Violate(invariant, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violateLocked(invariant, fmt.Sprintf(format, args...))
}

func (c *Checker) violateLocked(invariant, detail string) {
	c.violations = append(c.violations, Violation{Invariant: invariant, Detail: detail, At: c.Now()})
}

// Violations returns every violation so far, in the order found.
func (c *Checker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// Count counts the violations of invariant.
func (c *Checker) Count(invariant string) int {
	n := 0
	for _, v := range c.Violations() {
		if v.Invariant == invariant {
			n++
		}
	}
	return n
}

// ACK records that mac was ACKed addr (as seen on the wire): a
// violation if another MAC holds addr.
func (c *Checker) ACK(mac, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks++
	if other, ok := c.holder[addr]; ok && other != mac {
		c.violateLocked(InvDupAddress, fmt.Sprintf("%s was ACKed to %s while %s holds it", addr, mac, other))
	}
	if old, ok := c.held[mac]; ok && old != addr && c.holder[old] == mac {
		delete(c.holder, old)
	}
	c.holder[addr], c.held[mac] = mac, addr
}

// ACKs counts the ACKs recorded.
func (c *Checker) ACKs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acks
}

// Held is the address mac holds, if any.
func (c *Checker) Held(mac string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr, ok := c.held[mac]
	return addr, ok
}

// Release records that mac gave its address back (its machine's
// deprovision succeeded).
func (c *Checker) Release(mac string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr, ok := c.held[mac]; ok {
		delete(c.held, mac)
		if c.holder[addr] == mac {
			delete(c.holder, addr)
		}
	}
}

// CheckLeases compares the addresses held with the site's lease table
// (address → MAC): each held address must be leased to its holder.
func (c *Checker) CheckLeases(leases map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, mac := range c.holder {
		if got, ok := leases[addr]; ok && !strings.EqualFold(got, mac) {
			c.violateLocked(InvLeaseTable, fmt.Sprintf("%s was ACKed to %s but the lease table gives it to %s", addr, mac, got))
		}
	}
}

// Placed records an order placed now.
func (c *Checker) Placed(id, machine, action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.orders[id] = &Order{ID: id, Machine: machine, Action: action, Placed: c.Now()}
}

// Ended records that order id ended now, in state with reason.
func (c *Checker) Ended(id, state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.orders[id]; ok && o.State == "" {
		o.State, o.Reason, o.Ended = state, reason, c.Now()
	}
}

// Orders returns a copy of every order, by placing time.
func (c *Checker) Orders() []Order {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Order, 0, len(c.orders))
	for _, o := range c.orders {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Order) int { return int(a.Placed - b.Placed) })
	return out
}

// CheckOrders checks, at the end, that every order ended and that each
// failed one failed under a fault against its machine, for a reason
// that fault explains. It returns the faults each failed order is
// charged to, by order id.
func (c *Checker) CheckOrders(faults []Fault) map[string]Fault {
	charged := map[string]Fault{}
	for _, o := range c.Orders() {
		switch o.State {
		case "":
			c.Violate(InvOrderOpen, "order %s (%s %s, placed at %.1fs) never ended", o.ID, o.Action, o.Machine, o.Placed.Seconds())
		case "failed":
			f, ok := explains(faults, o)
			if !ok {
				c.Violate(InvOrderFailed, "order %s (%s %s) failed at %.1fs with no fault against it to explain %q",
					o.ID, o.Action, o.Machine, o.Ended.Seconds(), o.Reason)
				continue
			}
			charged[o.ID] = f
		}
	}
	return charged
}

// explains returns the fault against o's machine while o ran whose
// kind allows o's reason.
func explains(faults []Fault, o Order) (Fault, bool) {
	for _, f := range faults {
		if !f.Against(o.Machine, o.Placed, o.Ended) {
			continue
		}
		for _, p := range allowedFailure[f.Kind] {
			if strings.HasPrefix(o.Reason, p) {
				return f, true
			}
		}
	}
	return Fault{}, false
}

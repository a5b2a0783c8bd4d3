// Package machinetrace finds the trace a machine's boot-path requests
// belong to: the traceparent of the machine's latest workflow (the span
// of its order's applying, or of the request that made it), so that the
// DHCP exchanges, TFTP reads, boot fetches and metadata requests of a
// machine being provisioned join its provision's trace.
//
// A machine is traced while its latest workflow is active, and for
// Config.Linger after it ended: the installed OS's first DHCP exchange
// and metadata request come after the installer's last report (they end
// the provision's waterfall); its DHCP renewals and metadata requests
// months later are no part of it.
//
// The lookup sits on the DHCP server's packet path, so it costs no store
// read of its own there: the caller hands in the machine it read
// anyway, and the Index keeps, per machine, what it found at that
// machine's version. A machine's version moves whenever its latest
// workflow is replaced or ends (the site's state machine sets the
// machine's Workflow and state then), so a cached answer is valid
// exactly while the machine's version is unchanged; only then, once per
// change of the machine, is its workflow read (in the caller's
// transaction). A machine without a workflow costs nothing but a field
// test.
package machinetrace

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// DefaultLinger is how long a machine stays traced after its latest
// workflow ended, by default: long enough for a large server's firmware
// and the installed OS to boot and ask for their metadata.
const DefaultLinger = time.Hour

// maxEntries bounds the cache; past it, it starts afresh (a site has far
// fewer machines: only machines deleted and added again add entries).
const maxEntries = 1 << 17

// Config configures an Index.
type Config struct {
	// Linger is how long a machine stays traced after its latest
	// workflow ended; DefaultLinger if zero.
	Linger time.Duration
	// Now is the clock the linger is measured with; time.Now if nil.
	Now func() time.Time
	// Off says tracing is off (tracing.Provider.Recording is false):
	// every machine is untraced, and the Index reads nothing, so that a
	// node that records no span does none of the work of finding one's
	// parent.
	Off bool
}

// Trace is what a machine's requests are traced under.
type Trace struct {
	// Traceparent is the W3C traceparent the request's span is a child
	// of; "" when the machine is not traced.
	Traceparent string
	// Machine and Workflow are the machine's id and its latest
	// workflow's.
	Machine, Workflow string
	// MAC is the machine's interface the request came from, when the
	// lookup knew it (MAC, Addr).
	MAC string
}

// Traced reports whether the request is to be traced.
func (t Trace) Traced() bool { return t.Traceparent != "" }

// Index finds machines' traces. It is safe for concurrent use; one Index
// may be shared by every server of a node.
type Index struct {
	db     *store.DB
	linger time.Duration
	now    func() time.Time
	off    bool
	// entries maps a machine id to its *entry.
	entries sync.Map
	n       atomic.Int64
	// addrs maps an address to its *addrEntry.
	addrs  sync.Map
	nAddrs atomic.Int64
}

// AddrTTL is how long the trace found for an address is taken as
// found: a machine's boot fetches come in a burst (its script, kernel,
// initrd, image), and each would otherwise read its lease and machine
// again. Within it, a workflow made for the machine at that address (it
// is booting then, not fetching) or an address changing hands (one is
// reclaimed a day after its lease ended) is not seen.
const AddrTTL = 2 * time.Second

// addrEntry is the trace found for an address, until when.
type addrEntry struct {
	t     Trace
	until time.Time
}

// entry is what the Index found for a machine at one of its versions.
type entry struct {
	version  uint64
	workflow string
	tp       string
	ended    time.Time // zero while the workflow is active
}

// New returns an Index over db (read by ForAddr and ForMAC only).
func New(db *store.DB, cfg Config) *Index {
	x := &Index{db: db, linger: cfg.Linger, now: cfg.Now, off: cfg.Off}
	if x.linger <= 0 {
		x.linger = DefaultLinger
	}
	if x.now == nil {
		x.now = time.Now
	}
	return x
}

// Machine returns the trace of machine m as read in tx. It reads m's
// workflow in tx only when m changed since the Index last saw it. An
// error is the store's, reading the workflow.
func (x *Index) Machine(tx *store.Tx, m *store.Machine) (Trace, error) {
	if m == nil || m.Workflow == "" || x.off {
		return Trace{}, nil
	}
	e, err := x.entry(tx, m)
	if err != nil {
		return Trace{}, err
	}
	t := Trace{Machine: m.ID, Workflow: e.workflow}
	if e.tp != "" && (e.ended.IsZero() || x.now().Before(e.ended.Add(x.linger))) {
		t.Traceparent = e.tp
	}
	return t, nil
}

// entry is m's cached entry if m is at its version, else one read from
// tx and kept.
func (x *Index) entry(tx *store.Tx, m *store.Machine) (*entry, error) {
	if v, ok := x.entries.Load(m.ID); ok {
		if e := v.(*entry); e.version == m.Version && e.workflow == m.Workflow {
			return e, nil
		}
	}
	e := &entry{version: m.Version, workflow: m.Workflow}
	w, err := store.Get[store.Workflow](tx, m.Workflow)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		// Deleted: nothing to trace under.
	case err != nil:
		return nil, err
	case w.MachineID == m.ID:
		e.tp = w.Traceparent
		if !w.Active() {
			e.ended = w.UpdatedAt
		}
	}
	if _, loaded := x.entries.Swap(m.ID, e); !loaded && x.n.Add(1) > maxEntries {
		x.entries.Clear()
		x.n.Store(0)
	}
	return e, nil
}

// ForMAC returns the trace of the machine with an interface of mac, in a
// read of its own.
func (x *Index) ForMAC(mac string) (Trace, error) {
	var t Trace
	if x.off {
		return t, nil
	}
	err := x.db.View(func(tx *store.Tx) error {
		m, err := tx.MachineByMAC(mac)
		if err != nil {
			if errors.Is(err, errs.ErrNotFound) {
				return nil
			}
			return err
		}
		if t, err = x.Machine(tx, m); err != nil {
			return err
		}
		t.MAC, _ = store.NormalizeMAC(mac)
		return nil
	})
	return t, err
}

// ForAddr returns the trace of the machine at addr, in a read of its
// own: the machine whose MAC an active lease gives addr, else the one
// with an interface reserving addr (as the metadata service identifies
// machines).
func (x *Index) ForAddr(addr netip.Addr) (Trace, error) {
	var t Trace
	if x.off {
		return t, nil
	}
	err := x.db.View(func(tx *store.Tx) error {
		var err error
		t, err = x.Addr(tx, addr)
		return err
	})
	return t, err
}

// Addr is ForAddr in the caller's transaction.
func (x *Index) Addr(tx *store.Tx, addr netip.Addr) (Trace, error) {
	if x.off {
		return Trace{}, nil
	}
	addr = addr.Unmap()
	now := x.now()
	if v, ok := x.addrs.Load(addr); ok {
		if e := v.(*addrEntry); now.Before(e.until) {
			return e.t, nil
		}
	}
	m, mac, err := machineAt(tx, addr, now)
	if err != nil {
		return Trace{}, err
	}
	var t Trace
	if m != nil {
		if t, err = x.Machine(tx, m); err != nil {
			return Trace{}, err
		}
		t.MAC = mac
	}
	if _, loaded := x.addrs.Swap(addr, &addrEntry{t: t, until: now.Add(AddrTTL)}); !loaded && x.nAddrs.Add(1) > maxEntries {
		x.addrs.Clear()
		x.nAddrs.Store(0)
	}
	return t, nil
}

// machineAt is the machine at addr and the MAC of its interface there;
// nil if none.
func machineAt(tx *store.Tx, addr netip.Addr, now time.Time) (*store.Machine, string, error) {
	l, err := store.Get[store.Lease](tx, addr.String())
	switch {
	case err == nil && l.State == store.LeaseActive && l.Holds(now):
		m, err := tx.MachineByMAC(l.MAC)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, "", nil
		}
		return m, l.MAC, err
	case err != nil && !errors.Is(err, errs.ErrNotFound):
		return nil, "", err
	}
	m, i, err := tx.MachineByIP(addr)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	return m, m.Interfaces[i].MAC, nil
}

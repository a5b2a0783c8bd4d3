package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// OrderToPlace is one order of PlaceOrders: the site it goes to, its key
// and its syncproto.Order.
type OrderToPlace struct {
	Site   string          `json:"site"`
	Key    string          `json:"key"`
	Object json.RawMessage `json:"object"`
}

// OrderPlaced is what became of one order of PlaceOrders: the revision
// of its site that carries it, or why it was refused (an unknown site, a
// different order under its key).
type OrderPlaced struct {
	Site     string
	Key      string
	Revision uint64
	Refused  string
}

// OrdersPlaced is what PlaceOrders did: each order's outcome in the order
// given, and the sequence of the audit entry recorded with them (0 if
// none).
type OrdersPlaced struct {
	Orders   []OrderPlaced
	AuditSeq uint64
}

// maxPlaceOrders bounds the orders of one PlaceOrders (one log entry of
// about 300 bytes an order); a caller places more in several.
const maxPlaceOrders = 2000

// PlaceOrders places orders on many sites at once, as the actor by: one
// apply, and one new revision for each site whose desired state changes,
// carrying all of that site's orders. An order placed before exactly as
// it is changes nothing (its outcome is the site's latest revision); an
// order for an unknown site, or whose key holds a different order, is
// refused alone. audit, if not nil, is appended to the audit in the same
// apply (its Time set to now if zero).
func (d *DB) PlaceOrders(by string, orders []OrderToPlace, audit *AuditEntry) (*OrdersPlaced, error) {
	if len(orders) == 0 || len(orders) > maxPlaceOrders {
		return nil, errs.Invalid("orders", "has %d orders: place 1 to %d at once", len(orders), maxPlaceOrders)
	}
	p := &placeOrdersPayload{Orders: make([]OrderToPlace, len(orders)), Time: d.now().UTC(), By: by}
	for i, o := range orders {
		obj, err := validItem(KindOrder, o.Key, o.Object)
		if err != nil {
			return nil, err
		}
		if obj == nil {
			return nil, errs.Invalid(fmt.Sprintf("orders[%d].object", i), "is required")
		}
		if _, err := syncproto.DecodeObject(KindOrder, o.Key, obj); err != nil {
			return nil, err
		}
		p.Orders[i] = OrderToPlace{Site: o.Site, Key: o.Key, Object: obj}
	}
	if audit != nil {
		e := *audit
		if e.Time.IsZero() {
			e.Time = p.Time
		}
		if err := e.check(); err != nil {
			return nil, err
		}
		p.Audit = &e
	}
	r, err := d.execResult(cmdPlaceOrders, p)
	if err != nil {
		return nil, err
	}
	return r.(*OrdersPlaced), nil
}

// applyPlaceOrders places the orders site by site (in the order their
// sites first appear), one revision per site that changes, and appends
// the audit entry.
func applyPlaceOrders(tx *txn, p *placeOrdersPayload) (any, error) {
	if len(p.Orders) == 0 {
		return nil, errs.Invalid("orders", "is empty")
	}
	out := &OrdersPlaced{Orders: make([]OrderPlaced, len(p.Orders))}
	bySite := map[string][]int{}
	var sites []string
	for i, o := range p.Orders {
		out.Orders[i] = OrderPlaced{Site: o.Site, Key: o.Key}
		if _, ok := bySite[o.Site]; !ok {
			sites = append(sites, o.Site)
		}
		bySite[o.Site] = append(bySite[o.Site], i)
	}
	for _, site := range sites {
		if err := placeSiteOrders(tx, p, site, bySite[site], out); err != nil {
			return nil, err
		}
	}
	if p.Audit != nil {
		seq, err := appendAudit(tx, p.Audit)
		if err != nil {
			return nil, err
		}
		out.AuditSeq = seq
	}
	return out, nil
}

// placeSiteOrders places the orders at idx, all of site, in one
// revision; only a storage failure is returned.
func placeSiteOrders(tx *txn, p *placeOrdersPayload, site string, idx []int, out *OrdersPlaced) error {
	s, err := siteIn(tx.Tx, site)
	if errors.Is(err, errs.ErrNotFound) {
		for _, i := range idx {
			out.Orders[i].Refused = fmt.Sprintf("no site %q", site)
		}
		return nil
	}
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
	var changes []syncproto.Change
	var placed []int
	for _, i := range idx {
		o := p.Orders[i]
		switch old := b.Get(itemKey(KindOrder, o.Key)); {
		case old == nil:
			if err := b.Put(itemKey(KindOrder, o.Key), o.Object); err != nil {
				return err
			}
			changes = append(changes, syncproto.Change{Kind: KindOrder, Key: o.Key, Object: o.Object})
			placed = append(placed, i)
		case bytes.Equal(old, o.Object):
			out.Orders[i].Revision = s.Revision
		default:
			out.Orders[i].Refused = fmt.Sprintf("order %q exists and differs: an order cannot change once placed", o.Key)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	rev, err := appendRevision(tx, s, revisionOf{p.Time, p.By}, false, changes)
	if err != nil {
		return err
	}
	for _, i := range placed {
		out.Orders[i].Revision = rev
		if err := derivePlaced(tx, s.ID, p.Orders[i].Key, p.Orders[i].Object, rev, revisionOf{p.Time, p.By}); err != nil {
			return err
		}
	}
	return put(tx.Bucket(bucketSites), []byte(s.ID), s)
}

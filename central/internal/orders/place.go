package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Place places the orders of a request as its preview shows them now:
// every machine without a problem gets an order, keyed
// b<unix>-<rand>-<n> (the batch's prefix and its n-th machine), in as
// few applies as its size allows (one up to 2,000 orders), each a single
// revision per site. The audit entry of the request (by, the role of
// the caller in ctx as httpapi.WithCaller put it there, from) is
// recorded in the first apply, with the orders.
func (s *Service) Place(ctx context.Context, by, from string, req *Request) (*Result, error) {
	p, err := s.Preview(ctx, req)
	if err != nil {
		return nil, err
	}
	batch := fmt.Sprintf("b%d-%s", s.now().Unix(), s.rand())
	res := &Result{Batch: batch, Placed: []Placed{}}
	var todo []store.OrderToPlace
	var items []PreviewItem
	// Each order is its own trace, from its order.place span here to
	// the machine's first boot: the span ends once its apply did.
	var spans []trace.Span
	defer func() {
		for _, sp := range spans {
			EndPlace(sp, "not placed")
		}
	}()
	for _, it := range p.Items {
		if it.Problem != "" {
			res.Refused = append(res.Refused, it)
			continue
		}
		key := fmt.Sprintf("%s-%d", batch, len(todo)+1)
		obj, span, err := s.order(ctx, req, key, it)
		if err != nil {
			return nil, err
		}
		todo = append(todo, store.OrderToPlace{Site: it.Site, Key: key, Object: obj})
		items = append(items, it)
		spans = append(spans, span)
	}
	audit := &store.AuditEntry{By: by, Role: callerRole(ctx), From: from, Action: "order.place", Target: batch,
		Detail: placeDetail(req, len(todo), len(res.Refused)), Status: 200}
	if len(todo) == 0 {
		if _, err := s.db.RecordAudit(*audit); err != nil {
			return nil, err
		}
		return res, nil
	}
	for start, end := 0, 0; start < len(todo); start = end {
		end = chunkEnd(todo, start)
		done, err := s.db.PlaceOrders(by, todo[start:end], audit)
		if err != nil {
			return nil, err
		}
		audit = nil
		for i, o := range done.Orders {
			it := items[start+i]
			EndPlace(spans[start+i], o.Refused)
			if o.Refused != "" {
				it.Problem = o.Refused
				res.Refused = append(res.Refused, it)
				continue
			}
			res.Placed = append(res.Placed, Placed{TargetRef: it.TargetRef, Order: o.Key, Revision: o.Revision, Offline: it.Offline})
		}
	}
	spans = nil
	return res, nil
}

// chunkEnd is where the apply of the orders from start ends: at most
// chunk orders of at most chunkBytes, and at least one.
func chunkEnd(todo []store.OrderToPlace, start int) int {
	end, size := start, 0
	for end < len(todo) && end-start < chunk {
		size += len(todo[end].Object)
		if size > chunkBytes && end > start {
			break
		}
		end++
	}
	return end
}

// order is the syncproto.Order of one machine of a request, with its
// order.place span started (its traceparent on the order).
func (s *Service) order(ctx context.Context, req *Request, key string, it PreviewItem) (json.RawMessage, trace.Span, error) {
	o := &syncproto.Order{ID: key, MachineID: it.Machine, Action: req.Action, EFI: req.Params.EFI}
	switch req.Action {
	case ActionPower:
		o.Action = "power_" + req.Params.Power
	case ActionProvision:
		p := req.Params
		o.Image, o.Template = p.Image, p.Template
		digest, err := ImageDigest(s.db, it.Site, p.Image)
		if err != nil {
			return nil, nil, err
		}
		o.ImageSHA256 = digest
		o.Values = orderValues(p)
	case ActionDeprovision:
		o.Template = req.Params.Template
	}
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	span := StartPlace(ctx, it.Site, o)
	obj, err := json.Marshal(o)
	if err != nil {
		EndPlace(span, err.Error())
		return nil, nil, err
	}
	return obj, span, nil
}

// orderValues are the workflow values of a provision's params, under
// the names the site's metadata reads.
func orderValues(p OrderParams) map[string]string {
	v := map[string]string{}
	if p.Hostname != "" {
		v[syncproto.OrderValueHostname] = p.Hostname
	}
	if len(p.SSHKeys) > 0 {
		v[syncproto.OrderValueSSHKeys] = strings.Join(p.SSHKeys, "\n")
	}
	if p.UserData != "" {
		v[syncproto.OrderValueUserData] = p.UserData
	}
	if len(v) == 0 {
		return nil
	}
	return v
}

// placeDetail is the audit's detail of a placement: what (as a preview
// says it, without a digest: never the user data, its size only; never
// the keys, their count) and to how many.
func placeDetail(req *Request, placed, refused int) string {
	d := fmt.Sprintf("%s: %d placed, %d refused", will(req, ""), placed, refused)
	if req.Query != "" {
		d += fmt.Sprintf("; query %q", clip(req.Query))
	}
	return d
}

// Record records an audit entry of a change made elsewhere than
// through the API's routes (the portal's), its Time set to now if zero.
// Its Detail must hold no secret.
func (s *Service) Record(e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	_, err := s.db.RecordAudit(e)
	return err
}

// Audit reads the audit (Auditor).
func (s *Service) Audit(f AuditFilter) ([]AuditEntry, error) {
	if f.Limit > 1000 {
		return nil, errs.Invalid("limit", "is %d, more than the limit of 1000", f.Limit)
	}
	return s.db.Audit(f)
}

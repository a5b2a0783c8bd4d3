package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/syncproto"
)

// previewOrders answers what an orders.Request would do, machine by
// machine, changing nothing.
func (s *Server) previewOrders(w http.ResponseWriter, r *http.Request) {
	var req orders.Request
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.orders.Preview(r.Context(), &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteOf(r).detail = fmt.Sprintf("%s: %d machines, %d refused", req.Action, len(p.Items), p.Refused)
	httpapi.WriteJSON(w, http.StatusOK, p)
}

// placeOrders places the orders of an orders.Request (a confirmed
// preview's targets, or a query): its audit entry is recorded with them.
func (s *Server) placeOrders(w http.ResponseWriter, r *http.Request) {
	var req orders.Request
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.orders.Place(r.Context(), caller(r), clientAddr(r), &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	noteOf(r).recorded = true
	s.log.InfoContext(r.Context(), "orders placed", "batch", res.Batch, "action", req.Action, "placed", len(res.Placed), "refused", len(res.Refused), "by", caller(r))
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// putOrder places one order under its own key: a new revision of the
// site's desired state, recorded with its audit entry in one apply. Its
// image's name resolves to the digest central gives the site under it
// (image_sha256, unless the order names one); an order placed before
// keeps the digest it was placed with, so that placing it again as it
// was changes nothing. An order cannot change once placed.
func (s *Server) putOrder(w http.ResponseWriter, r *http.Request) {
	var o syncproto.Order
	if err := decodeBody(r, &o, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	site, key := r.PathValue("site"), r.PathValue("key")
	switch {
	case o.ID == "":
		o.ID = key
	case o.ID != key:
		s.writeError(w, r, errs.Invalid("id", "is %q, but the path names order %q", o.ID, key))
		return
	}
	if err := o.Validate(); err != nil {
		s.writeError(w, r, objectError(err))
		return
	}
	note := noteOf(r)
	note.target, note.detail = site+"/"+key, orderDetail(&o)
	if err := s.resolveOrderImage(site, &o); err != nil {
		s.writeError(w, r, err)
		return
	}
	refused, ctx := "not placed", r.Context()
	if o.Traceparent == "" {
		// A new order: its own trace starts here. (One placed before
		// keeps its trace, as it keeps its digest.)
		span := orders.StartPlace(ctx, site, &o)
		ctx = trace.ContextWithSpan(ctx, span)
		defer func() { orders.EndPlace(span, refused) }()
	}
	obj, err := json.Marshal(&o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	by := caller(r)
	entry := s.auditEntry(r, note.target, note.detail, http.StatusOK)
	done, err := s.db.PlaceOrders(by, []store.OrderToPlace{{Site: site, Key: key, Object: obj}}, &entry)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	note.recorded = true
	if refused = done.Orders[0].Refused; refused != "" {
		// The site went, or the key was taken, between the checks and
		// the apply: the entry says 200; this answer says why not.
		s.writeError(w, r, errs.Conflict("%s", refused))
		return
	}
	rev := done.Orders[0].Revision
	s.log.InfoContext(ctx, "order placed", "site", site, "order", o.ID, "action", o.Action, "machine", o.MachineID, "revision", rev, "by", by)
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"order": &o, "revision": rev})
}

// resolveOrderImage sets o's image digest: the one the order placed
// before under its key has, else the one central gives the site under
// its image's name (none if central gives it none: the site's own image
// is installed as named). It refuses an unknown site, and an order
// that differs from the one placed under its key.
func (s *Server) resolveOrderImage(site string, o *syncproto.Order) error {
	if _, err := s.db.Site(site); err != nil {
		return err
	}
	old, err := s.db.Desired(site, store.KindOrder, o.ID)
	switch {
	case err == nil:
		var prev syncproto.Order
		if json.Unmarshal(old, &prev) == nil && o.ImageSHA256 == "" {
			o.ImageSHA256 = prev.ImageSHA256
		}
		if o.Traceparent == "" {
			o.Traceparent = prev.Traceparent
		}
		if mine, _ := json.Marshal(o); string(mine) != string(old) {
			return errs.Conflict("order %q exists and differs: an order cannot change once placed", o.ID)
		}
		return nil
	case !errors.Is(err, errs.ErrNotFound):
		return err
	}
	name := o.Image
	if name == "" {
		name = o.Values["image"]
	}
	if o.ImageSHA256 != "" || name == "" || (o.Action != syncproto.OrderProvision && o.Action != syncproto.OrderDeprovision) {
		return nil
	}
	o.ImageSHA256, err = orders.ImageDigest(s.db, site, name)
	return err
}

// orderDetail is the audit's detail of one order: what, for which
// machine, never its values (user data and keys), only their names and
// sizes.
func orderDetail(o *syncproto.Order) string {
	d := o.Action + " machine " + o.MachineID
	if o.Image != "" {
		d += " image " + o.Image
	}
	if o.Template != "" {
		d += " template " + o.Template
	}
	var vals []string
	for k, v := range o.Values {
		vals = append(vals, fmt.Sprintf("%s (%d bytes)", k, len(v)))
	}
	if len(vals) > 0 {
		slices.Sort(vals)
		d += "; values " + strings.Join(vals, ", ")
	}
	return d
}

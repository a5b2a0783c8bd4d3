package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// objectPtr mirrors store's constraint.
type objectPtr[T any] interface {
	*T
	store.Object
}

// resource serves one kind of object: list, get, put (create or replace)
// and delete, under /v1/<plural>; the route table (Server.routes) names
// the routes of each and the role each needs.
type resource[T any, P objectPtr[T]] struct {
	// put stores an object through the proposer, which prepares it (seals
	// secrets, draws nonces, fills boot values); nil for the kinds the
	// appliance writes itself (leases, jobs, and tokens, made by POST
	// /v1/tokens): the API only reads and deletes those.
	put func(p *site.Proposer, ctx context.Context, obj P, expect uint64) (P, error)
	del site.Kind
	// view is what a client sees of an object; identity if nil.
	view func(P) any
}

var (
	machines = resource[store.Machine, *store.Machine]{
		put: (*site.Proposer).PutMachine, del: site.Machines,
		view: func(m *store.Machine) any { return m.View() },
	}
	subnets = resource[store.Subnet, *store.Subnet]{
		put: (*site.Proposer).PutSubnet, del: site.Subnets,
	}
	leases = resource[store.Lease, *store.Lease]{
		del: site.Leases,
	}
	images = resource[store.Image, *store.Image]{
		put: (*site.Proposer).PutImage, del: site.Images,
	}
	templates = resource[store.Template, *store.Template]{
		put: (*site.Proposer).PutTemplate, del: site.Templates,
	}
	tokens = resource[store.Token, *store.Token]{
		del:  site.Tokens,
		view: tokenView,
	}
	// Orders are created and read; their workflow and jobs follow from
	// them. Jobs are the appliance's to run: read-only.
	orders = resource[store.Order, *store.Order]{
		put: putNew((*site.Proposer).PlaceOrder), del: site.Orders,
		view: orderView,
	}
	jobs = resource[store.Job, *store.Job]{
		del: site.Jobs,
	}
	workflows = resource[store.Workflow, *store.Workflow]{
		put: putNew((*site.Proposer).CreateWorkflow), del: site.Workflows,
		view: workflowView,
	}
)

// putNew adapts a proposal that creates an object (the site refuses one
// that exists) to a put.
func putNew[P any](create func(*site.Proposer, context.Context, P) (P, error)) func(*site.Proposer, context.Context, P, uint64) (P, error) {
	return func(p *site.Proposer, ctx context.Context, obj P, _ uint64) (P, error) { return create(p, ctx, obj) }
}

// on makes a handler of a resource's method for the route table.
func on(s *Server, h func(*Server, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { h(s, w, r) }
}

func (rs resource[T, P]) show(o P) any {
	if rs.view != nil {
		return rs.view(o)
	}
	return o
}

// list answers {"items": [...]}.
func (rs resource[T, P]) list(s *Server, w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var items []any
	err := s.db.View(func(tx *store.Tx) error {
		all, err := store.List[T, P](tx)
		for _, o := range all {
			items = append(items, rs.show(P(o)))
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (rs resource[T, P]) get(s *Server, w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var o *T
	err := s.db.View(func(tx *store.Tx) (err error) {
		o, err = store.Get[T, P](tx, r.PathValue("key"))
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(P(o).ObjectMeta().Version))
	writeJSON(w, http.StatusOK, rs.show(P(o)))
}

// putOne creates or replaces the object named in the path. If-Match with
// the version last read makes it a compare-and-swap.
func (rs resource[T, P]) putOne(s *Server, w http.ResponseWriter, r *http.Request) {
	obj := P(new(T))
	if err := decodeBody(r, obj); err != nil {
		s.writeError(w, r, err)
		return
	}
	expect, err := ifMatch(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key := r.PathValue("key")
	if err := setKey(obj, key); err != nil {
		s.writeError(w, r, err)
		return
	}
	var old *T
	_ = s.db.View(func(tx *store.Tx) error { old, _ = store.Get[T, P](tx, key); return nil })
	stored, err := rs.put(s.site, r.Context(), obj, expect)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if old == nil {
		status = http.StatusCreated
	}
	w.Header().Set("ETag", etag(P(stored).ObjectMeta().Version))
	writeJSON(w, status, rs.show(P(stored)))
}

func (rs resource[T, P]) delete(s *Server, w http.ResponseWriter, r *http.Request) {
	expect, err := ifMatch(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.site.Delete(r.Context(), rs.del, r.PathValue("key"), expect); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// consistent makes the read linearizable when the client asks for it with
// ?consistent=true.
func (s *Server) consistent(r *http.Request) error {
	if v := r.URL.Query().Get("consistent"); v == "" || v == "false" {
		return nil
	}
	return s.cluster.Linearize(r.Context())
}

// maxBody bounds request bodies.
const maxBody = 4 << 20

// decodeBody decodes a JSON body strictly (store.DecodeStrict). A body
// over maxBody is refused whole (413), as is one that is empty or null:
// a null PUT would otherwise store an object made of the path's key
// alone.
func decodeBody(r *http.Request, v any) error {
	raw, err := httpapi.ReadBody(r, maxBody)
	if err != nil {
		return err
	}
	return store.DecodeStrict(bytes.NewReader(raw), v)
}

// setKey puts the path's key into obj, refusing a body that names another.
func setKey(obj store.Object, key string) error {
	var field *string
	switch o := obj.(type) {
	case *store.Machine:
		field = &o.ID
	case *store.Subnet:
		field = &o.Name
	case *store.Image:
		field = &o.Name
	case *store.Template:
		field = &o.Name
	case *store.Workflow:
		field = &o.ID
	case *store.Order:
		field = &o.ID
	default:
		return fmt.Errorf("api: no key field for %T", obj)
	}
	if *field != "" && *field != key {
		return errs.Invalid(keyField(obj), "%q does not match the URL's %q", *field, key)
	}
	*field = key
	return nil
}

func keyField(obj store.Object) string {
	switch obj.(type) {
	case *store.Machine, *store.Workflow, *store.Order:
		return "id"
	}
	return "name"
}

func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// ifMatch reads the expected version from If-Match ("" means any).
func ifMatch(r *http.Request) (uint64, error) {
	h := strings.Trim(r.Header.Get("If-Match"), `"`)
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := strconv.ParseUint(h, 10, 64)
	if err != nil || v == 0 {
		return 0, errs.Invalid("If-Match", "%q is not a version", h)
	}
	return v, nil
}

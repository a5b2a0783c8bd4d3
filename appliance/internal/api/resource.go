package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// objectPtr mirrors store's constraint.
type objectPtr[T any] interface {
	*T
	store.Object
}

// resource serves one kind of object: list, get, put (create or replace)
// and delete, under /v1/<plural>.
type resource[T any, P objectPtr[T]] struct {
	plural string
	put    replica.Type
	del    replica.Type
	// readOnly kinds (leases, tokens) are written by the appliance itself
	// (tokens through POST /v1/tokens); the API only reads and deletes them.
	readOnly bool
	// prepare normalizes an incoming object and seals its secrets; old is
	// the stored object, nil if new.
	prepare func(s *Server, obj, old P) error
	// view is what a client sees of an object; identity if nil.
	view func(P) any
}

var (
	machines = resource[store.Machine, *store.Machine]{
		plural: "machines", put: replica.PutMachine, del: replica.DeleteMachine,
		prepare: prepareMachine,
		view:    func(m *store.Machine) any { return m.View() },
	}
	subnets = resource[store.Subnet, *store.Subnet]{
		plural: "subnets", put: replica.PutSubnet, del: replica.DeleteSubnet,
	}
	leases = resource[store.Lease, *store.Lease]{
		plural: "leases", del: replica.DeleteLease, readOnly: true,
	}
	images = resource[store.Image, *store.Image]{
		plural: "images", put: replica.PutImage, del: replica.DeleteImage,
		prepare: func(_ *Server, i, _ *store.Image) error { i.Normalize(); return nil },
	}
	templates = resource[store.Template, *store.Template]{
		plural: "templates", put: replica.PutTemplate, del: replica.DeleteTemplate,
	}
	tokens = resource[store.Token, *store.Token]{
		plural: "tokens", del: replica.DeleteToken, readOnly: true,
		view: func(t *store.Token) any { return tokenView{Meta: t.Meta, ID: t.ID, Name: t.Name} },
	}
	// Orders are created and read; their workflow and jobs follow from
	// them. Jobs are the appliance's to run: read-only.
	orders = resource[store.Order, *store.Order]{
		plural: "orders", put: replica.PutOrder, del: replica.DeleteOrder,
		prepare: prepareOrder,
		view:    orderView,
	}
	jobs = resource[store.Job, *store.Job]{
		plural: "jobs", del: replica.DeleteJob, readOnly: true,
	}
	workflows = resource[store.Workflow, *store.Workflow]{
		plural: "workflows", put: replica.PutWorkflow, del: replica.DeleteWorkflow,
		prepare: prepareWorkflow,
		view:    workflowView,
	}
)

func (rs resource[T, P]) register(mux *http.ServeMux, s *Server) {
	base := "/v1/" + rs.plural
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) { rs.list(s, w, r) })
	mux.HandleFunc("GET "+base+"/{key}", func(w http.ResponseWriter, r *http.Request) { rs.get(s, w, r) })
	mux.HandleFunc("DELETE "+base+"/{key}", func(w http.ResponseWriter, r *http.Request) { rs.delete(s, w, r) })
	if !rs.readOnly {
		mux.HandleFunc("PUT "+base+"/{key}", func(w http.ResponseWriter, r *http.Request) { rs.putOne(s, w, r) })
	}
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
	if rs.prepare != nil {
		if err := rs.prepare(s, obj, P(old)); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := obj.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.propose(r, rs.put, replica.Put[T]{Object: (*T)(obj), Expect: expect, Time: s.now().UTC()})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stored, err := replica.DecodeValue[T](res)
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
	if _, err := s.propose(r, rs.del, replica.Delete{Key: r.PathValue("key"), Expect: expect, Time: s.now().UTC()}); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// propose encodes and commits a command.
func (s *Server) propose(r *http.Request, t replica.Type, payload any) (replica.Result, error) {
	cmd, err := replica.Encode(t, payload)
	if err != nil {
		return replica.Result{}, err
	}
	return s.node.Apply(r.Context(), cmd)
}

// consistent makes the read linearizable when the client asks for it with
// ?consistent=true.
func (s *Server) consistent(r *http.Request) error {
	if v := r.URL.Query().Get("consistent"); v == "" || v == "false" {
		return nil
	}
	return s.node.Linearize(r.Context())
}

// maxBody bounds request bodies.
const maxBody = 4 << 20

// decodeBody decodes a JSON body strictly (store.DecodeStrict), bounded
// to maxBody.
func decodeBody(r *http.Request, v any) error {
	return store.DecodeStrict(io.LimitReader(r.Body, maxBody), v)
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

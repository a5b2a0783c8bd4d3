package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// kind is one kind of object the CLI reads, deletes or applies.
type kind struct {
	name   string // singular, as in "machine/m1"
	plural string // the collection's path, /v1/<plural>
	// key is the field holding the object's key ("id" or "name"); "" for
	// settings, the one object of its kind.
	key string
	// check decodes a document strictly into the store's type and
	// validates it as the API will; nil for kinds that cannot be applied.
	check func(doc []byte) error
	// header and rows make the table view.
	header []string
	rows   func(items []json.RawMessage) ([][]string, error)
	// detail, if set, gives the lines printed below the table of one
	// object.
	detail func(item json.RawMessage) []string
	// perSite marks central's kinds that are a site's (orders, machines,
	// images, templates): a document names its site with "site:", or
	// --site does.
	perSite bool
	// prepare, if set, rewrites a document's fields (without its kind
	// and site) into the API's form before its key is read and it is
	// checked: central's orders are written in a form for people.
	prepare func(fields map[string]json.RawMessage) error
	// placeable marks central's images: one that names no site is the
	// catalogue's, placed by its sites: and site_labels: fields.
	placeable bool
}

// kindSet is the kinds of one side, in the order apply creates them.
type kindSet []*kind

// kinds lists every kind, in the order apply creates them: a kind comes
// after those its objects may refer to.
var kinds = kindSet{
	{
		name: "settings", plural: "settings",
		check:  checker(store.DefaultSettings, nil),
		header: []string{"SITE_NAME", "UNKNOWN_MACHINES", "VERSION"},
		rows:   rowsOf(settingsRow),
	},
	{
		name: "subnet", plural: "subnets", key: "name",
		check:  checker[store.Subnet](nil, nil),
		header: []string{"NAME", "CIDR", "GATEWAY", "POOLS", "DISCOVERY", "VERSION"},
		rows:   rowsOf(subnetRow),
	},
	{
		name: "image", plural: "images", key: "name",
		check:  checker(nil, func(i *store.Image) error { i.Normalize(); return nil }),
		header: []string{"NAME", "TYPE", "FORMAT", "SIZE", "SHA256"},
		rows:   rowsOf(imageRow),
	},
	{
		name: "template", plural: "templates", key: "name",
		check:  checker[store.Template](nil, nil),
		header: []string{"NAME", "ACTIONS"},
		rows:   rowsOf(templateRow),
	},
	{
		name: "machine", plural: "machines", key: "id",
		check:  checker(nil, normalizeMachine),
		header: []string{"ID", "HOSTNAME", "STATE", "ARCH", "MACS", "BMC", "BMC_CERT", "VERSION"},
		rows:   rowsOf(machineRow),
		detail: machineDetail,
	},
	{
		name: "workflow", plural: "workflows", key: "id",
		check:  checker(nil, func(w *store.Workflow) error { w.Normalize(); return nil }),
		header: []string{"ID", "MACHINE", "TEMPLATE", "STATUS", "NOW"},
		rows:   rowsOf(workflowRow),
	},
	{
		name: "order", plural: "orders", key: "id",
		check:  checker[store.Order](nil, nil),
		header: []string{"ID", "ACTION", "MACHINE", "STATE", "REASON"},
		rows:   rowsOf(func(o *store.Order) []string { return []string{o.ID, o.Action, o.MachineID, o.State, o.Reason} }),
	},
	{
		name: "job", plural: "jobs", key: "id",
		header: []string{"ID", "MACHINE", "ACTION", "STATE", "ATTEMPT", "POWER", "WARNING/ERROR"},
		rows: rowsOf(func(j *store.Job) []string {
			return []string{j.ID, j.MachineID, j.Action, j.State, fmt.Sprint(j.Attempt), j.Power, j.Warning + j.Error}
		}),
	},
	{
		name: "lease", plural: "leases", key: "ip",
		header: []string{"IP", "MAC", "MACHINE", "STATE", "EXPIRES"},
		rows:   rowsOf(leaseRow),
	},
	{
		name: "token", plural: "tokens", key: "id",
		header: tokenHeader,
		rows:   rowsOf(tokenRow),
	},
	{
		// Artifacts follow the images: read-only.
		name: "artifact", plural: "artifacts", key: "sha256",
		header: []string{"SHA256", "SIZE", "STATE", "IMAGES", "NODES", "MISSING_ON"},
		rows:   rowsOf(artifactRow),
	},
}

// find looks a kind up by its singular or plural name, in any case.
func (ks kindSet) find(s string) (*kind, bool) {
	s = strings.ToLower(s)
	for _, k := range ks {
		if s == k.name || s == k.plural {
			return k, true
		}
	}
	return nil, false
}

// names lists the kinds named in errors: all, or those apply takes.
func (ks kindSet) names(applicable bool) string {
	var names []string
	for _, k := range ks {
		if !applicable || k.check != nil {
			names = append(names, k.name)
		}
	}
	return strings.Join(names, ", ")
}

// ref names an object as "machine/m1".
func (k *kind) ref(key string) string {
	if k.key == "" {
		return k.name
	}
	return k.name + "/" + key
}

// objectPtr is store's constraint: a pointer to T that is an Object.
type objectPtr[T any] interface {
	*T
	store.Object
}

// checker returns a check that decodes a document into a new T (from
// start, if not nil: settings begin from their defaults), normalizes it
// (if normalize is not nil) and validates it.
func checker[T any, P objectPtr[T]](start func() P, normalize func(P) error) func([]byte) error {
	return func(doc []byte) error {
		obj := P(new(T))
		if start != nil {
			obj = start()
		}
		if err := decodeStrict(doc, obj); err != nil {
			return err
		}
		if normalize != nil {
			if err := normalize(obj); err != nil {
				return err
			}
		}
		return obj.Validate()
	}
}

// normalizeMachine is what the API does to a machine before validating it.
func normalizeMachine(m *store.Machine) error {
	m.Normalize()
	if m.BMC != nil && len(m.BMC.SealedPassword) > 0 {
		return errs.Invalid("bmc.sealed_password", "is set by the appliance, not by clients")
	}
	return nil
}

// decodeStrict decodes JSON as the API does (store.DecodeStrict).
func decodeStrict(doc []byte, v any) error {
	return store.DecodeStrict(bytes.NewReader(doc), v)
}

// rowsOf makes a table's rows by decoding each item into T.
func rowsOf[T any](row func(*T) []string) func([]json.RawMessage) ([][]string, error) {
	return func(items []json.RawMessage) ([][]string, error) {
		out := make([][]string, 0, len(items))
		for _, raw := range items {
			v := new(T)
			if err := json.Unmarshal(raw, v); err != nil {
				return nil, fmt.Errorf("decode answer: %w", err)
			}
			out = append(out, row(v))
		}
		return out, nil
	}
}

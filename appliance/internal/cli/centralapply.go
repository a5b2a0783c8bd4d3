package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Apply at central is declarative: each object is compared with what
// central holds (read first), and only one that differs is written.
// Apply says of each whether it was created, updated or unchanged, so
// that applying a file twice changes nothing and says so.

// siteDoc is a site as apply takes it. Labels, if the document has the
// field, replace the site's (labels: {} removes them); without it, the
// site's labels are left as they are.
type siteDoc struct {
	ID     string             `json:"id"`
	Name   string             `json:"name,omitempty"`
	Labels *map[string]string `json:"labels,omitempty"`
}

func checkSite(doc []byte) error {
	var s siteDoc
	return decodeStrict(doc, &s)
}

// applySite creates a site, and prints its credential, which central
// shows only this once. A site that exists is unchanged, or its labels
// are set to the document's (central cannot rename a site).
func (e *env) applySite(c *cclient.Client, d *doc) (string, error) {
	var want siteDoc
	if err := json.Unmarshal(d.body, &want); err != nil {
		return "", err
	}
	var labels map[string]string
	if want.Labels != nil {
		labels = *want.Labels
	}
	have, err := c.Site(e.ctx, d.key)
	var ae *cclient.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return e.createSite(c, d.key, want.Name, labels)
	case err != nil:
		return "", err
	case want.Name != "" && have.Name != want.Name:
		return "", &cclient.Error{Status: http.StatusConflict, Code: errs.CodeConflict, Field: "name",
			Message: fmt.Sprintf("site %s exists named %q: central cannot rename a site", d.key, have.Name)}
	case want.Labels == nil || maps.Equal(have.Labels, labels):
		return "unchanged", nil
	}
	if _, err := c.SetSiteLabels(e.ctx, d.key, labels); err != nil {
		return "", err
	}
	return "updated (labels " + cell(labelsCell(labels)) + ")", nil
}

// createSite creates a site and prints its credential on a line of its
// own.
func (e *env) createSite(c *cclient.Client, id, name string, labels map[string]string) (string, error) {
	made, err := c.CreateSiteWithLabels(e.ctx, id, name, labels)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(e.stderr, "site %s: its credential follows, shown only this once: give it to the site (-site-credential-file)\n", id)
	fmt.Fprintln(e.stdout, made.Credential)
	return "created", nil
}

// applySiteObject puts one of a site's objects (machine, image,
// template, order) unless central holds it as it is.
func (e *env) applySiteObject(c *cclient.Client, d *doc, site string) (string, error) {
	held, err := c.Get(e.ctx, site, d.kind.plural, d.key)
	var ae *cclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound { // no such object (or site: the put says which)
		rev, err := c.Put(e.ctx, site, d.kind.plural, d.key, d.body)
		return fmt.Sprintf("created at site %s (revision %d)", site, rev), err
	}
	if err != nil {
		return "", err
	}
	want, secret := asShown(d.kind.name, d.body)
	if sameJSON(want, held, centralAdds[d.kind.name]...) {
		if !secret {
			return fmt.Sprintf("unchanged at site %s", site), nil
		}
	} else if d.kind.name == "order" {
		return "", &cclient.Error{Status: http.StatusConflict, Code: errs.CodeConflict,
			Message: fmt.Sprintf("order %s exists at site %s and differs: an order cannot change once placed (give it a new key)", d.key, site)}
	}
	// A secret (a BMC password) central does not show: whether it
	// changed is for central to say, by making a revision or not.
	before, err := c.Site(e.ctx, site)
	if err != nil {
		return "", err
	}
	rev, err := c.Put(e.ctx, site, d.kind.plural, d.key, d.body)
	if err != nil || rev <= before.Sync.LatestRevision {
		return fmt.Sprintf("unchanged at site %s", site), err
	}
	return fmt.Sprintf("updated at site %s (revision %d)", site, rev), nil
}

// centralAdds are the fields central adds to an object of a kind when it
// is put (if the object has none): an image's size from its artifact, an
// order's image digest and the traceparent of its placing, a catalogue
// image's name.
var centralAdds = map[string][]string{
	"image": {"size_bytes", "name"},
	"order": {"image_sha256", "traceparent"},
}

// asShown is a site's object as central shows it: a machine's BMC
// password as password_set (secret then says it had one).
func asShown(kind string, obj json.RawMessage) (shown json.RawMessage, secret bool) {
	if kind != "machine" {
		return obj, false
	}
	var m map[string]json.RawMessage
	var bmc map[string]any
	if json.Unmarshal(obj, &m) != nil || json.Unmarshal(m["bmc"], &bmc) != nil || bmc == nil {
		return obj, false
	}
	if pw, _ := bmc["password"].(string); pw != "" {
		bmc["password_set"], secret = true, true
	}
	delete(bmc, "password")
	m["bmc"], _ = json.Marshal(bmc)
	out, err := json.Marshal(m)
	if err != nil {
		return obj, secret
	}
	return out, secret
}

// sameJSON reports whether two JSON objects are equal, but for the
// fields named optional that want lacks (those central adds).
func sameJSON(want, held json.RawMessage, optional ...string) bool {
	var w, h map[string]any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(held, &h) != nil {
		return false
	}
	for _, f := range optional {
		if _, ok := w[f]; !ok {
			delete(h, f)
		}
	}
	return reflect.DeepEqual(w, h)
}

// takePlacement removes a catalogue image's sites: and site_labels:
// from its fields: nil if it has neither.
func takePlacement(fields map[string]json.RawMessage) (*cclient.Placement, error) {
	sites, hasSites := fields["sites"]
	labels, hasLabels := fields["site_labels"]
	if !hasSites && !hasLabels {
		return nil, nil
	}
	delete(fields, "sites")
	delete(fields, "site_labels")
	var p cclient.Placement
	if hasSites && json.Unmarshal(sites, &p.Sites) != nil {
		return nil, errs.Invalid("sites", "wrong type: want a list of site ids")
	}
	if hasLabels && json.Unmarshal(labels, &p.SiteLabels) != nil {
		return nil, errs.Invalid("site_labels", "wrong type: want key: value pairs")
	}
	return &p, nil
}

// applyCatalogueImage puts an image of central's catalogue, placed on
// the sites its document lists and those with its site_labels, unless
// the catalogue holds it so.
func (e *env) applyCatalogueImage(c *cclient.Client, d *doc) (string, error) {
	var where cclient.Placement
	if d.placement != nil {
		where = *d.placement
	}
	held, err := c.Image(e.ctx, d.key)
	var ae *cclient.Error
	notFound := errors.As(err, &ae) && ae.Status == http.StatusNotFound
	switch {
	case err != nil && !notFound:
		return "", err
	case !notFound && sameJSON(d.body, held.Image, centralAdds["image"]...) && samePlacement(where, held.Placement):
		return "unchanged in the catalogue", nil
	}
	out, err := c.PutImage(e.ctx, d.key, cclient.PutImageRequest{Image: d.body, Placement: where})
	if err != nil {
		return "", err
	}
	var placed []string
	for _, p := range out.Placed {
		placed = append(placed, p.Site)
	}
	what := "updated"
	if notFound {
		what = "created"
	}
	return fmt.Sprintf("%s in the catalogue (placed on %s)", what, cmp.Or(strings.Join(placed, ","), "no site")), nil
}

// samePlacement compares placements as central keeps them: sites sorted
// without repeats, no labels the same as empty ones.
func samePlacement(a, b cclient.Placement) bool {
	norm := func(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }
	return slices.Equal(norm(a.Sites), norm(b.Sites)) && maps.Equal(a.SiteLabels, b.SiteLabels)
}

// orderDoc is an order as apply takes it at central: syncproto's form
// (id, machine_id, values), or a form for people: key, machine, power
// (on, off, cycle: action power), hostname, ssh_keys and user_data
// (which go to the machine's metadata as the workflow's values).
type orderDoc struct {
	ID        string            `json:"id"`
	Key       string            `json:"key"`
	Action    string            `json:"action"`
	Power     powerWord         `json:"power"`
	MachineID string            `json:"machine_id"`
	Machine   string            `json:"machine"`
	Template  string            `json:"template"`
	Image     string            `json:"image"`
	Values    map[string]string `json:"values"`
	Hostname  string            `json:"hostname"`
	SSHKeys   sshKeys           `json:"ssh_keys"`
	UserData  string            `json:"user_data"`
	EFI       bool              `json:"efi"`
}

// powerWord is on, off or cycle; YAML 1.1 reads an unquoted on or off as
// a boolean, which means the same.
type powerWord string

func (p *powerWord) UnmarshalJSON(b []byte) error {
	var on bool
	if json.Unmarshal(b, &on) == nil {
		*p = powerWord(map[bool]string{true: "on", false: "off"}[on])
		return nil
	}
	return json.Unmarshal(b, (*string)(p))
}

// sshKeys are SSH public keys: a list, or one string of lines.
type sshKeys []string

func (k *sshKeys) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*k = strings.Split(strings.TrimSpace(one), "\n")
		return nil
	}
	return json.Unmarshal(b, (*[]string)(k))
}

// prepareOrder rewrites an order's fields into syncproto's form.
func prepareOrder(fields map[string]json.RawMessage) error {
	raw, _ := json.Marshal(fields)
	var d orderDoc
	if err := decodeStrict(raw, &d); err != nil {
		return err
	}
	o := syncproto.Order{ID: cmp.Or(d.ID, d.Key), Action: d.Action, MachineID: cmp.Or(d.MachineID, d.Machine),
		Template: d.Template, Image: d.Image, Values: d.Values, EFI: d.EFI}
	switch {
	case d.ID != "" && d.Key != "" && d.ID != d.Key:
		return errs.Invalid("key", "is %q, but id is %q: give one", d.Key, d.ID)
	case d.MachineID != "" && d.Machine != "" && d.MachineID != d.Machine:
		return errs.Invalid("machine", "is %q, but machine_id is %q: give one", d.Machine, d.MachineID)
	case d.Action == "power" && slices.Contains([]powerWord{"on", "off", "cycle"}, d.Power):
		o.Action = "power_" + string(d.Power)
	case d.Action == "power":
		return errs.Invalid("power", "is %q: want on, off or cycle", d.Power)
	case d.Power != "":
		return errs.Invalid("power", "goes with action: power")
	}
	for name, v := range map[string]string{"hostname": d.Hostname, "ssh_keys": strings.Join(d.SSHKeys, "\n"), "user_data": d.UserData} {
		if v == "" {
			continue
		}
		if _, ok := o.Values[name]; ok {
			return errs.Invalid(name, "is also in values: give one")
		}
		if o.Values == nil {
			o.Values = map[string]string{}
		}
		o.Values[name] = v
	}
	out, err := json.Marshal(&o)
	if err != nil {
		return err
	}
	clear(fields)
	return json.NewDecoder(bytes.NewReader(out)).Decode(&fields)
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Central. The same commands speak to central when the target is
// central's (--central, OUTPOST_CENTRAL, or a central context): tokens,
// sites and each site's desired state (orders, machines, images,
// templates), and central's cluster. A site's own objects (subnets,
// leases, workflows, jobs, settings) and its commands (BMCs, events)
// say to use a site context.

// siteOnlyWhy says why a command has no meaning at central.
var siteOnlyWhy = map[string]string{
	"bmc accept-certificate": "central has no BMCs: use a site context",
	"events":                 "central keeps each site's events, but the CLI reads them from the site: use a site context",
	"cluster join":           "central's nodes join with centrald -join: cluster join adds a site's node; use a site context",
}

// siteOnly refuses a site's command when the target is central's.
func (e *env) siteOnly() error {
	t, err := e.resolveTarget()
	if err != nil || !t.central {
		return err
	}
	why, ok := siteOnlyWhy[e.cmd]
	if !ok {
		why = "this is a site's command: use a site context"
	}
	return fmt.Errorf("%s: %s (the server is central's, from %s)", e.cmd, why, t.from)
}

// centralClient returns a client of central's API for the options.
func (e *env) centralClient() (*cclient.Client, error) {
	t, err := e.resolveTarget()
	if err != nil {
		return nil, err
	}
	token, err := e.opts.resolveToken()
	if err != nil {
		return nil, err
	}
	hc, err := e.opts.centralHTTP(t.url)
	if err != nil {
		return nil, err
	}
	return cclient.New(t.url, token, hc), nil
}

// centralKinds are the kinds central keeps, in the order apply creates
// them: a kind comes after those its objects may refer to.
var centralKinds = kindSet{
	{
		name: "site", plural: "sites", key: "id",
		check:  checkSite,
		header: []string{"ID", "NAME", "CONNECTED", "LAST_SEEN", "REVISION", "ACKED", "EVENTS"},
		rows:   rowsOf(siteRow),
	},
	{
		name: "image", plural: "images", key: "name", perSite: true, placeable: true,
		check:  syncChecker(syncproto.KindImage),
		header: []string{"NAME", "TYPE", "FORMAT", "SIZE", "SHA256"},
		rows: rowsOf(func(i *syncproto.Image) []string {
			return []string{i.Name, i.Type, i.Format, sizeCell(i.Size), short(i.SHA256, 12)}
		}),
	},
	{
		name: "template", plural: "templates", key: "name", perSite: true,
		check:  syncChecker(syncproto.KindTemplate),
		header: []string{"NAME", "ACTIONS"},
		rows:   rowsOf(func(t *syncproto.Template) []string { return []string{t.Name, fmt.Sprint(len(t.Actions))} }),
	},
	{
		name: "machine", plural: "machines", key: "id", perSite: true,
		check:  syncChecker(syncproto.KindMachine),
		header: []string{"ID", "HOSTNAME", "ARCH", "MACS", "BMC", "STATE"},
		rows:   rowsOf(centralMachineRow),
	},
	{
		name: "order", plural: "orders", key: "id", perSite: true,
		prepare: prepareOrder, check: checkOrder,
		header: []string{"ID", "ACTION", "MACHINE", "IMAGE", "TEMPLATE"},
		rows: rowsOf(func(o *syncproto.Order) []string {
			return []string{o.ID, o.Action, o.MachineID, o.Image, o.Template}
		}),
	},
	{
		name: "token", plural: "tokens", key: "id",
		header: tokenHeader,
		rows:   rowsOf(tokenRow),
	},
}

// syncChecker checks a document as central checks the object: as its
// syncproto type.
func syncChecker(kind string) func([]byte) error {
	return func(doc []byte) error {
		var key struct{ ID, Name string }
		json.Unmarshal(doc, &key)
		_, err := syncproto.DecodeObject(kind, key.ID+key.Name, doc)
		return protoError(err)
	}
}

// checkOrder checks an order as central does: strictly, by its rules.
func checkOrder(doc []byte) error {
	var o syncproto.Order
	if err := decodeStrict(doc, &o); err != nil {
		return err
	}
	return protoError(o.Validate())
}

// protoError makes a syncproto refusal an errs.Error naming its field
// (so that apply finds its line), its message without the "kind.field: "
// prefix.
func protoError(err error) error {
	var e *syncproto.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Message
	if _, rest, ok := strings.Cut(msg, ": "); ok {
		msg = rest
	}
	return errs.Invalid(e.Field, "%s", msg)
}

func siteRow(s *cclient.Site) []string {
	return []string{s.ID, s.Name, yesNo(s.Sync.Connected), timeCell(s.Sync.LastSeen), version(s.Sync.LatestRevision),
		version(s.Sync.AckedRevision), version(s.Sync.StoredSeq)}
}

func centralMachineRow(m *syncproto.Machine) []string {
	macs := make([]string, len(m.Interfaces))
	for i, nic := range m.Interfaces {
		macs[i] = nic.MAC
	}
	bmc := ""
	if m.BMC != nil {
		bmc = m.BMC.Address
	}
	return []string{m.ID, m.Hostname, m.Arch, strings.Join(macs, ","), bmc, m.State}
}

// centralKind finds a kind central keeps, or says where the kind lives.
func centralKind(name string) (*kind, error) {
	if k, ok := centralKinds.find(name); ok {
		return k, nil
	}
	if k, ok := kinds.find(name); ok {
		return nil, fmt.Errorf("central keeps no %s: they are a site's; use a site context", k.plural)
	}
	return nil, usagef("unknown kind %q (central keeps %s)", name, centralKinds.names(false))
}

// atCentral reports whether the target is central's; --site is for
// central only.
func (e *env) atCentral() (bool, error) {
	t, err := e.resolveTarget()
	if err != nil {
		return false, err
	}
	if !t.central && e.opts.site != "" {
		return false, usagef("--site names a site at central; the server is a site's (from %s)", t.from)
	}
	return t.central, nil
}

// perSiteNeedsSite is the error for a site's object named without
// --site.
func perSiteNeedsSite(k *kind, key string) error {
	return usagef("%s: --site SITE is needed: at central, %s belong to a site", k.ref(key), k.plural)
}

// centralGet lists central's objects of a kind, or shows one.
func (e *env) centralGet(name string, pos []string) error {
	k, err := centralKind(name)
	if err != nil {
		return err
	}
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	single := len(pos) > 0
	var items []json.RawMessage
	switch {
	case k.perSite:
		items, err = e.siteObjects(c, k, pos)
		k = withSiteColumn(k)
	case k.name == "token":
		items, err = tokenItems(e, c, pos)
	case single:
		var raw json.RawMessage
		err = c.Do(e.ctx, http.MethodGet, "/v1/sites/"+url.PathEscape(pos[0]), nil, &raw)
		items = []json.RawMessage{raw}
	default:
		var page struct{ Sites []json.RawMessage }
		err = c.Do(e.ctx, http.MethodGet, "/v1/sites", nil, &page)
		items = page.Sites
	}
	if err != nil {
		return err
	}
	return e.show(k, items, single)
}

// siteObjects reads a site's objects of kind k (one, if pos names it),
// each with its site: --site's, or every site's.
func (e *env) siteObjects(c *cclient.Client, k *kind, pos []string) ([]json.RawMessage, error) {
	if len(pos) > 0 {
		if e.opts.site == "" {
			return nil, perSiteNeedsSite(k, pos[0])
		}
		raw, err := c.Get(e.ctx, e.opts.site, k.plural, pos[0])
		return []json.RawMessage{withSite(raw, e.opts.site)}, err
	}
	sites := []string{e.opts.site}
	if e.opts.site == "" {
		all, err := c.Sites(e.ctx)
		if err != nil {
			return nil, err
		}
		sites = sites[:0]
		for _, s := range all {
			sites = append(sites, s.ID)
		}
	}
	var out []json.RawMessage
	for _, s := range sites {
		items, err := c.List(e.ctx, s, k.plural)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", s, err)
		}
		for _, it := range items {
			out = append(out, withSite(it, s))
		}
	}
	return out, nil
}

// withSite adds the site's id to an object central shows, as "site" (the
// field apply reads it from).
func withSite(raw json.RawMessage, site string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return raw
	}
	m["site"], _ = json.Marshal(site)
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

// withSiteColumn is k with its site first in tables.
func withSiteColumn(k *kind) *kind {
	sited := *k
	sited.header = append([]string{"SITE"}, k.header...)
	sited.rows = func(items []json.RawMessage) ([][]string, error) {
		rows, err := k.rows(items)
		for i := range rows {
			var s struct{ Site string }
			json.Unmarshal(items[i], &s)
			rows[i] = append([]string{s.Site}, rows[i]...)
		}
		return rows, err
	}
	return &sited
}

// tokenItems lists the tokens, or the one pos names (neither API shows a
// secret).
func tokenItems(e *env, c tokenServer, pos []string) ([]json.RawMessage, error) {
	views, err := c.Tokens(e.ctx)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for i := range views {
		if len(pos) > 0 && views[i].ID != pos[0] {
			continue
		}
		raw, _ := json.Marshal(&views[i])
		out = append(out, raw)
	}
	if len(pos) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("token %q not found", pos[0])
	}
	return out, nil
}

package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// runGet lists the objects of a kind, or shows one.
func runGet(e *env, args []string) error {
	fs := e.flagSet("get")
	consistent := fs.Bool("consistent", false, "")
	f, parseAudit := getFilterFlags(fs)
	pos, err := e.parse(fs, args, 1, 2)
	if err != nil {
		return err
	}
	if central, err := e.atCentral(); err != nil || central {
		if err == nil && *consistent {
			err = usagef("get: --consistent is a site's read; central reads from its leader")
		}
		if err == nil {
			err = parseAudit()
		}
		if err != nil {
			return err
		}
		if handled, err := e.fleetGet(strings.ToLower(pos[0]), pos[1:], f); handled {
			return err
		}
		return e.centralGet(pos[0], pos[1:])
	}
	if pos[0] == "audit" || isAnySet(fs, "by", "action", "target", "since", "until", "after", "limit", "format") {
		return usagef("get: the audit is central's: use a central context")
	}
	k, ok := kinds.find(pos[0])
	if !ok {
		return usagef("unknown kind %q (want one of %s)", pos[0], kinds.names(false))
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	v := url.Values{}
	if *consistent {
		v.Set("consistent", "true")
	}
	if f.q != "" {
		if k.name != "machine" || len(pos) > 1 {
			return usagef("get: -q searches machines: get machines -q QUERY")
		}
		v.Set("q", f.q)
	}
	query := ""
	if len(v) > 0 {
		query = "?" + v.Encode()
	}
	var items []json.RawMessage
	switch {
	case k.key == "":
		if len(pos) > 1 {
			return usagef("%s has no name", k.name)
		}
		items, err = getOne(e, c, "/v1/"+k.plural+query)
	case len(pos) > 1 && k.name == "token":
		items, err = tokenItems(e, c, pos[1:])
	case len(pos) > 1:
		items, err = getOne(e, c, "/v1/"+k.plural+"/"+url.PathEscape(pos[1])+query)
	default:
		items, err = list(e, c, "/v1/"+k.plural+query)
	}
	if err != nil {
		return err
	}
	return e.show(k, items, len(pos) > 1 || k.key == "")
}

func getOne(e *env, c *client.Client, path string) ([]json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.Do(e.ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, err
	}
	return []json.RawMessage{raw}, nil
}

func list(e *env, c *client.Client, path string) ([]json.RawMessage, error) {
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	err := c.Do(e.ctx, http.MethodGet, path, nil, &page)
	return page.Items, err
}

// show prints objects of kind k: a table, or the API's own JSON (as an
// object if one was asked for by name, else as a list).
func (e *env) show(k *kind, items []json.RawMessage, single bool) error {
	if !e.opts.tabular() {
		if single && len(items) == 1 {
			return e.printRaw(items[0])
		}
		return e.printList(items)
	}
	rows, err := k.rows(items)
	if err != nil {
		return err
	}
	if err := writeTable(e.stdout, k.header, rows); err != nil {
		return err
	}
	if single && len(items) == 1 && k.detail != nil {
		for _, line := range k.detail(items[0]) {
			fmt.Fprintln(e.stdout, cell(line))
		}
	}
	return nil
}

// runDelete deletes one object.
func runDelete(e *env, args []string) error {
	fs := e.flagSet("delete")
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if central, err := e.atCentral(); err != nil || central {
		if err != nil {
			return err
		}
		return e.centralDelete(pos[0], pos[1])
	}
	k, ok := kinds.find(pos[0])
	if !ok {
		return usagef("unknown kind %q (want one of %s)", pos[0], kinds.names(false))
	}
	if k.key == "" {
		return fmt.Errorf("%s cannot be deleted; apply new ones instead", k.name)
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	if err := c.Delete(e.ctx, k.plural, pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s deleted\n", k.ref(pos[1]))
	return nil
}

func settingsRow(s *store.Settings) []string {
	return []string{s.SiteName, s.UnknownMachines, version(s.Version)}
}

func subnetRow(s *store.Subnet) []string {
	pools := make([]string, len(s.Pools))
	for i, p := range s.Pools {
		pools[i] = p.Start + "-" + p.End
	}
	return []string{s.Name, s.CIDR, s.Gateway, strings.Join(pools, ","), yesNo(s.Discovery), version(s.Version)}
}

func imageRow(i *store.Image) []string {
	return []string{i.Name, i.Type, i.Format, sizeCell(i.Size), short(i.SHA256, 12)}
}

func templateRow(t *store.Template) []string {
	return []string{t.Name, strconv.Itoa(len(t.Actions))}
}

func machineRow(m *store.Machine) []string {
	macs := make([]string, len(m.Interfaces))
	for i, nic := range m.Interfaces {
		macs[i] = nic.MAC
	}
	bmc := ""
	if m.BMC != nil {
		bmc = m.BMC.Address
	}
	return []string{m.ID, m.Hostname, string(m.State), m.Arch, strings.Join(macs, ","), bmc, bmcCertCell(m.BMC), version(m.Version)}
}

func workflowRow(w *store.Workflow) []string {
	return []string{w.ID, w.MachineID, w.Template, string(w.Status()), workflowNow(w)}
}

// workflowNow says what a workflow is doing: its running actions with
// their progress, or why it ended.
func workflowNow(w *store.Workflow) string {
	if w.State == nil {
		return ""
	}
	if w.State.Reason != "" {
		return w.State.Reason
	}
	var running []string
	for _, a := range w.State.Actions {
		if a.Status == "running" {
			s := a.Name
			if a.Progress > 0 {
				s += fmt.Sprintf(" %d%%", a.Progress)
			}
			running = append(running, s)
		}
	}
	return strings.Join(running, ", ")
}

func leaseRow(l *store.Lease) []string {
	return []string{l.IP, l.MAC, l.MachineID, string(l.State), timeCell(l.Expires)}
}

// artifactRow shows an artifact: its state, the images that point at
// it, the nodes that hold it and those that do not yet (or, while it is
// pulled, how far the pull is).
func artifactRow(a *artifacts.Record) []string {
	state := a.State
	if a.Pull != nil && a.State != artifacts.StatePresent {
		if pct := a.Pull.Percent(); pct >= 0 && a.Pull.Error == "" {
			state += fmt.Sprintf(" %d%%", pct)
		} else if a.Pull.Error != "" {
			state += ": " + a.Pull.Error
		}
	}
	return []string{short(a.SHA256, 12), sizeCell(uint64(max(a.Size, 0))), state, strings.Join(a.Names, ","),
		strings.Join(a.Nodes, ","), strings.Join(a.Missing, ",")}
}

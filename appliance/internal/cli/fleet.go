package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
)

// The fleet at central: every machine of every site as central derives
// it from the sites' events (/v1/fleet/), searched with the fleet's
// query grammar (-q), and every site with its link. get machines, get
// machine SITE/ID (with its timeline), get sites, get images (the
// catalogue), get audit; watch machines (watch.go).

// getFilters are get's options that narrow a list at central.
type getFilters struct {
	q     string // -q: a fleet query
	audit cclient.AuditFilter
	// format is get audit's --format: jsonl or csv, written as central
	// formats it.
	format string
}

// fleetGet answers the gets central reads from its fleet, its catalogue
// or its audit; handled is false for the others (a site's desired
// objects: centralGet).
func (e *env) fleetGet(name string, pos []string, f *getFilters) (handled bool, err error) {
	k, _ := centralKinds.find(name)
	switch {
	case name == "audit":
		return true, e.getAudit(f)
	case k == nil:
		return false, nil
	case k.name == "machine" && len(pos) == 1 && strings.Contains(pos[0], "/"):
		site, id, _ := strings.Cut(pos[0], "/")
		return true, e.getFleetMachine(site, id, cmp.Or(f.audit.Limit, timelineLimit))
	case k.name == "machine" && len(pos) == 0:
		err := e.getFleetMachines(f.q)
		return !isNoRoute(err) || f.q != "", err
	case k.name == "site" && len(pos) == 0:
		err := e.getFleetSites()
		return !isNoRoute(err), err
	case k.name == "image" && e.opts.site == "":
		return true, e.getCatalogue(pos)
	}
	if f.q != "" {
		return true, usagef("get %s: -q is a search of the fleet's machines: get machines -q QUERY", name)
	}
	return false, nil
}

// isNoRoute reports whether err is central's answer to a route it does
// not have (a central of a release before the fleet): the CLI then reads
// what that central has.
func isNoRoute(err error) bool {
	var ae *cclient.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Message, "no route for ")
}

// fleetQuery is -q with --site's site added as a site: term.
func (e *env) fleetQuery(q string) string {
	if e.opts.site == "" {
		return q
	}
	return strings.TrimSpace("site:" + e.opts.site + " " + q)
}

// getFleetMachines lists the machines the query matches, every page.
func (e *env) getFleetMachines(q string) error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	ms, _, err := c.AllMachines(e.ctx, e.fleetQuery(q))
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, ms)
	}
	rows := make([][]string, len(ms))
	for i, m := range ms {
		rows[i] = e.fleetMachineRow(m)
	}
	return writeTable(e.stdout, e.fleetMachineHeader(), rows)
}

var (
	fleetMachineHeader = []string{"SITE", "ID", "HOSTNAME", "STATE", "ORDER", "STATUS", "STEP"}
	fleetMachineWide   = []string{"POWER", "MACS", "TAGS", "REASON", "UPDATED"}
)

func (e *env) fleetMachineHeader() []string {
	if e.opts.output == "wide" {
		return slices.Concat(fleetMachineHeader, fleetMachineWide)
	}
	return fleetMachineHeader
}

// fleetMachineRow shows a machine: its state, its last order and its
// status, its workflow's step; wide, its power, MACs, tags, why it is
// failed and when it last changed.
func (e *env) fleetMachineRow(m *cclient.Machine) []string {
	var order, status, step string
	if o := m.LastOrder; o != nil {
		order, status = o.Action+" "+o.Key, o.Status
	}
	if w := m.Workflow; w != nil {
		step = w.Step
		if w.Total > 0 {
			step += fmt.Sprintf(" (%d/%d)", w.Done, w.Total)
		}
		if w.Progress != "" {
			step += " " + w.Progress
		}
	}
	row := []string{m.Site, m.ID, m.Hostname, m.State, order, status, strings.TrimSpace(step)}
	if e.opts.output == "wide" {
		row = append(row, m.Power, strings.Join(m.MACs, ","), strings.Join(m.Tags, ","), m.Reason, timeCell(m.Updated))
	}
	return row
}

// timelineLimit is how many events get machine SITE/ID shows without
// --limit.
const timelineLimit = 50

// getFleetMachine shows one machine of the fleet, then its timeline,
// newest first (at most limit events).
func (e *env) getFleetMachine(site, id string, limit int) error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	m, err := c.Machine(e.ctx, site, id)
	if err != nil {
		return err
	}
	events, err := c.Timeline(e.ctx, site, id, limit)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		if events == nil {
			events = []cclient.Event{} // "timeline": [], not null
		}
		return e.printValue(struct {
			*cclient.Machine
			Timeline []cclient.Event `json:"timeline"`
		}{m, events})
	}
	if err := writeTable(e.stdout, e.fleetMachineHeader(), [][]string{e.fleetMachineRow(m)}); err != nil {
		return err
	}
	if o := m.LastOrder; o != nil {
		line := fmt.Sprintf("order %s: %s %s by %s, %s", o.Key, o.Action, orderImage(o), o.By, o.Status)
		if o.Reason != "" {
			line += ": " + o.Reason
		}
		fmt.Fprintln(e.stdout, cell(strings.Join(strings.Fields(line), " ")))
	}
	fmt.Fprintln(e.stdout)
	rows := make([][]string, len(events))
	for i, ev := range events {
		rows[i] = []string{timeCell(ev.Time), ev.Source, strconv.FormatUint(ev.Seq, 10), ev.Kind, ev.By, ev.Message}
	}
	return writeTable(e.stdout, []string{"TIME", "SOURCE", "SEQ", "KIND", "BY", "MESSAGE"}, rows)
}

// orderImage is the image an order installs, with the digest it was
// resolved to.
func orderImage(o *cclient.Order) string {
	if o.ImageSHA256 == "" {
		return o.Image
	}
	return o.Image + " (" + short(strings.TrimPrefix(o.ImageSHA256, "sha256:"), 12) + ")"
}

// getFleetSites lists the sites with their links and what they report.
func (e *env) getFleetSites() error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	sites, err := c.FleetSites(e.ctx)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, sites)
	}
	header := []string{"ID", "NAME", "CONNECTED", "LAST_SEEN", "REVISION", "ACKED", "BEHIND", "VERSION", "MACHINES"}
	if e.opts.output == "wide" {
		header = append(header, "LABELS", "NODES", "HEALTHY", "PROBLEMS")
	}
	rows := make([][]string, len(sites))
	for i, s := range sites {
		rows[i] = []string{s.ID, s.Name, yesNo(s.Link.Connected), timeCell(s.Link.LastSeen), version(s.Link.Revision),
			version(s.Link.AckedRevision), version(s.Link.EventsBehind), s.Appliance.Version, countsCell(s.Machines)}
		if e.opts.output == "wide" {
			a := s.Appliance
			rows[i] = append(rows[i], labelsCell(s.Labels), strconv.Itoa(a.Nodes), strconv.Itoa(a.Healthy), strings.Join(a.Problems, "; "))
		}
	}
	return writeTable(e.stdout, header, rows)
}

// countsCell shows counts by name as name=n,name=n in name order.
func countsCell(counts map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, k+"="+strconv.Itoa(counts[k]))
	}
	return strings.Join(parts, ",")
}

// getCatalogue lists central's catalogue of images, or shows one.
func (e *env) getCatalogue(pos []string) error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		img, err := c.Image(e.ctx, pos[0])
		if err != nil {
			return err
		}
		return e.showImages([]cclient.CatalogueImage{img})
	}
	list, err := c.Images(e.ctx)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, list)
	}
	return e.showImages(list)
}

// getAudit lists the audit entries the filters select, or writes them
// as central formats them (--format jsonl|csv).
func (e *env) getAudit(f *getFilters) error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	switch f.format {
	case "":
	case "jsonl", "csv":
		return c.AuditDownload(e.ctx, f.audit, f.format, e.stdout)
	default:
		return usagef("get audit: --format %q: want jsonl or csv", f.format)
	}
	entries, err := c.Audit(e.ctx, f.audit)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, entries)
	}
	header := []string{"SEQ", "TIME", "BY", "ROLE", "FROM", "ACTION", "TARGET", "STATUS"}
	if e.opts.output == "wide" {
		header = append(header, "DETAIL")
	}
	rows := make([][]string, len(entries))
	for i, a := range entries {
		rows[i] = []string{version(a.Seq), timeCell(a.Time), a.By, a.Role, a.From, a.Action, a.Target, strconv.Itoa(a.Status)}
		if e.opts.output == "wide" {
			rows[i] = append(rows[i], a.Detail)
		}
	}
	return writeTable(e.stdout, header, rows)
}

// getFilterFlags adds get's filters to fs: -q, and get audit's --by,
// --action, --target, --since, --until (RFC 3339, or a duration: that
// long ago), --after, --limit and --format. parse reads the times once
// fs is parsed.
func getFilterFlags(fs *flag.FlagSet) (f *getFilters, parse func() error) {
	f = &getFilters{}
	fs.StringVar(&f.q, "q", "", "")
	fs.StringVar(&f.audit.By, "by", "", "")
	fs.StringVar(&f.audit.Action, "action", "", "")
	fs.StringVar(&f.audit.Target, "target", "", "")
	fs.Uint64Var(&f.audit.After, "after", 0, "")
	fs.IntVar(&f.audit.Limit, "limit", 0, "")
	fs.StringVar(&f.format, "format", "", "")
	since := fs.String("since", "", "")
	until := fs.String("until", "", "")
	return f, func() (err error) {
		if f.audit.Since, err = auditTime("--since", *since); err != nil {
			return err
		}
		f.audit.Until, err = auditTime("--until", *until)
		return err
	}
}

// auditTime reads a time of get audit (timeArg).
func auditTime(flag, s string) (time.Time, error) { return timeArg("get", flag, s) }

// timeArg reads command cmd's time flag: RFC 3339, or a duration
// meaning that long ago; zero for "".
func timeArg(cmd, flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("%s: %s %q: want a time (2026-12-07T06:00:00Z) or a duration (24h)", cmd, flag, s)
	}
	return t, nil
}

// isAnySet reports whether any of the flags names was given.
func isAnySet(fs *flag.FlagSet, names ...string) bool {
	for _, n := range names {
		if isSet(fs, n) {
			return true
		}
	}
	return false
}

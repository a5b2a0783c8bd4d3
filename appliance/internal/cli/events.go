package cli

import (
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// maxEvents is the most events the API answers at once.
const maxEvents = 10000

var eventHeader = []string{"SEQ", "TIME", "MACHINE", "KIND", "BY", "MESSAGE"}

// runEvents lists events: those after --since, or else the newest ones.
func runEvents(e *env, args []string) error {
	fs := e.flagSet("events")
	since := fs.Uint64("since", 0, "")
	limit := fs.Int("limit", 100, "")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *limit < 1 || *limit > maxEvents {
		return usagef("events: --limit must be between 1 and %d", maxEvents)
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	if !isSet(fs, "since") {
		// Sequence numbers are dense: the newest events follow last-limit.
		_, last, err := c.Events(e.ctx, 0, 1)
		if err != nil {
			return err
		}
		*since = last - min(last, uint64(*limit))
	}
	events, _, err := c.Events(e.ctx, *since, *limit)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return printValues(e, events)
	}
	rows := make([][]string, len(events))
	for i, ev := range events {
		rows[i] = eventRow(ev)
	}
	return writeTable(e.stdout, eventHeader, rows)
}

// runWatch prints events as they are committed, from --since (or from
// now), until interrupted; at central, the fleet's machines as they
// change (fleetWatch).
func runWatch(e *env, args []string) error {
	fs := e.flagSet("watch")
	since := fs.Uint64("since", 0, "")
	q := fs.String("q", "", "")
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	central, err := e.atCentral()
	switch {
	case err != nil:
		return err
	case central && isSet(fs, "since"):
		return usagef("watch: --since is a site's event sequence; at central, watch machines follows the fleet from now")
	case central && (len(pos) == 0 || pos[0] == "machines"):
		return e.fleetWatch(*q)
	case central:
		return usagef("watch: at central, watch machines [-q QUERY]")
	case len(pos) > 0 || *q != "":
		return usagef("watch: a site's watch follows its events: watch [--since N] (watch machines is central's)")
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	if !isSet(fs, "since") {
		if _, *since, err = c.Events(e.ctx, 0, 1); err != nil {
			return err
		}
	}
	err = c.Stream(e.ctx, *since, e.printEvent)
	if e.ctx.Err() != nil {
		return nil // interrupted: the normal way to stop
	}
	if err == nil {
		err = errors.New("the appliance closed the event stream")
	}
	return err
}

// printEvent writes one event as a line, a JSON line or a YAML document.
func (e *env) printEvent(ev store.Event) error {
	if streamed, err := e.printStreamed(ev); streamed {
		return err
	}
	row := eventRow(ev)
	for i := range row {
		row[i] = cell(row[i])
	}
	_, err := fmt.Fprintf(e.stdout, "%s %s %s %s %s %s\n", row[0], row[1], row[2], row[3], row[4], row[5])
	return err
}

func eventRow(ev store.Event) []string {
	return []string{strconv.FormatUint(ev.Seq, 10), timeCell(ev.Time), ev.MachineID, ev.Kind, ev.By, ev.Message}
}

// isSet reports whether flag name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

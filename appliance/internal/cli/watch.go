package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/internal/backoff"
)

// watchBackoff paces watch's reconnections to central's fleet stream.
var watchBackoff = backoff.Exponential{Base: 250 * time.Millisecond, Max: 10 * time.Second}

// fleetWatch prints the machines q matches, then, at each new version
// of the fleet, those whose state, order or step changed, until
// interrupted. A stream central ends, or a connection lost, is resumed
// from the last version seen (Last-Event-ID); an answer of central's
// (a query it cannot read, a token it refuses) ends the watch.
func (e *env) fleetWatch(q string) error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	q = e.fleetQuery(q)
	w := &machineWatch{e: e, shown: map[string]string{}}
	ms, version, err := c.AllMachines(e.ctx, q)
	if err != nil {
		return err
	}
	if err := w.print(ms); err != nil {
		return err
	}
	for try := 0; ; try++ {
		seen := version
		version, err = c.Stream(e.ctx, version, func(uint64) error {
			ms, _, err := c.AllMachines(e.ctx, q)
			if err != nil {
				return err
			}
			return w.print(ms)
		})
		var ae *cclient.Error
		switch {
		case e.ctx.Err() != nil:
			return nil // interrupted: the normal way to stop
		case errors.As(err, &ae):
			return err
		case version > seen:
			try = 0 // it streamed: not a failure to connect
		}
		if err != nil && try > 0 {
			fmt.Fprintf(e.stderr, "outpost: watch: %v; reconnecting\n", err)
		}
		if !backoff.Sleep(e.ctx, watchBackoff.Wait(try)) {
			return nil
		}
	}
}

// machineWatch prints the rows of machines that changed since it last
// printed them.
type machineWatch struct {
	e      *env
	shown  map[string]string // by site/id, what was last printed of it
	header bool
}

// watchKey is what of a machine a change of prints it again.
func watchKey(m *cclient.Machine) string {
	k := m.State
	if o := m.LastOrder; o != nil {
		k += "|" + o.Key + "|" + o.Status
	}
	if w := m.Workflow; w != nil {
		k += fmt.Sprintf("|%s|%s|%d|%s", w.ID, w.Step, w.Done, w.Progress)
	}
	return k
}

func (w *machineWatch) print(ms []*cclient.Machine) error {
	e := w.e
	for _, m := range ms {
		name, key := m.Site+"/"+m.ID, watchKey(m)
		if w.shown[name] == key {
			continue
		}
		w.shown[name] = key
		if err := w.printOne(m); err != nil {
			return err
		}
	}
	if !w.header && e.opts.tabular() {
		// Nothing matched: the header alone says the watch has begun.
		w.header = true
		fmt.Fprintln(e.stdout, strings.Join(e.fleetMachineHeader(), " "))
	}
	return nil
}

// printOne writes a machine as a line (the first one under a header), a
// JSON line or a YAML document.
func (w *machineWatch) printOne(m *cclient.Machine) error {
	e := w.e
	if streamed, err := e.printStreamed(m); streamed {
		return err
	}
	if !w.header {
		w.header = true
		fmt.Fprintln(e.stdout, strings.Join(e.fleetMachineHeader(), " "))
	}
	row := e.fleetMachineRow(m)
	for i := range row {
		row[i] = strings.ReplaceAll(cell(row[i]), " ", "_")
	}
	_, err := fmt.Fprintln(e.stdout, strings.Join(row, " "))
	return err
}

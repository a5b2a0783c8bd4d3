package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// runBMCAccept trusts a certificate of a machine's Redfish BMC: the one
// given, or the one the BMC presented (as get machine shows it).
func runBMCAccept(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("bmc accept-certificate"), args, 1, 2)
	if err != nil {
		return err
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	id := pos[0]
	var fp string
	if len(pos) == 2 {
		fp = pos[1]
	} else {
		var m store.Machine
		if err := c.Get(e.ctx, "machines", id, &m); err != nil {
			return err
		}
		if m.BMC == nil || m.BMC.Certificate == nil || m.BMC.Certificate.Presented == "" {
			return fmt.Errorf("machine %s: its BMC has presented no certificate waiting to be accepted; give the fingerprint to accept", id)
		}
		fp = m.BMC.Certificate.Presented
	}
	var m store.Machine
	path := "/v1/machines/" + url.PathEscape(id) + "/bmc/accept-certificate"
	if err := c.Do(e.ctx, http.MethodPost, path, map[string]string{"fingerprint": fp}, &m); err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(&m)
	}
	fmt.Fprintf(e.stdout, "machine %s: BMC certificate %s accepted\n", id, m.BMC.Certificate.Accepted)
	return nil
}

// bmcCertCell sums up what the appliance knows of a machine's BMC
// certificate, fingerprints cut short: accepted, presented and not
// accepted, or changed since it was accepted.
func bmcCertCell(b *store.BMC) string {
	if b == nil || b.Certificate == nil {
		return ""
	}
	c := b.Certificate
	switch {
	case c.Presented != "" && c.Accepted != "":
		return "CHANGED " + short(c.Presented, 19) + "…"
	case c.Presented != "":
		return "NOT ACCEPTED " + short(c.Presented, 19) + "…"
	case c.Accepted != "":
		return "accepted " + short(c.Accepted, 19) + "…"
	}
	return ""
}

// machineDetail is what a table of one machine adds below it: its BMC
// certificates in full, and how to accept one waiting.
func machineDetail(raw json.RawMessage) []string {
	var m store.Machine
	if json.Unmarshal(raw, &m) != nil || m.BMC == nil || m.BMC.Certificate == nil {
		return nil
	}
	var out []string
	if c := m.BMC.Certificate; c.Accepted != "" {
		out = append(out, "BMC certificate accepted:  "+c.Accepted)
	}
	if c := m.BMC.Certificate; c.Presented != "" {
		out = append(out, "BMC certificate presented: "+c.Presented+" (not trusted: the BMC gets no password)",
			"  "+site.HowToAccept(m.ID, c.Presented))
	}
	return out
}

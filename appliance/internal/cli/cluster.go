package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/seal"
)

// runClusterStatus shows the cluster as the server asked sees it.
func runClusterStatus(e *env, args []string) error {
	if _, err := e.parse(e.flagSet("cluster status"), args, 0, 0); err != nil {
		return err
	}
	if central, err := e.atCentral(); err != nil || central {
		if err != nil {
			return err
		}
		return e.centralClusterStatus()
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	st, err := c.Cluster(e.ctx)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(st)
	}
	fmt.Fprintln(e.stdout, statusLine(st))
	if st.CA != nil {
		fmt.Fprintln(e.stdout, caLine(*st.CA))
	}
	rows := make([][]string, len(st.Members))
	for i, m := range st.Members {
		rows[i] = []string{m.ID, m.RaftAddr, m.APIAddr, m.Suffrage, yesNo(m.Leader), fmt.Sprint(m.CAGeneration)}
	}
	return writeTable(e.stdout, []string{"ID", "RAFT_ADDR", "API", "SUFFRAGE", "LEADER", "CA_GENERATION"}, rows)
}

// caLine sums up the site's CA: "site CA generation 2 (sha256 ...),
// rotating from 1 (...)".
func caLine(ca site.CAStatus) string {
	fps := map[uint64]string{}
	for _, c := range ca.CAs {
		fps[c.Generation] = c.Fingerprint
	}
	line := fmt.Sprintf("site CA generation %d (%s)", ca.Generation, cell(fps[ca.Generation]))
	if ca.Rotating {
		line += fmt.Sprintf(", rotating from %d (%s): finish once every member shows generation %d",
			ca.Generation-1, cell(fps[ca.Generation-1]), ca.Generation)
	}
	return line
}

// statusLine sums up a node's view: "n1: Leader, leader n1, term 2, ...".
func statusLine(st site.Status) string {
	parts := []string{
		cell(st.ID) + ": " + cell(st.State),
		"leader " + cell(st.LeaderID),
		fmt.Sprintf("term %d", st.Term),
		fmt.Sprintf("applied %d", st.AppliedIndex),
		fmt.Sprintf("commit %d", st.CommitIndex),
	}
	if st.LastContact != "" {
		parts = append(parts, "last contact "+cell(st.LastContact)+" ago")
	}
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY: " + cell(st.Problem)
	}
	return strings.Join(append(parts, health), ", ")
}

// runClusterJoin adds a node as a voter and, with --site-key-out, saves
// the site key the node will need.
func runClusterJoin(e *env, args []string) error {
	fs := e.flagSet("cluster join")
	keyOut := fs.String("site-key-out", "", "")
	pos, err := e.parse(fs, args, 3, 3)
	if err != nil {
		return err
	}
	if *keyOut != "" {
		if _, err := os.Lstat(*keyOut); err == nil {
			return fmt.Errorf("%s already exists; not overwriting it with a site key", *keyOut)
		}
	}
	c, token, err := e.client()
	if err != nil {
		return err
	}
	id := pos[0]
	resp, err := c.Join(e.ctx, api.JoinRequest{ID: id, RaftAddr: pos[1], APIURL: pos[2]})
	if err != nil {
		return fmt.Errorf("join %s: %w", id, err)
	}
	fmt.Fprintf(e.stdout, "node %s joined the cluster\n", id)
	if *keyOut == "" {
		return nil
	}
	if err := writeSiteKey(*keyOut, token, id, resp.SealedSiteKey); err != nil {
		return fmt.Errorf("node %s joined, but its site key was not saved: %w", id, err)
	}
	fmt.Fprintf(e.stdout, "site key for %s written to %s\n", id, *keyOut)
	return nil
}

// writeSiteKey opens the sealed site key with the key derived from token
// and writes its raw bytes to a new file, mode 0600.
func writeSiteKey(path, token, id string, sealed []byte) error {
	raw, err := api.JoinKey(token).Open(sealed, "site key for "+id)
	if err != nil {
		return err
	}
	if _, err := seal.NewKey(raw); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(path))
	}
	return nil
}

// runClusterRemove removes a node from the cluster.
func runClusterRemove(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("cluster remove"), args, 1, 1)
	if err != nil {
		return err
	}
	c, err := sideClient[memberRemover](e)
	if err != nil {
		return err
	}
	if err := c.RemoveMember(e.ctx, pos[0]); err != nil {
		return fmt.Errorf("remove %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "node %s removed from the cluster\n", pos[0])
	return nil
}

// runClusterRotateCA takes a step of a rotation of the CA of the site, or
// of central's.
func runClusterRotateCA(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("cluster rotate-ca"), args, 1, 1)
	if err != nil {
		return err
	}
	step := pos[0]
	if step != site.CABegin && step != site.CAFinish {
		return fmt.Errorf("cluster rotate-ca: %q is not a step: want begin or finish", step)
	}
	whose, gen, prev, v, err := e.rotateCA(step)
	if err != nil {
		return fmt.Errorf("rotate the %s CA (%s): %w", whose, step, err)
	}
	if !e.opts.tabular() {
		return e.printValue(v)
	}
	if step == site.CABegin {
		fmt.Fprintf(e.stdout, "%s CA rotation begun: generation %d is current, %d still trusted; "+
			"run 'outpost cluster rotate-ca finish' once 'outpost cluster status' shows every member at generation %d\n",
			whose, gen, prev, gen)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s CA rotation finished: only generation %d is trusted\n", whose, gen)
	return nil
}

// rotateCA takes the step on the target's side and returns whose CA it
// was, the current and previous generations, and the answer to print.
func (e *env) rotateCA(step string) (whose string, gen, prev uint64, v any, err error) {
	central, err := e.atCentral()
	if err != nil {
		return "site", 0, 0, nil, err
	}
	if central {
		c, err := e.centralClient()
		if err != nil {
			return "central", 0, 0, nil, err
		}
		ca, err := c.RotateCA(e.ctx, step)
		return "central", ca.Generation, ca.Previous, ca, err
	}
	c, _, err := e.client()
	if err != nil {
		return "site", 0, 0, nil, err
	}
	ca, err := c.RotateCA(e.ctx, step)
	return "site", ca.Generation, ca.Previous, ca, err
}

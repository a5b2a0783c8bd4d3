package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	cclient "github.com/outposthq/outpost/central/client"
)

// centralApply applies files at central: sites are created (or their
// labels set), a site's objects put into its desired state (each change
// a new revision), catalogue images put; each only if central does not
// hold it as it is. It checks every document first and applies nothing
// if any is bad or names no site.
func (e *env) centralApply(files []string) error {
	docs, err := e.load(files, centralKinds)
	if err != nil {
		return err
	}
	var problems int
	for _, d := range docs {
		switch {
		case d.kind.placeable && d.placement != nil && cmp.Or(d.site, e.opts.site) != "":
			fmt.Fprintf(e.stderr, "outpost: %s: %s: sites: and site_labels: place a catalogue image: a site's own image (site: %s) has neither\n", d.where, d.ref, cmp.Or(d.site, e.opts.site))
			problems++
		case d.kind.perSite && !d.kind.placeable && d.site == "" && e.opts.site == "":
			fmt.Fprintf(e.stderr, "outpost: %s: %s names no site: add site: to it, or give --site\n", d.where, d.ref)
			problems++
		}
	}
	if problems > 0 {
		return fmt.Errorf("nothing was applied: %d problem(s)", problems)
	}
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	return e.applyAll(docs, func(d *doc) (string, error) {
		site := cmp.Or(d.site, e.opts.site)
		switch {
		case d.kind.name == "site":
			return e.applySite(c, d)
		case d.kind.placeable && site == "":
			return e.applyCatalogueImage(c, d)
		}
		return e.applySiteObject(c, d, site)
	})
}

// centralDelete deletes one of central's objects.
func (e *env) centralDelete(name, key string) error {
	k, err := centralKind(name)
	if err != nil {
		return err
	}
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	switch {
	case k.name == "site":
		return errors.New("central has no way to delete a site")
	case k.name == "token":
		err = c.DeleteToken(e.ctx, key)
	case e.opts.site == "":
		return perSiteNeedsSite(k, key)
	default:
		var rev uint64
		rev, err = c.Delete(e.ctx, e.opts.site, k.plural, key)
		if err == nil {
			fmt.Fprintf(e.stdout, "%s deleted at site %s (revision %d)\n", k.ref(key), e.opts.site, rev)
			return nil
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s deleted\n", k.ref(key))
	return nil
}

// sideClient returns the client of the target's side, the site's or
// central's, as T: an interface of methods both clients have.
func sideClient[T any](e *env) (T, error) {
	var zero T
	var c any
	central, err := e.atCentral()
	switch {
	case err != nil:
		return zero, err
	case central:
		c, err = e.centralClient()
	default:
		c, _, err = e.client()
	}
	if err != nil {
		return zero, err
	}
	return c.(T), nil
}

// tokens returns the token API of the target: the site's or central's.
func (e *env) tokens() (tokenServer, error) { return sideClient[tokenServer](e) }

// memberRemover is what cluster remove needs: both sides remove a member
// alike.
type memberRemover interface {
	RemoveMember(ctx context.Context, id string) error
}

// runTokenDelete deletes an API token, at a site or at central.
func runTokenDelete(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("token delete"), args, 1, 1)
	if err != nil {
		return err
	}
	c, err := e.tokens()
	if err != nil {
		return err
	}
	if err := c.DeleteToken(e.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "token %s deleted\n", pos[0])
	return nil
}

// centralClusterStatus shows a replicated central's cluster as the node
// asked sees it; a single central says it has none.
func (e *env) centralClusterStatus() error {
	c, err := e.centralClient()
	if err != nil {
		return err
	}
	st, err := c.Cluster(e.ctx)
	if cclient.IsSingle(err) {
		fmt.Fprintln(e.stdout, "central runs as a single node: it has no Raft cluster")
		return nil
	}
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(st)
	}
	fmt.Fprintf(e.stdout, "%s: %s, leader %s, applied %d, commit %d\n", cell(st.ID), cell(st.State), cell(st.Leader), st.AppliedIndex, st.CommitIndex)
	rows := make([][]string, len(st.Members))
	for i, m := range st.Members {
		voter := false
		for _, v := range st.Voters {
			voter = voter || v == m.ID
		}
		rows[i] = []string{m.ID, m.RaftAddr, m.APIURL, yesNo(voter), yesNo(m.ID == st.Leader), short(m.Fingerprint, 16)}
	}
	return writeTable(e.stdout, []string{"ID", "RAFT_ADDR", "API", "VOTER", "LEADER", "KEY"}, rows)
}

// runContextSet creates or changes a context: --site URL or --central
// URL (which switches its side), --token-file or --token, --ca-fingerprint
// and --ca-file; fields not given are kept.
func runContextSet(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("context set"), args, 1, 1)
	if err != nil {
		return err
	}
	o := e.opts
	if o.server != "" || o.context != "" {
		return usagef("context set: give the context's server as --site URL or --central URL")
	}
	tokenFile, err := absPath(o.tokenFile.val)
	if err != nil {
		return err
	}
	caFile, err := absPath(o.caFile)
	if err != nil {
		return err
	}
	path, err := editConfig(func(f *configFile) error {
		c := f.find(pos[0])
		if c == nil {
			c = &Context{Name: pos[0]}
			f.Contexts = append(f.Contexts, c)
		}
		setContext(c, o, tokenFile, caFile)
		return f.validate()
	})
	if err != nil {
		return fmt.Errorf("context set %s: %w", pos[0], err)
	}
	fmt.Fprintf(e.stdout, "context %s saved in %s\n", pos[0], path)
	return nil
}

// setContext sets the fields of c the options give.
func setContext(c *Context, o *options, tokenFile, caFile string) {
	switch {
	case o.site != "":
		c.Site, c.Central = o.site, ""
	case o.central != "":
		c.Site, c.Central = "", o.central
	}
	switch {
	case o.token.set:
		c.Token, c.TokenFile = o.token.val, ""
	case o.tokenFile.set:
		c.Token, c.TokenFile = "", tokenFile
	}
	if o.caFingerprint != "" {
		c.CAFingerprint = o.caFingerprint
	}
	if caFile != "" {
		c.CAFile = caFile
	}
}

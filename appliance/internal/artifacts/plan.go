package artifacts

import (
	"context"
	"hash/fnv"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// InternalPath is where every node serves its artifacts to the others on
// the Raft port (Handler): InternalPath + "/<64 hex>", with Range, and
// InternalPath alone for its Status.
const InternalPath = "/v1/internal/artifacts"

// view is what a plan reads of the site's store, in one transaction.
type view struct {
	records []*store.Artifact
	images  []*store.Image
	members map[string]*store.Member
}

func (n *Node) read() (*view, error) {
	v := &view{members: map[string]*store.Member{}}
	err := n.cfg.DB.View(func(tx *store.Tx) error {
		var err error
		if v.records, err = store.List[store.Artifact](tx); err != nil {
			return err
		}
		if v.images, err = store.List[store.Image](tx); err != nil {
			return err
		}
		ms, err := store.List[store.Member](tx)
		for _, m := range ms {
			v.members[m.ID] = m
		}
		return err
	})
	return v, err
}

// Plan is what this node should hold now, from where, and what it may
// remove (see the package comment).
func (n *Node) Plan(ctx context.Context) (artifact.Plan, error) {
	v, err := n.read()
	if err != nil {
		return artifact.Plan{}, err
	}
	var plan artifact.Plan
	leader := n.cfg.Site.IsLeader()
	now := n.cfg.Now()
	known := map[artifact.Digest]bool{}
	for _, rec := range v.records {
		d := artifact.Digest(rec.SHA256)
		known[d] = true
		if !rec.Referenced() {
			switch due := rec.UnreferencedSince.Add(n.cfg.Grace); {
			case !n.holds(d, rec):
			case !now.Before(due):
				plan.Garbage = append(plan.Garbage, d)
			default:
				n.collectAt(due)
			}
			continue
		}
		size := rec.Size
		if size == 0 {
			size = -1
		}
		w := artifact.Want{Info: artifact.Info{Digest: d, Size: size}, Recorded: rec.HeldBy(n.cfg.ID)}
		w.Sources = n.sources(v, rec, leader && !pullElsewhere(rec, n.cfg.ID, now))
		plan.Want = append(plan.Want, w)
	}
	plan.Garbage = append(plan.Garbage, n.orphans(known, now)...)
	return plan, nil
}

// collectAt makes watch start a pass at t, when garbage is due, unless
// one is due sooner.
func (n *Node) collectAt(t time.Time) {
	n.mu.Lock()
	if n.gcAt.IsZero() || t.Before(n.gcAt) {
		n.gcAt = t
	}
	n.mu.Unlock()
}

// holds reports whether this node has anything of d: the artifact, a
// partial fetch, or the site's record of it.
func (n *Node) holds(d artifact.Digest, rec *store.Artifact) bool {
	_, ok := n.cfg.Store.Stat(d)
	return ok || n.cfg.Store.Partial(d) > 0 || rec.HeldBy(n.cfg.ID)
}

// orphans are the digests this node holds that no record names, held
// (by their file's time) for longer than the grace period: what a node
// fetched just before the last image pointing at it went, or what an
// earlier life of the node left.
func (n *Node) orphans(known map[artifact.Digest]bool, now time.Time) []artifact.Digest {
	held, err := n.cfg.Store.List()
	if err != nil {
		n.log.Warn("artifacts: list the store", "err", err)
		return nil
	}
	var out []artifact.Digest
	for _, i := range held {
		if known[i.Digest] {
			continue
		}
		fi, err := os.Stat(filepath.Join(n.cfg.Store.Dir(), "sha256", string(i.Digest)))
		switch {
		case err != nil:
		case now.Sub(fi.ModTime()) >= n.cfg.Grace:
			out = append(out, i.Digest)
		default:
			n.collectAt(fi.ModTime().Add(n.cfg.Grace))
		}
	}
	return out
}

// pullStale is how long a pull another node reported counts as under
// way without a word from it: twice the longest wait between the
// reports of a pull (progressEvery).
const pullStale = 2 * progressEvery

// pullElsewhere reports whether another node is pulling rec from past
// the site: it reported the pull lately, and no failure. A node that
// stops leading finishes the pull it began (its transfer goes on), so the
// new leader waits for it rather than bringing the same bytes over the
// WAN a second time; it pulls once that pull fails, or falls silent for
// pullStale (its node died).
func pullElsewhere(rec *store.Artifact, self string, now time.Time) bool {
	p := rec.Pull
	return p != nil && p.Node != self && p.Error == "" && now.Sub(p.Time) < pullStale
}

// sources are where this node fetches rec from, in order: its own
// artifact directory (an image that is a file there), the peers that
// hold it, and, if wan (on the leader, unless another node is pulling
// it), central and the upstream URLs.
func (n *Node) sources(v *view, rec *store.Artifact, wan bool) []artifact.Source {
	d := artifact.Digest(rec.SHA256)
	var out []artifact.Source
	var upstream []string
	for _, img := range v.images {
		if img.Type != store.ImageOS || !strings.EqualFold(img.SHA256, rec.SHA256) {
			continue
		}
		if img.File != "" && n.files != nil {
			out = append(out, artifact.Source{Name: "artifact_dir", URL: "file:///" + strings.TrimPrefix(img.File, "/"), Client: n.files})
		}
		if img.URL != "" {
			upstream = append(upstream, img.URL)
		}
	}
	out = append(out, n.peerSources(v, rec)...)
	if !wan {
		return out
	}
	out = append(out, n.centralSources(d)...)
	for _, u := range upstream {
		out = append(out, artifact.Source{Name: "upstream " + hostOf(u), URL: u, Client: n.upstream, WAN: true})
	}
	return out
}

// peerSources are the other nodes that hold rec, in an order of this
// node's own (so that the followers of a site do not all copy from the
// same peer).
func (n *Node) peerSources(v *view, rec *store.Artifact) []artifact.Source {
	var out []artifact.Source
	for _, id := range n.order(rec.Holders()) {
		m := v.members[id]
		if id == n.cfg.ID || m == nil || m.RaftAddr == "" || n.cfg.Peers == nil {
			continue
		}
		out = append(out, artifact.Source{Name: "peer " + id, URL: "https://" + m.RaftAddr + InternalPath + "/" + rec.SHA256, Client: n.cfg.Peers})
	}
	return out
}

// order sorts ids by a hash of this node's id and theirs.
func (n *Node) order(ids []string) []string {
	key := func(id string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(n.cfg.ID + "\x00" + id))
		return h.Sum64()
	}
	slices.SortFunc(ids, func(a, b string) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return ids
}

// centralSources are central's nodes, with the site's credential, read
// now; none if the site has no central or the credential is unreadable.
func (n *Node) centralSources(d artifact.Digest) []artifact.Source {
	c := n.cfg.Central
	if len(c.Bases) == 0 {
		return nil
	}
	raw, err := os.ReadFile(c.CredentialFile)
	cred := strings.TrimSpace(string(raw))
	if err != nil || cred == "" {
		n.log.Warn("artifacts: cannot read the site's credential: not pulling from central", "file", c.CredentialFile, "err", err)
		return nil
	}
	var out []artifact.Source
	for _, base := range c.Bases {
		name := "central"
		if len(c.Bases) > 1 {
			name = "central " + hostOf(base)
		}
		out = append(out, artifact.Source{
			Name: name, URL: base + "/v1/sites/" + url.PathEscape(c.Site) + "/artifacts/" + string(d),
			Client: c.Client, Header: http.Header{"Authorization": {"Bearer " + cred}}, WAN: true,
		})
	}
	return out
}

// hostOf is raw's host, for a source's name: never its path or query,
// which may carry a credential.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "?"
	}
	return u.Host
}

// ArtifactPeers returns where the other nodes that hold d serve it
// (httpboot.Peers).
func (n *Node) ArtifactPeers(d artifact.Digest) []artifact.Source {
	v := &view{members: map[string]*store.Member{}}
	var rec *store.Artifact
	_ = n.cfg.DB.View(func(tx *store.Tx) error {
		rec, _ = store.Get[store.Artifact](tx, string(d))
		ms, err := store.List[store.Member](tx)
		for _, m := range ms {
			v.members[m.ID] = m
		}
		return err
	})
	if rec == nil {
		return nil
	}
	return n.peerSources(v, rec)
}

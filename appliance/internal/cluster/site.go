package cluster

import "github.com/outposthq/outpost/appliance/internal/site"

// Site is this node of the site as its edges see it: leadership, reads
// and membership from the cluster node, every change through the
// proposer. It satisfies the small interfaces the edges declare (dhcp,
// jobs, provision, syncclient).
type Site struct {
	*Node
	*site.Proposer
}

// NewSite returns node with a proposer that commits through it.
func NewSite(node *Node, cfg site.ProposerConfig) *Site {
	cfg.Log, cfg.Store = node, node.DB()
	return &Site{Node: node, Proposer: site.NewProposer(cfg)}
}

package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/site"
)

// The site of artifacts.fanout: fanoutNodes applianced processes on
// loopback, stopped when the runner's cleanups run.

// fanoutNode is one node of the site.
type fanoutNode struct {
	id      string
	dataDir string
	api     *httpAPI
}

// artifactPath is where the node's artifact store keeps a digest (its
// default, <data-dir>/artifacts).
func (n *fanoutNode) artifactPath(sum string) string {
	return filepath.Join(n.dataDir, "artifacts", "sha256", sum)
}

// startFanoutSite starts the site's nodes with syncArgs, n1 bootstrapping
// it and the others joining n1 with its admin token, and returns them
// once every node sees the same leader and every member a voter.
func startFanoutSite(t lab.T, bin string, syncArgs []string) []*fanoutNode {
	nodes := make([]*fanoutNode, fanoutNodes)
	var token string // n1's admin token: every node's, once joined
	for i := range nodes {
		n := &fanoutNode{id: fmt.Sprintf("n%d", i+1), dataDir: filepath.Join(t.TempDir(), "appliance")}
		addr := freeLoopback(t)
		n.api = newHTTPAPI("http://" + addr)
		args := append([]string{bin, "-id", n.id, "-data-dir", n.dataDir, "-api-addr", addr,
			"-raft-addr", freeLoopback(t), "-log-level", "warn"}, syncArgs...)
		var env []string
		if i > 0 {
			args = append(args, "-join", nodes[0].api.url)
			env = []string{"OUTPOST_JOIN_TOKEN=" + token}
		}
		p := lab.StartProcess(t, lab.ProcessConfig{Name: "applianced-" + n.id, Args: args, Env: env})
		if i == 0 {
			token = waitToken(t, p, filepath.Join(n.dataDir, "admin.token"))
		}
		n.api.token = token
		nodes[i] = n
	}
	if err := pollEvery(t.Context(), 100*time.Millisecond, 2*time.Minute, func() error { return formed(t, nodes) }); err != nil {
		t.Fatalf("the site: %v", err)
	}
	return nodes
}

// formed says why the nodes do not form the site yet, or nil.
func formed(t lab.T, nodes []*fanoutNode) error {
	var leader string
	for _, n := range nodes {
		var st site.Status
		if err := n.api.do(t.Context(), "GET", "/v1/cluster", nil, &st); err != nil {
			return err
		}
		if st.LeaderID == "" || leader != "" && st.LeaderID != leader {
			return fmt.Errorf("%s sees leader %q, another node %q", n.id, st.LeaderID, leader)
		}
		leader = st.LeaderID
		voters := 0
		for _, m := range st.Members {
			if m.Suffrage == "Voter" {
				voters++
			}
		}
		if voters != len(nodes) {
			return fmt.Errorf("%s sees %d voters, want %d", n.id, voters, len(nodes))
		}
	}
	return nil
}

// fanoutArtifacts is the part of the site API's GET /v1/artifacts the
// benchmark reads.
type fanoutArtifacts struct {
	Items []artifacts.Record     `json:"items"`
	Nodes []artifacts.NodeStatus `json:"nodes"`
}

// waitHeldEverywhere polls the site's API through n until the site
// records every node holding the artifact sum; it returns when a poll
// first saw a node holding it (the pull from central done).
func waitHeldEverywhere(t lab.T, n *fanoutNode, sum string) (first time.Time) {
	err := pollEvery(t.Context(), 150*time.Millisecond, 30*time.Minute, func() error {
		var list fanoutArtifacts
		if err := n.api.do(t.Context(), "GET", "/v1/artifacts?consistent=true", nil, &list); err != nil {
			return err
		}
		i := slices.IndexFunc(list.Items, func(r artifacts.Record) bool { return r.SHA256 == sum })
		if i < 0 {
			return fmt.Errorf("the site records no artifact %s", sum)
		}
		r := list.Items[i]
		if first.IsZero() && len(r.Nodes) > 0 {
			first = time.Now()
		}
		if len(r.Nodes) != fanoutNodes || len(r.Missing) > 0 {
			return fmt.Errorf("artifact %s is %s, held by %v, missing on %v", sum, r.State, r.Nodes, r.Missing)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// siteFetched sums what the site's nodes say they fetched since they
// started, from past the site and from peers.
func siteFetched(t lab.T, n *fanoutNode) (wan, peer int64) {
	var list fanoutArtifacts
	if err := n.api.do(t.Context(), "GET", "/v1/artifacts?node=all", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Nodes) != fanoutNodes {
		t.Fatalf("the site's API shows %d nodes' artifacts, want %d", len(list.Nodes), fanoutNodes)
	}
	for _, st := range list.Nodes {
		if st.Error != "" {
			t.Fatalf("node %s's artifacts: %s", st.Node, st.Error)
		}
		wan += st.FetchedWAN
		peer += st.FetchedPeer
	}
	return wan, peer
}

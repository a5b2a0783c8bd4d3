package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// soakCentral is the soak's central: a Raft cluster of centrald nodes on
// the host's loopback, any of which the soak can SIGKILL and start
// again on its data.
type soakCentral struct {
	t      lab.T
	bin    string // the release it starts from
	newBin string // the release an upgrade starts its nodes from
	token  string
	nodes  []*soakCentralNode
}

// soakCentralNode is one centrald of the cluster; its incarnation counts
// its starts (a restarted process is sampled as a new one).
type soakCentralNode struct {
	id, addr string
	api      *httpAPI
	args     []string

	mu          sync.Mutex
	proc        *lab.Process
	incarnation int
}

// startSoakCentral starts a cluster of n centrald nodes of bins' old
// release, c1 its first, and returns once c1 leads them all.
func startSoakCentral(t lab.T, bins soakBins, n int) *soakCentral {
	c := &soakCentral{t: t, bin: bins.oldCentrald, newBin: bins.newCentrald}
	first := c.node(1, nil)
	c.start(first)
	first.api.token = waitToken(t, first.proc, filepath.Join(first.args[2], "admin.token"))
	c.token = first.api.token
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= n; i++ {
		nd := c.node(i, []string{"-join", first.api.url, "-join-token-file", tokenFile})
		nd.api.token = c.token
		c.start(nd)
	}
	err := pollEvery(t.Context(), 200*time.Millisecond, 2*time.Minute, func() error {
		var st struct {
			State  string   `json:"state"`
			Voters []string `json:"voters"`
		}
		if err := first.api.do(t.Context(), "GET", "/v1/cluster", nil, &st); err != nil {
			return err
		}
		if st.State != "Leader" || len(st.Voters) != n {
			return fmt.Errorf("central c1 is %s with voters %v", st.State, st.Voters)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("central cluster: %v", err)
	}
	return c
}

// node makes node i's configuration, with more flags.
func (c *soakCentral) node(i int, more []string) *soakCentralNode {
	addr := freeLoopback(c.t)
	id := fmt.Sprintf("c%d", i)
	nd := &soakCentralNode{id: id, addr: addr, api: newHTTPAPI("http://" + addr),
		args: append([]string{c.bin, "-data-dir", filepath.Join(c.t.TempDir(), "central-"+id), "-addr", addr,
			"-raft-addr", freeLoopback(c.t), "-node-id", id, "-log-level", "warn"}, more...)}
	c.nodes = append(c.nodes, nd)
	return nd
}

func (c *soakCentral) start(nd *soakCentralNode) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.incarnation++
	nd.proc = lab.StartProcess(c.t, lab.ProcessConfig{Name: fmt.Sprintf("centrald-%s-%d", nd.id, nd.incarnation), Args: nd.args})
}

// leader is the node that says it leads, or nil.
func (c *soakCentral) leader(ctx context.Context) *soakCentralNode {
	for _, nd := range c.nodes {
		if centralNodeLeads(ctx, nd) {
			return nd
		}
	}
	return nil
}

// kill SIGKILLs nd's centrald.
func (nd *soakCentralNode) kill() {
	nd.mu.Lock()
	p := nd.proc
	nd.mu.Unlock()
	p.Kill()
}

// process is nd's running centrald and its name for samples.
func (nd *soakCentralNode) process() (*lab.Process, string) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.proc, nd.proc.Name
}

// do calls central's API at the first node that answers, trying them in
// turn (from the last that answered) for up to timeout: a node killed,
// or one that is no leader and cannot forward yet, is skipped.
func (c *soakCentral) do(ctx context.Context, timeout time.Duration, method, path string, in, out any) error {
	deadline := time.Now().Add(timeout)
	var errs []error
	for i := 0; ; i++ {
		nd := c.nodes[i%len(c.nodes)]
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := nd.api.do(cctx, method, path, in, out)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs[max(0, len(errs)-2):], fmt.Errorf("%s: %w", nd.id, err))
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(errs...)
		}
		if i%len(c.nodes) == len(c.nodes)-1 {
			if err := sleepCtx(ctx, time.Second); err != nil {
				return err
			}
		}
	}
}

// addrs are every node's API address, in order.
func (c *soakCentral) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.addr
	}
	return out
}

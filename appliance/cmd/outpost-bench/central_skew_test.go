package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/cli"
	"github.com/outposthq/outpost/appliance/internal/lab"
)

// A central of three nodes halfway through a rolling upgrade from the
// release the soak upgrades from (-soak-upgrade-from, 75c47a5: it skips
// annotations, command 29, and does not say which commands it applies):
// c1 and c3 upgraded, c2 still old and a follower. An annotation posted
// through any node is refused with 503 naming c2 (before the leader
// checked its members, it was acknowledged, c2 skipped it, and it was
// gone once c2 led), and outpost annotate shows that message as is.
// Once c2 runs this release too, an annotation is recorded, and each
// node in turn, c2 first, leads and serves it.
func TestCentralRollingUpgradeSkew(t *testing.T) {
	lab.Require(t, "git")
	ctx := t.Context()
	root, err := stormModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldBin, newBin := buildSkewBins(t, root, t.TempDir(), "centrald", "./central/cmd/centrald")
	c := startSoakCentral(t, soakBins{oldCentrald: oldBin, newCentrald: newBin}, 3)
	nodes := map[string]*soakCentralNode{}
	for _, nd := range c.nodes {
		nodes[nd.id] = nd
	}
	restartAs(t, c, nodes["c1"], newBin)
	restartAs(t, c, nodes["c3"], newBin)
	for i := 0; centralLeaderID(t, c) == "c2"; i++ {
		if i == 5 {
			t.Fatal("c2 still leads after 5 restarts")
		}
		restartAs(t, c, nodes["c2"], oldBin) // it hands leadership to c1 or c3
	}

	annotation := map[string]string{"kind": "upgrade", "start": "2026-12-08T01:00:00Z", "text": "c2 old"}
	const refusal = "central is mid-upgrade: node c2 does not apply annotations yet (its release applies command types up to 28"
	for _, nd := range c.nodes {
		// Until the node knows the new leader, it may answer another
		// 503 (no leader): never a 201.
		err := pollEvery(ctx, 500*time.Millisecond, time.Minute, func() error {
			err := nd.api.do(ctx, "POST", "/v1/annotations", annotation, nil)
			if err == nil {
				t.Fatalf("POST /v1/annotations through %s with c2 old was acknowledged", nd.id)
			}
			if !strings.Contains(err.Error(), ": 503 ") || !strings.Contains(err.Error(), refusal) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("POST /v1/annotations through %s with c2 old: %v; want 503 %q", nd.id, err, refusal)
		}
	}
	var stderr bytes.Buffer
	code := cli.Run(ctx, []string{"--central", nodes["c1"].api.url, "--token", c.token, "annotate", "upgrade", "c2", "old"},
		strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if code == 0 || !strings.HasPrefix(stderr.String(), "outpost: "+refusal) || !strings.Contains(stderr.String(), "(HTTP 503)") {
		t.Fatalf("outpost annotate with c2 old: exit %d, %q; want the refusal as is", code, stderr.String())
	}
	if got := centralAnnotations(t, c.leader(ctx)); len(got) != 0 {
		t.Fatalf("after the refusals central holds annotations %v", got)
	}

	restartAs(t, c, nodes["c2"], newBin)
	annotation["text"] = "every node upgraded"
	if err := pollEvery(ctx, 500*time.Millisecond, time.Minute, func() error {
		return nodes["c1"].api.do(ctx, "POST", "/v1/annotations", annotation, nil)
	}); err != nil {
		t.Fatalf("POST /v1/annotations once c2 is upgraded: %v", err)
	}
	for _, id := range []string{"c2", "c1", "c3"} {
		leadTo(t, c, nodes[id], newBin)
		if got := centralAnnotations(t, nodes[id]); !slices.Equal(got, []string{"upgrade: every node upgraded"}) {
			t.Errorf("%s leads and serves annotations %v; want the one posted once c2 was upgraded", id, got)
		}
	}
}

// restartAs stops nd with SIGTERM (a leader hands leadership over) and
// starts it from bin on its data, waiting until it has caught up: the
// soak's upgrade of a node (soakCentral.upgradeNode), to bin.
func restartAs(t *testing.T, c *soakCentral, nd *soakCentralNode, bin string) {
	t.Helper()
	upgradeTo := c.newBin
	defer func() { c.newBin = upgradeTo }()
	c.newBin = bin
	if err := c.upgradeNode(t.Context(), nd); err != nil {
		t.Fatalf("restart %s: %v", nd.id, err)
	}
}

// centralLeaderID is the id of the node that leads, once one does.
func centralLeaderID(t *testing.T, c *soakCentral) string {
	t.Helper()
	var id string
	if err := pollEvery(t.Context(), 200*time.Millisecond, time.Minute, func() error {
		if ld := c.leader(t.Context()); ld != nil {
			id = ld.id
			return nil
		}
		return fmt.Errorf("no central node leads")
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// leadTo makes nd central's leader: the other followers stopped, the
// leader hands its leadership to nd, the one member it still reaches,
// as it stops (SIGTERM); then both start again from bin. An election
// among them may still go another way: then again.
func leadTo(t *testing.T, c *soakCentral, nd *soakCentralNode, bin string) {
	t.Helper()
	for i := 0; ; i++ {
		id := centralLeaderID(t, c)
		if id == nd.id {
			return
		}
		if i == 5 {
			t.Fatalf("%s does not lead after %d hand-overs", nd.id, i)
		}
		var leader *soakCentralNode
		var stopped []*soakCentralNode
		for _, o := range c.nodes {
			switch {
			case o.id == id:
				leader = o
			case o != nd:
				stopCentral(t, o)
				stopped = append(stopped, o)
			}
		}
		restartAs(t, c, leader, bin)
		for _, o := range stopped {
			restartAs(t, c, o, bin)
		}
	}
}

// stopCentral stops nd's centrald with SIGTERM and waits for it.
func stopCentral(t *testing.T, nd *soakCentralNode) {
	t.Helper()
	p, _ := nd.process()
	p.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(t.Context(), soakStopWait)
	defer cancel()
	if err := p.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s did not stop within %v of SIGTERM", nd.id, soakStopWait)
	}
}

// centralAnnotations are the annotations node nd answers, as
// "kind: text"; nd leads, so it answers from its own store.
func centralAnnotations(t *testing.T, nd *soakCentralNode) []string {
	t.Helper()
	if nd == nil {
		t.Fatal("no central node leads")
	}
	var got struct {
		Annotations []struct{ Kind, Text string }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := nd.api.do(ctx, "GET", "/v1/annotations", nil, &got); err != nil {
		t.Fatalf("GET /v1/annotations at %s: %v", nd.id, err)
	}
	var out []string
	for _, a := range got.Annotations {
		out = append(out, a.Kind+": "+a.Text)
	}
	return out
}

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/testdir"
)

// putMachines puts machines m<from>..m<to-1> through n.
func (c *cluster) putMachines(n *node, from, to int) {
	c.t.Helper()
	for i := from; i < to; i++ {
		m := newMachine(fmt.Sprintf("m%d", i), fmt.Sprintf("02:e2:dd:00:00:%02x", i))
		c.send(n, http.MethodPut, "/v1/machines/"+m.ID, m)
	}
}

// waitExit waits for n's process to end by itself and returns what it
// wrote to stderr; the test fails if it still runs after 30 s (it started
// where it must not: it is killed) or ends with status 0.
func (c *cluster) waitExit(n *node) string {
	c.t.Helper()
	select {
	case <-n.proc.done:
	case <-time.After(30 * time.Second):
		c.kill(n)
		c.t.Fatalf("%s still ran 30s after it started; stdout:\n%s", n.id, tail(n.proc.stdout, 20))
	}
	if code := n.proc.exitCode(); code <= 0 {
		c.t.Errorf("%s: exit status %d, want > 0", n.id, code)
	}
	stderr, err := os.ReadFile(n.proc.stderr)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(stderr)
}

// withFlag returns args with the value of flag replaced.
func withFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	i := slices.Index(out, flag)
	out[i+1] = value
	return out
}

// TestDataDirRefused starts applianced on copies of a stopped node's data
// directory that lost or damaged a file (raft.db or store.db removed,
// emptied or truncated), or whose store is past its Raft log: each time
// it exits with a status > 0, names the file on stderr with how to
// recover, and leaves the directory as it was. Before, a missing or
// emptied raft.db and an emptied store.db started afresh (a new cluster
// under an old store: deletes answered 204 and changed nothing).
func TestDataDirRefused(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	c.putMachines(n, 0, 10)
	c.stop(n, 60*time.Second)
	earlier := filepath.Join(c.dir, "earlier")
	if err := os.CopyFS(earlier, os.DirFS(n.dataDir)); err != nil {
		t.Fatal(err)
	}
	c.start(n)
	c.waitFormed(n)
	c.putMachines(n, 10, 20)
	c.stop(n, 60*time.Second)

	i := 0
	for name, damage := range testdir.Damages("store.db", earlier) {
		t.Run(name, func(t *testing.T) {
			i++
			dir := filepath.Join(c.dir, fmt.Sprintf("damaged%d", i))
			before := damage.Copy(t, n.dataDir, dir)
			// The same node on the damaged copy; its logs under a name
			// of their own.
			m := &node{id: fmt.Sprintf("damaged%d", i), dataDir: dir, args: withFlag(n.args, "-data-dir", dir)}
			c.nodes = append(c.nodes, m) // cleaned up with the others
			sub := *c
			sub.t = t // fail this subtest, not the parent
			sub.start(m)
			stderr := sub.waitExit(m)
			t.Logf("stderr:\n%s", stderr)
			testdir.CheckRefusal(t, errors.New(stderr), dir, damage, before,
				"changed nothing in "+dir, "cluster remove n1", "mv "+dir+" "+dir+".refused", "-join ")
		})
	}
}

// TestRestoreNodeFromPeers follows the recovery a refused node prints, on
// a 3-node site whose bootstrap node lost its raft.db: move its data
// directory aside; with the CLI and the admin token from the old
// directory, remove it through the leader; start it again joining another
// member with that token. It rejoins as a voter with every object, and
// takes writes.
func TestRestoreNodeFromPeers(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2 := c.node("n1"), c.node("n2")
	c.putMachines(c.nodes[1], 0, 20)
	c.stop(n1, 60*time.Second)
	if err := os.Remove(filepath.Join(n1.dataDir, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	c.start(n1)
	stderr := c.waitExit(n1)
	if !strings.Contains(stderr, "cluster remove n1") {
		t.Fatalf("the refusal does not say how to recover:\n%s", stderr)
	}

	// The recovery, as printed.
	leader := c.node(c.waitFormedWithout(n1))
	refused := n1.dataDir + ".refused"
	tokenFile := filepath.Join(refused, "admin.token")
	if err := os.Rename(n1.dataDir, refused); err != nil {
		t.Fatal(err)
	}
	cli := exec.CommandContext(t.Context(), outpostCLI(t), "-server", leader.apiURL, "-token-file", tokenFile,
		"cluster", "remove", "n1")
	cli.Env = baseEnv()
	out, err := cli.CombinedOutput()
	if err != nil {
		t.Fatalf("outpost cluster remove n1: %v\n%s", err, out)
	}
	n1.args = append(n1.args, "-join", n2.apiURL, "-join-token-file", tokenFile)
	c.start(n1)
	c.waitFormed(c.nodes...)

	want, err := c.machines(leader, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 20 {
		t.Fatalf("the leader has %d machines, want 20", len(want))
	}
	c.putMachines(n1, 20, 21)
	c.waitFor(60*time.Second, "n1 to hold every machine", func() error {
		got, err := c.machines(n1, false)
		if err != nil {
			return err
		}
		if len(got) != 21 {
			return fmt.Errorf("n1 has %d machines, want 21", len(got))
		}
		for id, m := range want {
			if diff := cmp.Diff(m, got[id]); diff != "" {
				return fmt.Errorf("machine %s on n1 (-leader +n1):\n%s", id, diff)
			}
		}
		return nil
	})
}

// waitFormedWithout waits until the nodes other than gone agree on a
// leader among them, and returns it.
func (c *cluster) waitFormedWithout(gone *node) string {
	c.t.Helper()
	var leader string
	c.waitFor(90*time.Second, "a leader without "+gone.id, func() error {
		leader = ""
		for _, n := range c.nodes {
			if n == gone {
				continue
			}
			st, err := c.status(n)
			if err != nil {
				return err
			}
			if st.LeaderID == "" || st.LeaderID == gone.id || (leader != "" && st.LeaderID != leader) {
				return fmt.Errorf("%s sees leader %q", n.id, st.LeaderID)
			}
			leader = st.LeaderID
		}
		return nil
	})
	return leader
}

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/testdir"
)

// TestClusterFailover writes through every node of a 3-node site while its
// leader is killed, and checks that no acknowledged write is lost, that
// writes go on under the new leader, and that the killed node catches up
// when it comes back.
func TestClusterFailover(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.node(c.waitFormed(c.nodes...))
	followers := slices.DeleteFunc(slices.Clone(c.nodes), func(n *node) bool { return n == leader })

	// A write sent to a follower is forwarded to the leader and replicated.
	first := newMachine("via-follower", "02:e2:ff:00:00:01")
	c.send(followers[0], http.MethodPut, "/v1/machines/"+first.ID, first)
	for _, n := range c.nodes {
		c.waitFor(20*time.Second, first.ID+" on "+n.id, func() error {
			var m store.Machine
			if err := c.get(n, "/v1/machines/"+first.ID, &m); err != nil {
				return err
			}
			if len(m.Interfaces) != 1 || m.Interfaces[0].MAC != first.Interfaces[0].MAC {
				return fmt.Errorf("%s has %+v", n.id, m.Interfaces)
			}
			return nil
		})
	}

	secret := putSecretMachine(t, c, followers[1])

	// Writers run through every node while the leader is killed.
	w := startWriters(c, 8, 4000)
	defer w.abort()
	c.waitFor(60*time.Second, "writes before the kill", func() error {
		if n := w.ackedCount(); n < 100 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	})
	w.markDead(leader)
	c.kill(leader)
	killed := time.Now()
	t.Logf("killed leader %s with %d writes acknowledged", leader.id, w.ackedCount())

	newLeader := c.waitNewLeader(followers, leader.id)
	t.Logf("%s leads after %v", newLeader, time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	w.stop()

	acked := w.ackedWrites()
	after := w.ackedAfterKill()
	t.Logf("%d writes acknowledged, %d of them sent after the kill; %d attempts got no answer or a 5xx",
		len(acked), after, w.retried.Load())
	for _, msg := range w.refusals() {
		t.Errorf("write refused: %s", msg)
	}
	if after == 0 {
		t.Errorf("no write sent after the leader was killed was acknowledged")
	}
	acked[first.ID] = first.Interfaces[0].MAC
	for _, n := range followers {
		ms, err := c.machines(n, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := missing(ms, acked); err != nil {
			t.Errorf("survivor %s: %v", n.id, err)
		}
	}
	if t.Failed() {
		return
	}

	// The killed node comes back with the same flags and data, and catches
	// up with everything acknowledged while it was gone.
	c.start(leader)
	c.waitFor(60*time.Second, leader.id+" to catch up", func() error {
		ms, err := c.machines(leader, false)
		if err != nil {
			return err
		}
		return missing(ms, acked)
	})
	c.waitFormed(c.nodes...)

	assertSecretHidden(t, c, secret)
}

// missing reports which of want (ID to MAC) got lacks or has differently.
func missing(got map[string]store.Machine, want map[string]string) error {
	var bad []string
	for id, mac := range want {
		m, ok := got[id]
		switch {
		case !ok:
			bad = append(bad, id+" (absent)")
		case len(m.Interfaces) != 1 || m.Interfaces[0].MAC != mac:
			bad = append(bad, fmt.Sprintf("%s (interfaces %+v, want MAC %s)", id, m.Interfaces, mac))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	if len(bad) > 10 {
		bad = append(bad[:10], "...")
	}
	return fmt.Errorf("%d of %d acknowledged machines missing or wrong: %s", len(bad), len(want), strings.Join(bad, ", "))
}

// waitNewLeader waits until every node of survivors sees the same leader,
// other than old, and returns its ID.
func (c *cluster) waitNewLeader(survivors []*node, old string) string {
	c.t.Helper()
	var leader string
	c.waitFor(60*time.Second, "a new leader", func() error {
		leader = ""
		for _, n := range survivors {
			st, err := c.status(n)
			if err != nil {
				return err
			}
			if st.LeaderID == "" || st.LeaderID == old {
				return fmt.Errorf("%s sees leader %q", n.id, st.LeaderID)
			}
			if leader != "" && leader != st.LeaderID {
				return fmt.Errorf("%s sees leader %s, another node %s", n.id, st.LeaderID, leader)
			}
			leader = st.LeaderID
		}
		return nil
	})
	return leader
}

// putSecretMachine stores a machine with a BMC password through n and
// returns the password.
func putSecretMachine(t *testing.T, c *cluster, n *node) string {
	t.Helper()
	secret := "S3cret-e2e-" + rand.Text()
	m := newMachine("bmc-secret", "02:e2:ff:00:00:02")
	m.BMC = &store.BMC{Address: "10.0.0.9:623", Username: "admin", Password: secret}
	raw := c.send(n, http.MethodPut, "/v1/machines/"+m.ID, m)
	if bytes.Contains(raw, []byte(secret)) {
		t.Errorf("PUT answer holds the BMC password: %s", raw)
	}
	for _, n := range c.nodes {
		c.waitFor(20*time.Second, m.ID+" on "+n.id, func() error {
			var got store.Machine
			return c.get(n, "/v1/machines/"+m.ID, &got)
		})
	}
	return secret
}

// assertSecretHidden checks that no answer, log line or data file of any
// node holds secret in the clear.
func assertSecretHidden(t *testing.T, c *cluster, secret string) {
	t.Helper()
	for _, n := range c.nodes {
		for _, path := range []string{"/v1/machines/bmc-secret", "/v1/machines", "/v1/events?limit=10000"} {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			code, raw, err := c.do(ctx, n, http.MethodGet, path, nil)
			cancel()
			if err != nil || code != http.StatusOK {
				t.Errorf("%s: GET %s: HTTP %d, %v", n.id, path, code, err)
				continue
			}
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s: GET %s answers the BMC password in the clear", n.id, path)
			}
		}
		var m store.Machine
		if err := c.get(n, "/v1/machines/bmc-secret", &m); err != nil {
			t.Error(err)
		} else if m.BMC == nil || !m.BMC.PasswordSet || len(m.BMC.SealedPassword) != 0 {
			t.Errorf("%s: bmc = %+v, want password_set and no sealed password", n.id, m.BMC)
		}
	}
	dirs := []string{c.logDir}
	for _, n := range c.nodes {
		dirs = append(dirs, n.dataDir)
	}
	files := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s holds the BMC password in the clear", path)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	if files < 2*len(c.nodes) {
		t.Errorf("scanned only %d files for the password", files)
	}
}

// writers put distinct machines through the nodes of a cluster, round
// robin, and record which writes were acknowledged.
type writers struct {
	c      *cluster
	nodes  []*node
	dead   atomic.Pointer[node]
	budget atomic.Int64
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	// ctx ends the requests in flight when the test gives up (abort).
	ctx    context.Context
	cancel context.CancelFunc
	// killedAt is when markDead was called (UnixNano), 0 before.
	killedAt atomic.Int64
	// retried counts attempts that got no answer or a 5xx.
	retried atomic.Int64

	mu        sync.Mutex
	acked     map[string]string // machine ID -> MAC
	afterKill int
	refused   []string
}

// startWriters starts n writers that make at most limit writes in all.
func startWriters(c *cluster, n, limit int) *writers {
	w := &writers{c: c, nodes: c.nodes, done: make(chan struct{}), acked: map[string]string{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.budget.Store(int64(limit))
	for k := range n {
		w.wg.Go(func() { w.run(k) })
	}
	return w
}

func (w *writers) run(k int) {
	for i := 0; ; i++ {
		if w.stopped() || w.budget.Add(-1) < 0 {
			return
		}
		id := fmt.Sprintf("w%d-%d", k, i)
		mac := fmt.Sprintf("02:e2:%02x:%02x:%02x:%02x", k, byte(i>>16), byte(i>>8), byte(i))
		sent := time.Now().UnixNano()
		// A write that fails for want of an answer is tried on other
		// nodes; PUT is idempotent.
		for attempt := range 3 {
			if w.stopped() {
				return
			}
			n := w.pick(k + i + attempt)
			ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
			code, raw, err := w.c.do(ctx, n, http.MethodPut, "/v1/machines/"+id, newMachine(id, mac))
			cancel()
			if err == nil && code/100 == 2 {
				w.ack(id, mac, sent)
				break
			}
			if err == nil && code/100 == 4 {
				w.refuse(fmt.Sprintf("%s via %s: HTTP %d: %s", id, n.id, code, bytes.TrimSpace(raw)))
				break
			}
			w.retried.Add(1)
		}
	}
}

// pick returns the i-th node, round robin, skipping the dead one.
func (w *writers) pick(i int) *node {
	for {
		n := w.nodes[i%len(w.nodes)]
		if n != w.dead.Load() {
			return n
		}
		i++
	}
}

func (w *writers) stopped() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *writers) ack(id, mac string, sent int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.acked[id] = mac
	if k := w.killedAt.Load(); k != 0 && sent > k {
		w.afterKill++
	}
}

func (w *writers) refuse(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refused = append(w.refused, msg)
}

// markDead stops sending to n from now on.
func (w *writers) markDead(n *node) {
	w.dead.Store(n)
	w.killedAt.Store(time.Now().UnixNano())
}

// stop stops the writers and waits for their last requests to be
// answered.
func (w *writers) stop() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}

// abort stops the writers without waiting for answers.
func (w *writers) abort() {
	w.cancel()
	w.stop()
}

func (w *writers) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writers) ackedWrites() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.acked))
	for id, mac := range w.acked {
		out[id] = mac
	}
	return out
}

func (w *writers) ackedAfterKill() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.afterKill
}

func (w *writers) refusals() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.refused)
}

// siteState is what a node answers for the objects of a site.
type siteState struct {
	Machines []json.RawMessage
	Subnets  []json.RawMessage
	Events   []json.RawMessage
	LastSeq  uint64
}

// state reads n's objects; consistent makes the reads linearizable.
func (c *cluster) state(n *node, consistent bool) (siteState, error) {
	q := ""
	if consistent {
		q = "consistent=true&"
	}
	var st siteState
	var page struct{ Items []json.RawMessage }
	if err := c.get(n, "/v1/machines?"+q, &page); err != nil {
		return st, err
	}
	st.Machines = page.Items
	page.Items = nil
	if err := c.get(n, "/v1/subnets?"+q, &page); err != nil {
		return st, err
	}
	st.Subnets = page.Items
	var events struct {
		Events  []json.RawMessage `json:"events"`
		LastSeq uint64            `json:"last_seq"`
	}
	if err := c.get(n, "/v1/events?"+q+"limit=10000", &events); err != nil {
		return st, err
	}
	st.Events, st.LastSeq = events.Events, events.LastSeq
	return st, nil
}

// waitApplied waits until each of nodes has applied index idx to its store.
func (c *cluster) waitApplied(idx uint64, nodes ...*node) {
	c.t.Helper()
	for _, n := range nodes {
		c.waitFor(60*time.Second, fmt.Sprintf("%s to apply index %d", n.id, idx), func() error {
			st, err := c.status(n)
			if err != nil {
				return err
			}
			if st.AppliedIndex < idx {
				return fmt.Errorf("%s applied %d (commit index %d)", n.id, st.AppliedIndex, st.CommitIndex)
			}
			return nil
		})
	}
}

// TestCleanRestart stops every node of a site with SIGTERM and starts them
// again from their data directories: every object and event must be
// there as it was, and the site must have a leader.
func TestCleanRestart(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d-nodes", size), func(t *testing.T) {
			c := startCluster(t, size)
			leader := c.node(c.waitFormed(c.nodes...))
			for i := range 20 {
				m := newMachine(fmt.Sprintf("m%d", i), fmt.Sprintf("02:e2:aa:00:00:%02x", i))
				m.Tags = []string{"rack-1", fmt.Sprintf("slot-%d", i)}
				c.send(c.nodes[i%size], http.MethodPut, "/v1/machines/"+m.ID, m)
			}
			for i := range 3 {
				s := store.Subnet{
					Name:    fmt.Sprintf("net%d", i),
					CIDR:    fmt.Sprintf("198.18.%d.0/24", i),
					Gateway: fmt.Sprintf("198.18.%d.1", i),
					Pools:   []store.Range{{Start: fmt.Sprintf("198.18.%d.100", i), End: fmt.Sprintf("198.18.%d.199", i)}},
				}
				c.send(c.nodes[i%size], http.MethodPut, "/v1/subnets/"+s.Name, s)
			}
			for i := range 3 {
				e := store.Event{MachineID: fmt.Sprintf("m%d", i), Kind: "note", Message: fmt.Sprintf("operator note %d", i)}
				c.send(c.nodes[i%size], http.MethodPost, "/v1/events", e)
			}
			before, err := c.state(leader, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(before.Machines) != 20 || len(before.Subnets) != 3 || len(before.Events) < 3 || before.LastSeq == 0 {
				t.Fatalf("before the restart: %d machines, %d subnets, %d events (last seq %d)",
					len(before.Machines), len(before.Subnets), len(before.Events), before.LastSeq)
			}
			st, err := c.status(leader)
			if err != nil {
				t.Fatal(err)
			}
			applied := st.AppliedIndex
			c.waitApplied(applied, c.nodes...)

			// The leader first, so that it hands off; then the others.
			order := append([]*node{leader}, slices.DeleteFunc(slices.Clone(c.nodes), func(n *node) bool { return n == leader })...)
			for _, n := range order {
				c.stop(n, 60*time.Second)
			}
			for _, n := range c.nodes {
				c.start(n)
			}
			c.waitFormed(c.nodes...)
			// Local reads: TestConsistentReadAfterRestart covers
			// linearizable ones.
			c.waitApplied(applied, c.nodes...)
			for _, n := range c.nodes {
				after, err := c.state(n, false)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(before, after, rawJSON); diff != "" {
					t.Errorf("%s after the restart (-before +after):\n%s", n.id, diff)
				}
			}
		})
	}
}

// TestConsistentReadAfterRestart checks that a linearizable read answers
// once a restarted site has elected a leader, before any new write: the
// new leader's first log entry is a no-op that the store never applies, so
// a read that waits for the store to reach the commit index must not wait
// for it.
func TestConsistentReadAfterRestart(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	m := newMachine("m0", "02:e2:cc:00:00:01")
	c.send(n, http.MethodPut, "/v1/machines/"+m.ID, m)
	c.stop(n, 60*time.Second)
	c.start(n)
	c.waitFormed(n)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	start := time.Now()
	code, raw, err := c.do(ctx, n, http.MethodGet, "/v1/machines/"+m.ID+"?consistent=true", nil)
	if err != nil {
		st, _ := c.status(n)
		t.Fatalf("GET ?consistent=true after a restart: %v after %v; the store's applied index is %d, "+
			"the commit index %d (a read that waits for the store to reach the commit index never ends "+
			"if the last entry is the leader's no-op)",
			err, time.Since(start).Round(time.Millisecond), st.AppliedIndex, st.CommitIndex)
	}
	if code != http.StatusOK {
		t.Fatalf("GET ?consistent=true after a restart: HTTP %d: %s", code, raw)
	}
}

// rawJSON compares JSON documents by meaning rather than by bytes.
var rawJSON = cmp.Transformer("json", func(r json.RawMessage) any {
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return string(r)
	}
	return v
})

// TestCorruptDataDir damages a stopped node's store and checks that
// applianced refuses to start, says why and where and how to recover, and
// leaves the data directory as it was for the operator to examine or
// restore. TestDataDirRefused (datadir_test.go) does the same for files
// lost, emptied or truncated.
func TestCorruptDataDir(t *testing.T) {
	c := startCluster(t, 1)
	n := c.nodes[0]
	for i := range 150 {
		m := newMachine(fmt.Sprintf("m%d", i), fmt.Sprintf("02:e2:bb:00:00:%02x", i))
		for d := range 8 {
			m.Disks = append(m.Disks, store.Disk{Name: fmt.Sprintf("nvme%dn1", d), Size: 1 << 40, Model: "SAMSUNG MZQL21T9HCJR-00A07", Serial: fmt.Sprintf("S64GNE0R%06d-%d", i, d)})
		}
		c.send(n, http.MethodPut, "/v1/machines/"+m.ID, m)
	}
	c.stop(n, 60*time.Second)

	path := n.storePath()
	const garbage = 8 << 10
	off := livePageOffset(t, path, 16<<10)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, garbage), off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	damaged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fiBefore, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d bytes of 0xAB at offset %d of %s (%d bytes)", garbage, off, path, len(damaged))
	dirBefore := testdir.Files(t, n.dataDir)

	start := time.Now()
	c.start(n)
	select {
	case <-n.proc.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("applianced still runs 30s after starting on a damaged store")
	}
	t.Logf("applianced exited after %v: %v", time.Since(start).Round(time.Millisecond), n.proc.err)
	if code := n.proc.exitCode(); code <= 0 {
		t.Errorf("exit status %d on a damaged store, want > 0", code)
	}
	stderr, err := os.ReadFile(n.proc.stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stderr: %s", tail(n.proc.stderr, 1))
	if !bytes.Contains(bytes.ToLower(stderr), []byte("corrupt")) || !bytes.Contains(stderr, []byte(path)) {
		t.Errorf("stderr does not say the store %s is corrupt:\n%s", path, stderr)
	}
	if !bytes.Contains(stderr, []byte("mv "+n.dataDir+" "+n.dataDir+".refused")) {
		t.Errorf("stderr does not say how to recover:\n%s", stderr)
	}
	if diff := cmp.Diff(dirBefore, testdir.Files(t, n.dataDir)); diff != "" {
		t.Errorf("a refused start changed the data directory (-before +after):\n%s", diff)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, damaged) {
		t.Errorf("%s changed (%d bytes before, %d after): a damaged store must be left as it is", path, len(damaged), len(after))
	}
	if fiAfter, err := os.Stat(path); err != nil || !os.SameFile(fiBefore, fiAfter) {
		t.Errorf("%s was replaced by another file (%v)", path, err)
	}
}

// livePageOffset returns the offset, at or after min, of the in-use
// (branch or leaf) page of the bbolt file at path nearest the middle of
// its used pages, so that damage there is damage to data rather than to
// free space.
func livePageOffset(t *testing.T, path string, min int64) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	psz := int64(db.Info().PageSize)
	var live []int64
	var used int64
	err = db.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			used = int64(id+1) * psz
			if off := int64(id) * psz; off >= min && (p.Type == "leaf" || p.Type == "branch") {
				live = append(live, off)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(live) == 0 {
		t.Fatalf("%s (%d bytes used) has no page in use at or after offset %d", path, used, min)
	}
	best := live[0]
	for _, off := range live {
		if abs(off-used/2) < abs(best-used/2) {
			best = off
		}
	}
	t.Logf("%s: %d of %d pages in use at or after offset %d; damaging the one at %d", path, len(live), used/psz, min, best)
	return best
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testwait"
)

// runningNode is an appliance running Run in the test's process.
type runningNode struct {
	out  *apptest.SyncBuffer
	done chan error
	stop func()
}

// startNode runs an appliance until the test ends (or stop), and waits
// until it prints where its API is: a joining node prints it once it has
// joined.
func startNode(t *testing.T, cfg *config.Config) *runningNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningNode{out: &apptest.SyncBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.NodeID)
	go func() { r.done <- Run(ctx, cfg, log, r.out) }()
	stopped := false
	r.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-r.done; err != nil {
				t.Errorf("%s: Run: %v", cfg.NodeID, err)
			}
		}
	}
	t.Cleanup(r.stop)
	waitOut(t, r.out, r.done, regexp.MustCompile(`API at `))
	return r
}

// waitFor polls cond until it holds, for at most waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, waitTimeout, cond)
}

// member returns id's row of the cluster status as c's node sees it.
func member(ctx context.Context, c *client.Client, id string) (site.MemberStatus, site.Status, bool) {
	st, err := c.Cluster(ctx)
	i := slices.IndexFunc(st.Members, func(m site.MemberStatus) bool { return m.ID == id })
	if err != nil || i < 0 {
		return site.MemberStatus{}, st, false
	}
	return st.Members[i], st, true
}

// A node joins through the API and gets a certificate from the site's
// CA, pinned in its member record; writes through it reach the leader
// over the Raft port's TLS. Once it is removed, it cannot append to the
// leader's log with its old certificate, and neither can a plain TCP
// client, a TLS client without a certificate or one whose certificate
// another CA signed: the forged token-creation command never lands, and
// the forged token does not authenticate.
func TestRaftMembersOnly(t *testing.T) {
	ctx := t.Context()
	cfg1 := testConfig(t)
	n1 := startNode(t, cfg1)
	token := waitOut(t, n1.out, n1.done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
	c1 := client.New(cfg1.APIURL, token)

	cfg2 := testConfig(t)
	cfg2.NodeID = "node2"
	cfg2.Join, cfg2.JoinTokenFile = cfg1.APIURL, cfg1.AdminTokenPath()
	n2 := startNode(t, cfg2)
	c2 := client.New(cfg2.APIURL, token)

	key, err := seal.Load(cfg1.SiteKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	auth, err := cluster.SiteCA(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := auth.CA(pki.Generation)
	if err != nil {
		t.Fatal(err)
	}
	trust := pki.NewTrust(cluster.ClusterName, ca.Certificate())
	ident2 := rafttest.MemberIdentity(t, trust, cfg2.DataDir, "node2")
	waitFor(t, "node2 to vote, pinned to its key", func() bool {
		m, _, ok := member(ctx, c1, "node2")
		return ok && m.Suffrage == "Voter" && m.Fingerprint == ident2.Fingerprint()
	})
	// A write through node2 (forwarded to the leader, or its own).
	if err := c2.Do(ctx, http.MethodPost, "/v1/events", store.Event{Kind: "note", Message: "via node2"}, nil); err != nil {
		t.Fatalf("a write through node2: %v", err)
	}

	// Removed through the leader's API, then stopped.
	leader := c1
	if _, st, _ := member(ctx, c1, "node2"); st.LeaderID == "node2" {
		leader = c2
	}
	if err := leader.Do(ctx, http.MethodDelete, "/v1/cluster/members/node2", nil, nil); err != nil {
		t.Fatalf("remove node2: %v", err)
	}
	n2.stop()
	waitFor(t, "node1 to lead alone", func() bool {
		_, st, gone := member(ctx, c1, "node2")
		return !gone && st.State == "Leader"
	})

	forged, rec := api.NewToken("forged")
	cmd, err := command.Encode(site.CreateToken, site.Put[store.Token]{Object: rec, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	checkForgery(t, cmd, rec)
	for name, conf := range rafttest.Attackers(t, trust, ident2, raftnode.ProtoRaft) {
		if err := rafttest.Forge(cfg1.RaftAddr, conf, cmd); err == nil {
			t.Errorf("%s: node1 took the forged entry", name)
		}
	}
	// A write after the attacks: anything forged before it would be
	// applied by the time it is.
	if err := c1.Do(ctx, http.MethodPost, "/v1/events", store.Event{Kind: "note", Message: "after"}, nil); err != nil {
		t.Fatal(err)
	}
	var ae *client.Error
	if err := client.New(cfg1.APIURL, forged).Do(ctx, http.MethodGet, "/v1/tokens", nil, nil); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("the forged token: %v, want 401", err)
	}
	var tokens []store.Token
	if err := c1.List(ctx, "tokens", &tokens); err != nil || slices.ContainsFunc(tokens, func(tk store.Token) bool { return tk.ID == rec.ID }) {
		t.Errorf("tokens after the attacks: %v, %v", tokens, err)
	}
	if _, st, _ := member(ctx, c1, "node1"); st.Term >= rafttest.ForgedTerm {
		t.Errorf("node1 took the forged term %d", st.Term)
	}
}

// checkForgery makes sure the forged command is one the site's state
// machine applies: on a scratch store it creates the token.
func checkForgery(t *testing.T, cmd []byte, rec *store.Token) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := site.NewStateMachine(db, slog.New(slog.DiscardHandler)).Apply([]command.Entry{{Index: 1, Data: cmd}})
	var got *store.Token
	db.View(func(tx *store.Tx) error { got, _ = store.Get[store.Token](tx, rec.ID); return nil })
	if err != nil || got == nil || got.Hash != rec.Hash {
		t.Fatalf("the forged command does not make the token on a scratch store (%v, %v): the attack tests nothing", res, err)
	}
}

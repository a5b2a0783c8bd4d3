// Package apptest starts real in-process appliance nodes for tests: a
// bbolt store, a Raft node on loopback and the API on an httptest server.
package apptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testnet"
)

// Node is a running single-node appliance.
type Node struct {
	URL   string // API base URL
	Token string // an admin token
	// Node is the node's membership of its one-node cluster; Site is the
	// same with the proposer, as the edges take it.
	Node *cluster.Node
	Site *cluster.Site
	DB   *store.DB
	Key  *seal.Key
	Dir  string
	// Logs holds everything the node logged, at debug level.
	Logs *SyncBuffer
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start starts a single-node appliance that leads its own cluster, with an
// admin token, and stops it when the test ends.
func Start(t testing.TB) *Node {
	t.Helper()
	n := &Node{Dir: t.TempDir(), Logs: &SyncBuffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(n.Logs, testOutput(t)), &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := store.Open(filepath.Join(n.Dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	n.DB = db
	t.Cleanup(func() { db.Close() })
	if n.Key, err = seal.Generate(); err != nil {
		t.Fatal(err)
	}
	raftAddr := FreeAddr(t)
	srv := httptest.NewUnstartedServer(nil)
	n.URL = "http://" + srv.Listener.Addr().String()
	node := OpenNode(t, n.Key, cluster.Config{
		ID: "n1", Dir: filepath.Join(n.Dir, "raft"), BindAddr: raftAddr,
		APIURL: n.URL, Bootstrap: true, Log: log,
	}, db)
	n.Node = node
	n.Site = cluster.NewSite(node, site.ProposerConfig{Key: n.Key})
	srv.Config.Handler = api.New(api.Config{Site: n.Site.Proposer, Store: db, Cluster: node,
		SiteKey: n.Key, Log: log}).Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !node.IsReadyLeader() { // its no-op applied: the store is current
		if ctx.Err() != nil {
			t.Fatal("node did not become leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	token, rec := api.NewToken("admin")
	if err := n.Site.CreateToken(ctx, rec); err != nil {
		t.Fatal(err)
	}
	n.Token = token
	return n
}

// OpenNode opens a cluster node over db with a key pair in cfg.Dir and
// the CA of site key key, and closes it when the test ends. A node that
// is to join a cluster then joins with JoinNode.
func OpenNode(t testing.TB, key *seal.Key, cfg cluster.Config, db *store.DB) *cluster.Node {
	t.Helper()
	ident, err := pki.LoadIdentity(cfg.Dir, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity = ident
	if cfg.CA, err = cluster.SiteCA(key); err != nil {
		t.Fatal(err)
	}
	node, err := cluster.Open(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// JoinNode joins node to the cluster of member, both in this process, as
// a join through the API does (cluster.Node.JoinWith).
func JoinNode(ctx context.Context, t testing.TB, key *seal.Key, node, member *cluster.Node) {
	t.Helper()
	ca := func() (*pki.Authority, error) { return cluster.SiteCA(key) }
	if err := node.JoinWith(ctx, member.Join, ca); err != nil {
		t.Fatalf("join %s: %v", node.ID(), err)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago (Raft's transport needs a concrete port to advertise): see
// testnet.FreeAddr.
func FreeAddr(t testing.TB) string { return testnet.FreeAddr(t) }

// testOutput is t.Output() where the test type has it.
func testOutput(t testing.TB) io.Writer {
	if o, ok := t.(interface{ Output() io.Writer }); ok {
		return o.Output()
	}
	return io.Discard
}

// Machine returns a valid machine with one interface, for tests.
func Machine(id string, mac int) *store.Machine {
	return &store.Machine{
		ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: fmt.Sprintf("02:00:00:00:%02x:%02x", mac>>8&0xff, mac&0xff)}},
	}
}

// Put stores objs in db as the site's state machine does, with its rules
// (a workflow is bound to its template, a lease must be free), each at
// the next index and at time at, with no Raft: for tests of a package
// that reads the store. Objects are normalized as the proposer does; one
// the rules refuse fails the test.
func Put(t testing.TB, db *store.DB, at time.Time, objs ...store.Object) {
	t.Helper()
	for _, o := range objs {
		var typ site.Type
		var payload any
		switch o := o.(type) {
		case *store.Machine:
			typ, payload = site.PutMachine, site.Put[store.Machine]{Object: o, Time: at}
		case *store.Subnet:
			typ, payload = site.PutSubnet, site.Put[store.Subnet]{Object: o, Time: at}
		case *store.Lease:
			typ, payload = site.PutLease, site.Put[store.Lease]{Object: o, Time: at}
		case *store.Image:
			o.Normalize()
			typ, payload = site.PutImage, site.Put[store.Image]{Object: o, Time: at}
		case *store.Template:
			typ, payload = site.PutTemplate, site.Put[store.Template]{Object: o, Time: at}
		case *store.Workflow:
			o.Normalize()
			typ, payload = site.PutWorkflow, site.Put[store.Workflow]{Object: o, Time: at}
		case *store.Settings:
			typ, payload = site.PutSettings, site.Put[store.Settings]{Object: o, Time: at}
		default:
			t.Fatalf("apptest: no command puts a %T", o)
		}
		Apply(t, db, typ, payload)
	}
}

// Apply applies one command of the site, with a JSON payload, to db
// through its state machine at the next index, with no Raft.
func Apply(t testing.TB, db *store.DB, typ site.Type, payload any) site.Result {
	t.Helper()
	cmd, err := command.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	r, err := site.NewLocalLog(db, nil).Commit(context.Background(), cmd)
	if err == nil && r.Err != nil {
		err = r.Err
	}
	if err != nil {
		t.Fatalf("apptest: apply command %d: %v", typ, err)
	}
	return r
}

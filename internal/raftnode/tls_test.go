package raftnode

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
)

// waitCond waits until cond holds, failing the test after 30 s.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The attack is real: a node without TLS takes a forged entry from
// anyone who reaches its Raft port and applies it.
func TestForgeAgainstPlainTCP(t *testing.T) {
	m := &member{id: "n1", dir: t.TempDir(), addr: freeAddr(t)}
	t.Cleanup(m.stop)
	m.start(t, true)
	waitReady(t, []*member{m})
	if err := rafttest.Forge(m.addr, nil, set("forged", "yes")); err != nil {
		t.Fatalf("the forged entry was refused by a plain node: %v", err)
	}
	waitCond(t, "the forged entry to be applied", func() bool { v, _, _ := m.kv.get("forged"); return v == "yes" })
}

// Over mutual TLS, nobody but a member gets a Raft RPC through: not a
// plain TCP client, not one without a certificate, not one whose
// certificate another CA signed, not a removed member with its
// certificate, not a member's id with another key. The store is
// unchanged and the node still leads.
func TestForgeAgainstTLS(t *testing.T) {
	ms := cluster(t, 2)
	leader := waitReady(t, ms)
	p := leader.pki
	removed := ms[0]
	if removed == leader {
		removed = ms[1]
	}
	removedIdent := p.identity(t, removed.dir, removed.id)
	removed.stop()
	if err := leader.node.RemoveServer(t.Context(), removed.id); err != nil {
		t.Fatal(err)
	}
	p.revoke(removed.id)

	attackers := rafttest.Attackers(t, p.trust, removedIdent, ProtoRaft)
	// A certificate the CA signed for the leader's id, with another key.
	attackers["another key"] = p.client(p.identity(t, t.TempDir(), leader.id), ProtoRaft)
	_, before, _ := leader.kv.get("")
	for name, conf := range attackers {
		if err := rafttest.Forge(leader.addr, conf, set("forged", name)); err == nil {
			t.Errorf("%s: the forged entry was taken", name)
		}
	}
	if v, applied, _ := leader.kv.get("forged"); v != "" || applied != before {
		t.Errorf("after the attacks: forged=%q, applied index %d (was %d)", v, applied, before)
	}
	if st := leader.node.Status(); st.State != "Leader" || st.Term >= rafttest.ForgedTerm {
		t.Errorf("after the attacks the node is %s at term %d", st.State, st.Term)
	}
	if _, res, err := leader.node.Propose(t.Context(), set("after", "1")); err != nil || res != "1" {
		t.Errorf("propose after the attacks: %v, %v", res, err)
	}
}

// A member's open Raft connection is cut once it stops being admitted
// (removed, or rekeyed): it does not keep what its handshake gave it.
func TestRevokedConnectionCut(t *testing.T) {
	ms := cluster(t, 1)
	p := ms[0].pki
	ident := p.identity(t, t.TempDir(), "n2")
	p.admit("n2", ident.Fingerprint())
	// n2 never runs: as a non-voter its addition commits on n1 alone.
	if err := ms[0].node.AddNonvoter(t.Context(), "n2", freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	c, err := rafttest.Dial(ms[0].addr, p.client(ident, ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A heartbeat of term 0 is answered (and ignored): the connection
	// works.
	if _, err := c.Heartbeat(0); err != nil {
		t.Fatalf("a member's heartbeat: %v", err)
	}
	p.revoke("n2")
	waitCond(t, "the revoked member's connection to be cut", func() bool {
		_, err := c.Heartbeat(0)
		return err != nil
	})
}

// The Raft port serves the internal HTTP handler to members, with the
// caller's identity, and refuses others.
func TestInternalHTTP(t *testing.T) {
	p := newTestPKI(t, 7)
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, _ := PeerFrom(r.Context())
		io.WriteString(w, peer.ID)
	})
	ms := []*member{
		{id: "n1", dir: t.TempDir(), addr: freeAddr(t), pki: p, internal: whoami},
		{id: "n2", dir: t.TempDir(), addr: freeAddr(t), pki: p, internal: whoami},
	}
	t.Cleanup(func() { ms[0].stop(); ms[1].stop() })
	ms[0].start(t, true)
	waitReady(t, ms[:1])
	ms[1].start(t, false)
	if err := ms[0].node.AddVoter(t.Context(), "n2", ms[1].addr); err != nil {
		t.Fatal(err)
	}
	get := func() (int, string, error) {
		res, err := ms[1].node.HTTPClient().Get("https://" + ms[0].addr + "/whoami")
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), nil
	}
	if code, body, err := get(); err != nil || code != 200 || body != "n2" {
		t.Fatalf("a member's call: %d %q %v; want 200 n2", code, body, err)
	}
	// Revoked: refused on the open (keep-alive) connection as on a new one.
	p.revoke("n2")
	if code, _, err := get(); err == nil && code == 200 {
		t.Error("a revoked member's call was served")
	}
	stranger, _ := pki.LoadIdentity(t.TempDir(), "n2")
	tr := &http.Transport{TLSClientConfig: p.client(stranger, ProtoHTTP)}
	defer tr.CloseIdleConnections()
	if res, err := (&http.Client{Transport: tr}).Get("https://" + ms[0].addr + "/whoami"); err == nil {
		res.Body.Close()
		t.Errorf("a caller without a certificate: %s", res.Status)
	}
}

// A stranger who opens connections and says nothing holds up no member:
// its handshakes beyond maxHandshakesPerIP are closed at once, and a
// member from another address still gets through.
func TestHandshakeCaps(t *testing.T) {
	ms := cluster(t, 1)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range maxHandshakesPerIP {
		c, err := d.Dial("tcp", ms[0].addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The server may not have counted the last ones yet: one more is
	// refused once they are all pending.
	waitCond(t, "a connection over the cap to be closed at once", func() bool {
		c, err := d.Dial("tcp", ms[0].addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	})
	p := ms[0].pki
	member := p.identity(t, t.TempDir(), "n2")
	p.admit("n2", member.Fingerprint())
	if err := ms[0].node.AddNonvoter(t.Context(), "n2", freeAddr(t)); err != nil {
		t.Fatal(err)
	}
	c, err := rafttest.Dial(ms[0].addr, p.client(member, ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Heartbeat(0); err != nil {
		t.Errorf("a member while a stranger holds %d handshakes: %v", maxHandshakesPerIP, err)
	}
}

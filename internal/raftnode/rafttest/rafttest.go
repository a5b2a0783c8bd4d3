// Package rafttest plays a stranger on a Raft port, for tests: a raw
// hashicorp/raft transport that speaks the wire format with whatever
// credentials it is given (none, plain TCP, or a TLS configuration), as
// an attacker who reaches the port would.
package rafttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/pki"
)

// ForgedTerm is the term a Client claims: far above any a test cluster
// reaches, so that a node that listens takes the client for its leader.
const ForgedTerm = 1 << 40

// Client sends Raft RPCs to one node.
type Client struct {
	ln     net.Listener
	trans  *raft.NetworkTransport
	target raft.ServerAddress
	hdr    raft.RPCHeader
}

// Dial returns a client of the node whose Raft port is addr: over TLS
// with conf (which must name the node's ALPN protocol), or plain TCP if
// conf is nil. Connections are made at the first RPC.
func Dial(addr string, conf *tls.Config) (*Client, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream{ln, conf}, MaxPool: 1, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("forger"), Addr: []byte(ln.Addr().String())}
	return &Client{ln: ln, trans: trans, target: raft.ServerAddress(addr), hdr: hdr}, nil
}

// Close closes the client's connections.
func (c *Client) Close() {
	c.trans.CloseStreams()
	c.trans.Close()
}

// Heartbeat sends an empty AppendEntries of the given term and returns
// the node's answer. A term below the node's changes nothing there.
func (c *Client) Heartbeat(term uint64) (raft.AppendEntriesResponse, error) {
	var resp raft.AppendEntriesResponse
	err := c.trans.AppendEntries("", c.target, &raft.AppendEntriesRequest{RPCHeader: c.hdr, Term: term}, &resp)
	return resp, err
}

// Append sends an AppendEntries of term carrying data as a command at
// index, and commits it (the leader's commit index is index).
func (c *Client) Append(term, index uint64, data []byte) error {
	req := &raft.AppendEntriesRequest{
		RPCHeader: c.hdr, Term: term, LeaderCommitIndex: index,
		Entries: []*raft.Log{{Index: index, Term: term, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}},
	}
	var resp raft.AppendEntriesResponse
	if err := c.trans.AppendEntries("", c.target, req, &resp); err != nil {
		return err
	}
	if !resp.Success {
		return errors.New("rafttest: the node refused the entry")
	}
	return nil
}

// Forge is the attack: a heartbeat of ForgedTerm, which makes a node that
// accepts it a follower of the client and tells its last index, then
// that index + 1 appended and committed with data (one command, as the
// node's log carries them). It returns nil if the node took the entry:
// its state machine then applies data.
func Forge(addr string, conf *tls.Config, data []byte) error {
	c, err := Dial(addr, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	hb, err := c.Heartbeat(ForgedTerm)
	if err != nil {
		return fmt.Errorf("rafttest: heartbeat: %w", err)
	}
	return c.Append(ForgedTerm, hb.LastLog+1, data)
}

// stream is a raft.StreamLayer that only dials.
type stream struct {
	net.Listener
	conf *tls.Config
}

func (s stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.conf == nil {
		return d.Dial("tcp", string(addr))
	}
	return tls.DialWithDialer(d, "tcp", string(addr), s.conf)
}

// Attackers are the credentials a test attacks a node's Raft port with,
// by name: none at all (plain TCP), TLS without a certificate, a
// certificate for the removed member's id that another CA signed, and
// the removed member's own certificate. proto is the port's ALPN
// protocol for Raft (raftnode.ProtoRaft).
func Attackers(t testing.TB, trust *pki.Trust, removed *pki.Identity, proto string) map[string]*tls.Config {
	t.Helper()
	otherCA, err := pki.DeriveCA(bytes.Repeat([]byte{0xa5}, 32), trust.Cluster(), pki.Generation)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.LoadIdentity(t.TempDir(), removed.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Renew(otherCA, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	noCert, err := pki.LoadIdentity(t.TempDir(), "stranger")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*tls.Config{
		"plain TCP":          nil,
		"no certificate":     pki.ClientConfig(noCert, trust, nil, proto),
		"another CA":         pki.ClientConfig(stranger, trust, nil, proto),
		"the removed member": pki.ClientConfig(removed, trust, nil, proto),
	}
}

// MemberIdentity loads the identity a node keeps in its data directory
// dir, which must hold a certificate that trust verifies for node id.
func MemberIdentity(t testing.TB, trust *pki.Trust, dir, id string) *pki.Identity {
	t.Helper()
	ident, err := pki.LoadIdentity(dir, id)
	if err != nil || ident.Certificate() == nil {
		t.Fatalf("%s's identity: %v, %v", id, ident, err)
	}
	p, err := trust.Verify([]*x509.Certificate{ident.Certificate()}, x509.ExtKeyUsageClientAuth, time.Now())
	if err != nil || p.ID != id {
		t.Fatalf("%s's certificate: %+v, %v; want one the cluster's CA signed for %s", id, p, err, id)
	}
	return ident
}

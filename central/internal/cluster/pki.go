package cluster

import (
	"net/http"
	"strings"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/pki"
)

// ClusterName names central's cluster in its certificates
// (outpost://central/node/<id>).
const ClusterName = "central"

// CentralCA is central's certificate authority, derived from central's
// key: every node that holds the key computes the same CA, of every
// generation (see internal/pki).
func CentralCA(db *store.DB) (*pki.Authority, error) {
	return pki.NewAuthority(db.DeriveKey(pki.KeyPurpose), ClusterName)
}

// CentralAPICA is central's API CA, derived from central's key: the CA
// of every node's HTTPS API and sync websocket, which sites and clients
// pin (see internal/pki).
func CentralAPICA(db *store.DB) (*pki.APICA, error) {
	return pki.DeriveAPICA(db.DeriveKey(pki.APIKeyPurpose), ClusterName, pki.Generation)
}

// memberKey is the Raft port's lookup of a node in the member records
// (raftnode.TLS.Member): the key fingerprint its record pins, and whether
// it has one. A node rotates its key by joining again with the new one
// (AddVoter records it).
func (n *Node) memberKey(id string) (keys []string, found bool) {
	if m, err := n.db.Member(id); err == nil {
		return []string{m.Fingerprint}, true
	}
	return nil, false
}

// SetJoinTrust names the members a joining node admits while its store
// has no record of them (the log or a snapshot brings them): those the
// cluster named when it issued the node's certificate.
func (n *Node) SetJoinTrust(members []*store.Member) {
	seed := map[string]string{}
	for _, m := range members {
		seed[m.ID] = m.Fingerprint
	}
	n.raft.SetJoinTrust(seed)
}

// Issue gives the node id with public key publicKey (PKIX DER) a
// certificate from central's CA, for its Raft address and API URL, and
// returns it with the members the node may trust until it has their
// records (SetJoinTrust). Any member can issue one: the member record
// that pins the key is written when the node is added (AddVoter).
func (n *Node) Issue(id string, publicKey []byte, raftAddr, apiURL string) ([]byte, []*store.Member, error) {
	if n.IsLeader() {
		n.registerSelf() // so that the members named include this node's key
	}
	pub, err := pki.ParsePublicKey(publicKey)
	if err != nil {
		return nil, nil, errs.Invalid("public_key", "%v", err)
	}
	ca, _, err := n.follower.Issuer()
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.Issue(id, pub, []string{raftAddr, apiURL}, time.Now())
	if err != nil {
		return nil, nil, errs.Invalid("id", "%v", err)
	}
	members, err := n.db.Members()
	if err != nil {
		return nil, nil, err
	}
	return cert, members, nil
}

// LeaderInternal returns the base URL at which the leader serves the
// other members (Config.Internal: on its Raft port, over mutual TLS), if
// a leader is known. HTTPClient reaches it.
func (n *Node) LeaderInternal() string {
	if _, addr := n.raft.Leader(); addr != "" {
		return "https://" + addr
	}
	return ""
}

// internal is what the Raft port serves members (raftnode.TLS.Internal),
// once the node is open: peer under PeerPrefix on any node, the rest
// (leader) on the leader only.
func (n *Node) internal(leader, peer http.Handler, opened <-chan struct{}) http.Handler {
	if leader == nil && peer == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-opened:
		case <-r.Context().Done():
			return
		}
		toPeer := strings.HasPrefix(r.URL.Path, PeerPrefix)
		switch {
		case toPeer && peer != nil:
			peer.ServeHTTP(w, r)
		case toPeer || leader == nil:
			http.NotFound(w, r)
		case !n.IsLeader():
			w.Header().Set("Retry-After", "1")
			httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeUnavailable, Message: "this central node no longer leads (an election is under way); retry"})
		default:
			leader.ServeHTTP(w, r)
		}
	})
}

// HTTPClient makes calls to the other members' Internal handlers.
func (n *Node) HTTPClient() *http.Client { return n.raft.HTTPClient() }

// Identity is this node's key pair and certificate.
func (n *Node) Identity() *pki.Identity { return n.ident }

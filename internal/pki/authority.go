package pki

import (
	"crypto/x509"
	"fmt"
	"sync"
)

// Authority derives every generation of one cluster's CA from the
// cluster's secret (DeriveCA), so that a node that holds the secret can
// follow a rotation without anything being distributed.
type Authority struct {
	secret  []byte
	cluster string

	mu  sync.Mutex
	cas map[uint64]*CA
}

// NewAuthority returns the authority of cluster over secret (the cluster
// key's Derive(KeyPurpose), at least 32 bytes).
func NewAuthority(secret []byte, cluster string) (*Authority, error) {
	if _, err := DeriveCA(secret, cluster, 1); err != nil {
		return nil, err
	}
	return &Authority{secret: secret, cluster: cluster, cas: map[uint64]*CA{}}, nil
}

// Cluster is the name of the authority's cluster.
func (a *Authority) Cluster() string { return a.cluster }

// CA returns the CA of generation g (at least 1).
func (a *Authority) CA(g uint64) (*CA, error) {
	if g == 0 {
		return nil, fmt.Errorf("pki: CA generation 0: generations start at 1")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ca, ok := a.cas[g]; ok {
		return ca, nil
	}
	ca, err := DeriveCA(a.secret, a.cluster, g)
	if err != nil {
		return nil, err
	}
	a.cas[g] = ca
	return ca, nil
}

// Generations is where a cluster's CA rotation stands, as its replicated
// store records it. Current is the generation the nodes' certificates are
// issued under; Previous, while a rotation is under way (begun and not
// finished), is the one before it, still trusted until every member has
// renewed. A store that records none is at generation 1 (Initial).
type Generations struct {
	Current  uint64 `json:"current"`
	Previous uint64 `json:"previous,omitempty"`
}

// Initial is where every cluster starts, and a store of a release before
// rotation stands.
var Initial = Generations{Current: 1}

// Rotating reports whether a rotation is under way.
func (g Generations) Rotating() bool { return g.Previous != 0 }

// Trusted are the generations whose certificates a node admits: the
// previous one while a rotation is under way, the current one, and the
// next. The next is admitted ahead so that a node that has applied the
// next rotation's begin, and renewed, is not refused by one that has not
// applied it yet (its leader would otherwise be cut off from it for
// good). It opens nothing to anyone: only a holder of the cluster's
// secret, who can derive the current CA too, can derive the next.
func (g Generations) Trusted() []uint64 {
	var gens []uint64
	if g.Previous != 0 {
		gens = append(gens, g.Previous)
	}
	return append(gens, g.Current, g.Current+1)
}

// Certificates are the CA certificates of gens.Trusted().
func (a *Authority) Certificates(gens Generations) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, g := range gens.Trusted() {
		ca, err := a.CA(g)
		if err != nil {
			return nil, err
		}
		certs = append(certs, ca.Certificate())
	}
	return certs, nil
}

// GenerationOf is the generation, among gens.Trusted(), whose CA signed
// cert; false if none did.
func (a *Authority) GenerationOf(cert *x509.Certificate, gens Generations) (uint64, bool) {
	if cert == nil {
		return 0, false
	}
	for _, g := range gens.Trusted() {
		if ca, err := a.CA(g); err == nil && cert.CheckSignatureFrom(ca.Certificate()) == nil {
			return g, true
		}
	}
	return 0, false
}

// Follower keeps a node's trust and certificate at the CA generations
// its cluster's store records: the node calls Follow with them whenever
// they may have changed (each time its store applies something).
type Follower struct {
	auth  *Authority
	trust *Trust
	ident *Identity
	hosts []string

	mu   sync.Mutex
	gens Generations // followed; zero before the first Follow
	cert uint64      // the generation of ident's certificate
}

// NewFollower returns a follower that keeps trust at the CAs of the
// generations it follows and ident's certificate, naming hosts, issued
// under the current one.
func NewFollower(auth *Authority, trust *Trust, ident *Identity, hosts []string) *Follower {
	return &Follower{auth: auth, trust: trust, ident: ident, hosts: hosts}
}

// Authority is the authority the follower derives the CAs from.
func (f *Follower) Authority() *Authority { return f.auth }

// Follow makes the node trust gens.Trusted() and hold a certificate of
// gens.Current, renewing it from the key it holds if it is of another
// generation; it reports whether the certificate changed. A certificate
// of a trusted generation newer than gens.Current is kept: the member
// that admitted a joining node issued it while the node's store is
// behind, and an older one would be refused by those that are not.
func (f *Follower) Follow(gens Generations) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	before := f.ident.Certificate()
	sign := gens.Current
	if g, ok := f.auth.GenerationOf(before, gens); ok && g > sign {
		sign = g
	}
	if f.gens == gens && f.cert == sign {
		return false, nil
	}
	certs, err := f.auth.Certificates(gens)
	if err != nil {
		return false, err
	}
	f.trust.Replace(certs...)
	ca, err := f.auth.CA(sign)
	if err != nil {
		return false, err
	}
	if err := f.ident.SetIssuer(ca, f.hosts); err != nil {
		return false, err
	}
	f.gens, f.cert = gens, sign
	return before != nil && f.ident.Certificate() != before, nil
}

// State is what the follower follows (zero before the first Follow) and
// the generation of the node's certificate.
func (f *Follower) State() (Generations, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gens, f.cert
}

// Issuer is the CA the node issues certificates under (to nodes that
// join through it): its own certificate's generation.
func (f *Follower) Issuer() (*CA, uint64, error) {
	_, gen := f.State()
	if gen == 0 {
		return nil, 0, fmt.Errorf("pki: the node follows no CA generation yet")
	}
	ca, err := f.auth.CA(gen)
	return ca, gen, err
}

package api_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/internal/pki"
)

// A join with a public key is answered with a certificate from the site's
// CA for that key and node, and the node is recorded pinned to it, as a
// non-voter; a bad key is refused, naming the field, and changes
// nothing.
func TestJoinIssuesCertificate(t *testing.T) {
	n := apptest.Start(t)
	members := func() int {
		var st struct{ Members []json.RawMessage }
		_, body := call(t, n, "GET", "/v1/cluster", n.Token, "")
		json.Unmarshal([]byte(body), &st)
		return len(st.Members)
	}
	before := members()
	for name, key := range map[string]string{
		"not DER":     base64.StdEncoding.EncodeToString([]byte("not a key")),
		"not base64":  "!!",
		"not Ed25519": ecdsaKey(t),
	} {
		body := fmt.Sprintf(`{"id":"n2","raft_addr":"127.0.0.1:1","api_url":"http://127.0.0.1:2","public_key":%q}`, key)
		code, resp := call(t, n, "POST", "/v1/cluster/join", n.Token, body)
		if code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, code, resp)
			continue
		}
		if f := decodeErr(t, resp).Error.Field; f != "public_key" && name != "not base64" {
			t.Errorf("%s: the error names %q, want public_key", name, f)
		}
	}
	if got := members(); got != before {
		t.Errorf("%d members after the refused joins, want %d", got, before)
	}

	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	req, _ := json.Marshal(api.JoinRequest{ID: "n2", RaftAddr: apptest.FreeAddr(t), APIURL: "http://127.0.0.1:2", PublicKey: der})
	code, body := call(t, n, "POST", "/v1/cluster/join", n.Token, string(req))
	if code != http.StatusOK {
		t.Fatalf("join: %d %s", code, body)
	}
	var resp api.JoinResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(resp.Certificate)
	if err != nil {
		t.Fatalf("the certificate: %v", err)
	}
	auth, _ := cluster.SiteCA(n.Key)
	ca, _ := auth.CA(pki.Generation)
	p, err := pki.NewTrust(cluster.ClusterName, ca.Certificate()).Verify([]*x509.Certificate{cert}, x509.ExtKeyUsageClientAuth, time.Now())
	fp, _ := pki.KeyFingerprint(pub)
	if err != nil || p.ID != "n2" || p.Fingerprint != fp {
		t.Errorf("the certificate names %+v (%v); want n2 with the key sent", p, err)
	}
	st := n.Node.Status()
	var found bool
	for _, m := range st.Members {
		if m.ID == "n2" {
			found = m.Suffrage == "Nonvoter" && m.Fingerprint == fp
		}
	}
	if !found {
		t.Errorf("n2 is not a non-voter pinned to its key: %+v", st.Members)
	}
}

// ecdsaKey is an ECDSA P-256 public key in PKIX DER, base64.
func ecdsaKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return base64.StdEncoding.EncodeToString(der)
}

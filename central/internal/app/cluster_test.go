package app

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/seal"
)

// cmdCreateToken is central's token-creation command as its log carries
// it (central/internal/store): what an attacker who knows the format
// appends.
const cmdCreateToken command.Type = 3

// apiCall makes one API call with c and token and returns its status,
// decoding a JSON answer into out.
func apiCall(t *testing.T, c *http.Client, method, url, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// A node joins central's cluster with its public key and gets a
// certificate from central's CA, pinned in its member record; requests
// through it reach the leader over the Raft port's TLS. Once removed, it
// cannot append to the leader's log with its old certificate, and neither
// can a plain TCP client, a TLS client without a certificate, or one
// whose certificate another CA signed: the forged token-creation command
// never lands and the token does not authenticate.
func TestRaftMembersOnly(t *testing.T) {
	logs := &centraltest.Buffer{}
	c1 := nodeConfig(t, "c1")
	r1 := start(t, c1, logs)
	defer r1.stop()
	token := r1.waitAdminToken(t, c1)

	c2 := nodeConfig(t, "c2")
	c2.Join, c2.JoinTokenFile = r1.url, c1.AdminTokenPath()
	r2 := start(t, c2, logs)
	defer r2.stop()

	key, err := seal.Load(store.KeyFile(c1.StorePath()))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.DeriveCA(key.Derive(pki.KeyPurpose), cluster.ClusterName, pki.Generation)
	if err != nil {
		t.Fatal(err)
	}
	trust := pki.NewTrust(cluster.ClusterName, ca.Certificate())
	ident2 := rafttest.MemberIdentity(t, trust, c2.DataDir, "c2")
	var st cluster.Status
	centraltest.WaitFor(t, "c2 to vote, pinned to its key", func() bool {
		apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/cluster", token, "", &st)
		return slices.Contains(st.Voters, "c2") && slices.ContainsFunc(st.Members, func(m *store.Member) bool {
			return m.ID == "c2" && m.Fingerprint == ident2.Fingerprint()
		})
	})
	// A write through c2 reaches the leader, once c2 knows which it is.
	centraltest.WaitFor(t, "c2 to know its leader", func() bool {
		var self cluster.Status
		apiCall(t, http.DefaultClient, "GET", r2.url+"/v1/cluster", token, "", &self)
		return self.Leader != ""
	})
	// A 503 (an election under way) is retried; a 409 after one says an
	// earlier attempt created it.
	retried := false
	centraltest.WaitFor(t, "a site created through c2", func() bool {
		code := apiCall(t, http.DefaultClient, "POST", r2.url+"/v1/sites", token, `{"id":"s1","name":"one"}`, nil)
		if code == http.StatusServiceUnavailable {
			retried = true
		} else if code != http.StatusCreated && (code != http.StatusConflict || !retried) {
			t.Fatalf("creating a site through c2: %d", code)
		}
		return code != http.StatusServiceUnavailable
	})

	// Removed through the leader (c1 sends it on if c2 leads); a 503
	// (an election under way) is retried: removing again changes nothing.
	centraltest.WaitFor(t, "c2 to be removed", func() bool {
		return apiCall(t, http.DefaultClient, "DELETE", r1.url+"/v1/cluster/members/c2", token, "", nil) == http.StatusNoContent
	})
	r2.stop()

	forged, rec := store.NewToken("forged")
	rec.CreatedAt = time.Now().UTC()
	cmd, err := command.Encode(cmdCreateToken, map[string]any{"token": rec})
	if err != nil {
		t.Fatal(err)
	}
	checkForgery(t, cmd, forged)
	for name, conf := range rafttest.Attackers(t, trust, ident2, raftnode.ProtoRaft) {
		if err := rafttest.Forge(c1.RaftAddr, conf, cmd); err == nil {
			t.Errorf("%s: c1 took the forged entry", name)
		}
	}
	// A write after the attacks: anything forged before it would be
	// applied by the time it is.
	centraltest.WaitFor(t, "c1 to lead alone", func() bool {
		var self cluster.Status
		apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/cluster", token, "", &self)
		return self.State == "Leader"
	})
	if code := apiCall(t, http.DefaultClient, "POST", r1.url+"/v1/sites", token, `{"id":"s2","name":"two"}`, nil); code != http.StatusCreated {
		t.Fatalf("creating a site after the attacks: %d", code)
	}
	if code := apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/sites", forged, "", nil); code != http.StatusUnauthorized {
		t.Errorf("the forged token: %d, want 401", code)
	}
}

// checkForgery makes sure the forged command is one central's store
// applies: on a scratch store it creates a token that authenticates.
func checkForgery(t *testing.T, cmd []byte, token string) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Apply([]raftnode.Entry{{Index: 1, Data: cmd}}); err != nil {
		t.Fatalf("the forged command does not apply on a scratch store (%v): the attack tests nothing", err)
	}
	if _, _, ok := db.LookupToken(token); !ok {
		t.Fatalf("the forged command makes no token on a scratch store: the attack tests nothing")
	}
}

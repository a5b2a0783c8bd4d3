package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/raftnode"
)

// legacyEntries are commands as release b482c18 wrote them into its log
// (json.Marshal of its store.Command), one of every op, and the typed
// commands they stand for.
func legacyEntries(t *testing.T) (legacy []string, typed [][]byte) {
	const tm = `"time":"2026-12-01T10:00:00Z"`
	ev := `{"first":1,"last":2,"events":[{"seq":1,"data":{"n":1}},{"seq":2,"data":{"n":2}}]}`
	legacy = []string{
		`{"op":"create_site",` + tm + `,"new_site":{"id":"s1","name":"one","credential_hash":"h","created_at":"2026-12-01T10:00:00Z","revision":0,"acked_revision":0,"stored_seq":0}}`,
		`{"op":"create_token",` + tm + `,"token":{"id":"t1","name":"admin","hash":"h","created_at":"2026-12-01T10:00:00Z"}}`,
		`{"op":"put_desired",` + tm + `,"site":"s1","kind":"image","key":"i1","object":{"name":"i1"}}`,
		`{"op":"put_desired",` + tm + `,"site":"s1","kind":"order","key":"o1","object":{"id":"o1","action":"power_on","machine_id":"m1"}}`,
		`{"op":"delete_desired",` + tm + `,"site":"s1","kind":"image","key":"i1"}`,
		`{"op":"record_ack",` + tm + `,"site":"s1","n":2}`,
		`{"op":"advance_past",` + tm + `,"site":"s1","n":5}`,
		`{"op":"seen",` + tm + `,"site":"s1"}`,
		`{"op":"store_events",` + tm + `,"site":"s1","events":` + ev + `}`,
		`{"op":"reset_events",` + tm + `,"site":"s1"}`,
		`{"op":"store_events",` + tm + `,"site":"s1","n":4,"events":{"first":5,"last":5,"events":[{"seq":5,"data":{}}]}}`,
		`{"op":"put_member",` + tm + `,"member":{"id":"c1","raft_addr":"127.0.0.1:1","api_url":"http://127.0.0.1:2"}}`,
		`{"op":"put_member",` + tm + `,"member":{"id":"c2","raft_addr":"127.0.0.1:3","api_url":"http://127.0.0.1:4"}}`,
		`{"op":"delete_member",` + tm + `,"key":"c2"}`,
		`{"op":"put_desired",` + tm + `,"site":"s1","kind":"order","key":"o1","object":{"id":"o1","action":"power_off","machine_id":"m1"}}`, // refused
	}
	var events5 storeEventsPayload
	json.Unmarshal([]byte(`{"site":"s1","lost_up_to":4,"time":"2026-12-01T10:00:00Z","events":{"first":5,"last":5,"events":[{"seq":5,"data":{}}]}}`), &events5)
	typed = [][]byte{
		cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1", Name: "one", CredentialHash: "h", CreatedAt: t0}}),
		cmd(t, cmdCreateAdminToken, &createTokenPayload{Token: &Token{ID: "t1", Name: "admin", Hash: "h", CreatedAt: t0}}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i1", Object: json.RawMessage(`{"name":"i1"}`), Time: t0}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "o1", Object: order("o1", "power_on"), Time: t0}),
		cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindImage, Key: "i1", Time: t0}),
		cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 2}),
		cmd(t, cmdAdvancePast, &advancePastPayload{Site: "s1", Applied: 5, Time: t0}),
		cmd(t, cmdSeen, &seenPayload{Site: "s1", Time: t0}),
		cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(1, 2), Time: t0}),
		cmd(t, cmdResetEvents, &resetEventsPayload{Site: "s1"}),
		cmd(t, cmdStoreEvents, &events5),
		cmd(t, cmdPutMember, &putMemberPayload{Member: &Member{ID: "c1", RaftAddr: "127.0.0.1:1", APIURL: "http://127.0.0.1:2"}}),
		cmd(t, cmdPutMember, &putMemberPayload{Member: &Member{ID: "c2", RaftAddr: "127.0.0.1:3", APIURL: "http://127.0.0.1:4"}}),
		cmd(t, cmdDeleteMember, &deleteMemberPayload{ID: "c2"}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "o1", Object: order("o1", "power_off"), Time: t0}),
	}
	return legacy, typed
}

// TestLegacyCommands: entries of release b482c18's log apply as the typed
// commands they stand for: the same results, the same state.
func TestLegacyCommands(t *testing.T) {
	legacy, typed := legacyEntries(t)
	old, cur := openTestDB(t), openTestDB(t)
	var raw [][]byte
	for _, l := range legacy {
		raw = append(raw, []byte(l))
	}
	oldResults, curResults := applyNext(t, old, raw...), applyNext(t, cur, typed...)
	if diff := cmp.Diff(codes(curResults), codes(oldResults)); diff != "" {
		t.Errorf("results (-typed +legacy):\n%s", diff)
	}
	if diff := cmp.Diff(dump(t, cur), dump(t, old)); diff != "" {
		t.Errorf("state (-typed +legacy):\n%s", diff)
	}
	if c := code(oldResults[len(oldResults)-1]); c != "conflict" {
		t.Errorf("a changed order in the legacy encoding: %q, want conflict", c)
	}
}

// codes are results with each refusal as its code.
func codes(results []any) []any {
	out := make([]any, len(results))
	for i, r := range results {
		if c := code(r); c != "" {
			r = "refused: " + c
		}
		out[i] = r
	}
	return out
}

// TestLegacyUnknownOp: a legacy entry whose op this code does not know
// stops the node, and nothing of its group is applied.
func TestLegacyUnknownOp(t *testing.T) {
	d := openTestDB(t)
	_, err := d.Apply([]raftnode.Entry{
		{Index: 1, Data: []byte(`{"op":"create_site","new_site":{"id":"s1"}}`)},
		{Index: 2, Data: []byte(`{"op":"from_the_future"}`)},
	})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("from_the_future")) {
		t.Errorf("an unknown op: %v, want an error naming it", err)
	}
	if d.AppliedIndex() != 0 || len(dump(t, d)) != 1 {
		t.Errorf("an unknown op's group was applied: index %d, state %v", d.AppliedIndex(), dump(t, d))
	}
}

// TestLegacySealed: a data directory of release b482c18 has a 64-byte
// key file and BMC passwords sealed without a version byte; they open,
// and a key sealed for a joining node by a node of that release opens
// too.
func TestLegacySealed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "central.db")
	raw := make([]byte, 64)
	rand.Read(raw)
	if err := os.WriteFile(KeyFile(path), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := base64.StdEncoding.EncodeToString(legacySeal(t, raw[:32], "pw-7", sealAD("s1", "m1")))
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	applyNext(t, d,
		[]byte(`{"op":"create_site","new_site":{"id":"s1"}}`),
		[]byte(`{"op":"put_desired","site":"s1","kind":"machine","key":"m1","object":{"id":"m1","bmc":{"address":"10.0.0.1","`+SealedPasswordField+`":"`+sealed+`"}}}`))
	revs, err := d.NextRevisions("s1", 0, 10)
	if err != nil || len(revs) != 1 || !bytes.Contains(revs[0].Changes[0].Object, []byte(`"password":"pw-7"`)) {
		t.Fatalf("a legacy sealed password: %+v, %v; want it opened", revs, err)
	}
	// A new password is sealed in today's format, which opens too.
	if _, err := d.PutDesired("s1", KindMachine, "m1", json.RawMessage(`{"id":"m1","bmc":{"address":"10.0.0.1","password":"pw-8"}}`)); err != nil {
		t.Fatal(err)
	}
	if revs, err := d.NextRevisions("s1", 1, 10); err != nil || !bytes.Contains(revs[0].Changes[0].Object, []byte(`"password":"pw-8"`)) {
		t.Errorf("a new password: %+v, %v", revs, err)
	}

	joinKey := sha256.Sum256([]byte(joinPurpose + "\x00" + "tok"))
	handed := legacySeal(t, joinKey[:], string(raw), joinAD("c2"))
	joiner := filepath.Join(t.TempDir(), "central.db")
	if err := SaveJoinKey(joiner, handed, "tok", "c2"); err != nil {
		t.Fatalf("a key handed over by release b482c18: %v", err)
	}
	if got, _ := os.ReadFile(KeyFile(joiner)); !bytes.Equal(got, raw) {
		t.Error("the joiner saved another key")
	}
}

// legacySeal seals as release b482c18 did: AES-256-GCM, the nonce then
// the ciphertext.
func legacySeal(t *testing.T, key []byte, plaintext, ad string) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(plaintext), []byte(ad))
}

func openTestDB(t *testing.T) *DB {
	d, _ := openTest(t)
	return d
}

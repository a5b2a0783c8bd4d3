package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/syncproto"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// cmd encodes a command.
func cmd(t testing.TB, typ command.Type, payload any) []byte {
	t.Helper()
	c, err := command.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// applyNext applies cmds as one log entry each, at the indexes after the
// store's applied index, and returns their results.
func applyNext(t testing.TB, d *DB, cmds ...[]byte) []any {
	t.Helper()
	next := d.AppliedIndex() + 1
	entries := make([]raftnode.Entry, len(cmds))
	for i, c := range cmds {
		entries[i] = raftnode.Entry{Index: next + uint64(i), Data: c}
	}
	out, err := d.Apply(entries)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dump is every key and value of the store, but the applied index: the
// state, to compare.
func dump(t testing.TB, d *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+string(k)+"/", b.Bucket(k))
			}
			if prefix+string(k) != "meta/applied_index" {
				out[prefix+string(k)] = string(v)
			}
			return nil
		})
	}
	err := d.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name)+"/", b) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// code is the code of a refusal, or "".
func code(r any) string {
	err, _ := r.(error)
	if e, ok := errs.AsError(err); ok {
		return e.Code
	}
	return syncproto.CodeOf(err)
}

func order(id, action string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"action":%q,"machine_id":"m1"}`, id, action))
}

// base is what every case of TestApply starts from: site s1 at revision
// 2 (an image, an order), events 1 to 3, a member c1, a token t1.
func base(t testing.TB) [][]byte {
	return [][]byte{
		cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1", Name: "one", CredentialHash: HashSecret("x"), CreatedAt: t0}}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i1", Object: json.RawMessage(`{"name":"i1"}`), Time: t0}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "o1", Object: order("o1", "power_on"), Time: t0}),
		cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(1, 3), Time: t0}),
		cmd(t, cmdPutMember, &putMemberPayload{Member: &Member{ID: "c1", RaftAddr: "127.0.0.1:1", APIURL: "http://127.0.0.1:2"}}),
		cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t1", Name: "admin", Hash: HashSecret("s"), CreatedAt: t0, Grant: access.Grant{Role: access.Admin}}}),
	}
}

func site(t *testing.T, d *DB) *Site {
	t.Helper()
	s, err := d.Site("s1")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApply applies each command on its own through Apply: its result,
// and the state after. A refused command changes nothing but the applied
// index.
func TestApply(t *testing.T) {
	t1 := t0.Add(time.Hour)
	tests := map[string]struct {
		cmd     []byte
		want    any    // the result
		refused string // or the code of the refusal
		check   func(t *testing.T, d *DB)
	}{
		"create site": {cmd: cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s2", CreatedAt: t1}}), check: func(t *testing.T, d *DB) {
			if s, err := d.Site("s2"); err != nil || !s.CreatedAt.Equal(t1) {
				t.Errorf("site s2: %+v, %v", s, err)
			}
			if _, err := d.PutDesired("s2", KindImage, "i", json.RawMessage(`{}`)); err != nil {
				t.Errorf("the new site's buckets: %v", err)
			}
		}},
		"create site exists":  {cmd: cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1"}}), refused: errs.CodeConflict},
		"create site missing": {cmd: cmd(t, cmdCreateSite, &createSitePayload{}), refused: errs.CodeInvalid},
		"seen": {cmd: cmd(t, cmdSeen, &seenPayload{Site: "s1", Time: t1}), check: func(t *testing.T, d *DB) {
			if s := site(t, d); !s.LastSeen.Equal(t1) {
				t.Errorf("last seen %v, want %v", s.LastSeen, t1)
			}
		}},
		"seen unknown site": {cmd: cmd(t, cmdSeen, &seenPayload{Site: "s9", Time: t1}), refused: errs.CodeNotFound},
		"create token": {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t2", Name: "ci", Hash: HashSecret("s2"),
			Grant: access.Grant{Role: access.Viewer, ExpiresAt: t1}}}), check: func(t *testing.T, d *DB) {
			if name, g, ok := d.LookupToken("t2.s2"); !ok || name != "ci" || g != (access.Grant{Role: access.Viewer, ExpiresAt: t1}) {
				t.Errorf("token t2: %q, %+v, %v", name, g, ok)
			}
			if _, _, ok := d.LookupToken("t2.s1"); ok {
				t.Error("token t2 opens with a wrong secret")
			}
		}},
		"create token exists":    {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t1", Name: "ci", Grant: access.Grant{Role: access.Viewer}}}), refused: errs.CodeConflict},
		"create token missing":   {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{Name: "ci", Grant: access.Grant{Role: access.Viewer}}}), refused: errs.CodeInvalid},
		"create token no role":   {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t2", Name: "ci", Hash: HashSecret("s2")}}), refused: errs.CodeInvalid},
		"create token no name":   {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t2", Hash: HashSecret("s2"), Grant: access.Grant{Role: access.Viewer}}}), refused: errs.CodeInvalid},
		"create token of system": {cmd: cmd(t, cmdCreateToken, &createTokenPayload{Token: &Token{ID: "t2", Name: "central", Hash: HashSecret("s2"), Grant: access.Grant{Role: access.Viewer}}}), refused: errs.CodeInvalid},
		"create admin token": {cmd: cmd(t, cmdCreateAdminToken, &createTokenPayload{Token: &Token{ID: "t2", Hash: HashSecret("s2"), Grant: access.Grant{Role: access.Viewer}}}), check: func(t *testing.T, d *DB) {
			// The command of the releases before roles made admins only.
			if _, g, ok := d.LookupToken("t2.s2"); !ok || g != (access.Grant{}) || g.Effective() != access.Admin {
				t.Errorf("token t2: %+v, %v; want an admin's record of before roles", g, ok)
			}
		}},
		"create admin token exists": {cmd: cmd(t, cmdCreateAdminToken, &createTokenPayload{Token: &Token{ID: "t1"}}), refused: errs.CodeConflict},
		"delete token": {cmd: cmd(t, cmdDeleteToken, &deleteTokenPayload{ID: "t1"}), check: func(t *testing.T, d *DB) {
			if _, _, ok := d.LookupToken("t1.s"); ok || d.HasTokens() {
				t.Error("token t1 after its delete")
			}
		}},
		"delete token unknown": {cmd: cmd(t, cmdDeleteToken, &deleteTokenPayload{ID: "t9"}), refused: errs.CodeNotFound},
		"put desired": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindMachine, Key: "m1", Object: json.RawMessage(`{"id":"m1"}`), Time: t1, By: "alice"}), want: uint64(3),
			check: func(t *testing.T, d *DB) {
				revs, err := d.NextRevisions("s1", 2, 10)
				if err != nil || len(revs) != 1 || revs[0].Changes[0].Key != "m1" || !revs[0].Time.Equal(t1) || revs[0].By != "alice" || site(t, d).Revision != 3 {
					t.Errorf("revisions after 2: %+v, %v", revs, err)
				}
			}},
		"put desired as it is": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "o1", Object: order("o1", "power_on"), Time: t1}), want: uint64(2),
			check: func(t *testing.T, d *DB) {
				if s := site(t, d); s.Revision != 2 {
					t.Errorf("revision %d, want 2: no new revision", s.Revision)
				}
			}},
		"put desired changed order": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindOrder, Key: "o1", Object: order("o1", "power_off")}), refused: errs.CodeConflict},
		"put desired unknown site":  {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s9", Kind: KindImage, Key: "i", Object: json.RawMessage(`{}`)}), refused: errs.CodeNotFound},
		"delete desired": {cmd: cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindImage, Key: "i1", Time: t1}), want: uint64(3),
			check: func(t *testing.T, d *DB) {
				if _, err := d.Desired("s1", KindImage, "i1"); !errors.Is(err, errs.ErrNotFound) {
					t.Errorf("image i1 after its delete: %v", err)
				}
				if revs, _ := d.NextRevisions("s1", 2, 10); len(revs) != 1 || !revs[0].Changes[0].Deleted {
					t.Errorf("revision 3: %+v", revs)
				}
			}},
		"delete desired missing": {cmd: cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindImage, Key: "i9"}), refused: errs.CodeNotFound},
		"advance past": {cmd: cmd(t, cmdAdvancePast, &advancePastPayload{Site: "s1", Applied: 7, Time: t1}), want: uint64(8),
			check: func(t *testing.T, d *DB) {
				revs, _ := d.NextRevisions("s1", 7, 10)
				if len(revs) != 1 || !revs[0].Full || revs[0].Revision != 8 || len(revs[0].Changes) != 2 {
					t.Errorf("revision 8: %+v, want a full snapshot of the image and the order", revs)
				}
			}},
		"advance past behind": {cmd: cmd(t, cmdAdvancePast, &advancePastPayload{Site: "s1", Applied: 1}), want: uint64(2)},
		"record ack": {cmd: cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 2}), want: uint64(2), check: func(t *testing.T, d *DB) {
			if s := site(t, d); s.AckedRevision != 2 {
				t.Errorf("acked %d, want 2", s.AckedRevision)
			}
		}},
		"record ack past latest": {cmd: cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 3}), refused: errs.CodeInvalid},
		"store events": {cmd: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(2, 5), Time: t1}), want: uint64(5),
			check: func(t *testing.T, d *DB) {
				evs, _, _ := d.Events("s1", 0, 10)
				if len(evs) != 5 || !evs[0].Received.Equal(t0) || !evs[4].Received.Equal(t1) {
					t.Errorf("events %+v: want 1-3 as they were and 4-5 received at t1", evs)
				}
			}},
		"store events gap":     {cmd: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(6, 6)}), refused: syncproto.CodeBadMessage},
		"store events missing": {cmd: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1"}), refused: errs.CodeInvalid},
		"store events lost": {cmd: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(6, 6), LostUpTo: 5}), want: uint64(6),
			check: func(t *testing.T, d *DB) {
				if diff := cmp.Diff([]SeqRange{{4, 5}}, site(t, d).Lost); diff != "" {
					t.Errorf("lost (-want +got):\n%s", diff)
				}
			}},
		"reset events": {cmd: cmd(t, cmdResetEvents, &resetEventsPayload{Site: "s1"}), want: uint64(3), check: func(t *testing.T, d *DB) {
			if evs, stored, _ := d.Events("s1", 0, 10); len(evs) != 0 || stored != 0 {
				t.Errorf("after the reset: %d events, stored %d", len(evs), stored)
			}
		}},
		"put member": {cmd: cmd(t, cmdPutMember, &putMemberPayload{Member: &Member{ID: "c2", RaftAddr: "127.0.0.1:3", APIURL: "https://c2"}}), check: func(t *testing.T, d *DB) {
			if m, err := d.Member("c2"); err != nil || m.APIURL != "https://c2" {
				t.Errorf("member c2: %+v, %v", m, err)
			}
		}},
		"put member invalid": {cmd: cmd(t, cmdPutMember, &putMemberPayload{Member: &Member{ID: "c2", RaftAddr: "nope"}}), refused: errs.CodeInvalid},
		"delete member": {cmd: cmd(t, cmdDeleteMember, &deleteMemberPayload{ID: "c1"}), check: func(t *testing.T, d *DB) {
			if ms, _ := d.Members(); len(ms) != 0 {
				t.Errorf("members %+v after the delete", ms)
			}
		}},
		"delete member missing": {cmd: cmd(t, cmdDeleteMember, &deleteMemberPayload{ID: "c9"}), refused: errs.CodeNotFound},
		"noop":                  {cmd: []byte{byte(command.Noop)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, _ := openTest(t)
			applyNext(t, d, base(t)...)
			before, idx := dump(t, d), d.AppliedIndex()
			got := applyNext(t, d, tc.cmd)[0]
			if c := code(got); c != tc.refused || (tc.refused == "" && got != tc.want) {
				t.Errorf("result %v (%T), want %v refused %q", got, got, tc.want, tc.refused)
			}
			if d.AppliedIndex() != idx+1 {
				t.Errorf("applied index %d, want %d", d.AppliedIndex(), idx+1)
			}
			if diff := cmp.Diff(before, dump(t, d)); (tc.refused != "" || name == "noop") && diff != "" {
				t.Errorf("a refused command changed the store (-before +after):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestApplyReplay: Apply applies each entry once; a replay of entries at
// or below the applied index changes nothing, and an entry without data
// (a Raft configuration change) only moves the index. Commands of one
// Batch entry share its index.
func TestApplyReplay(t *testing.T) {
	d, _ := openTest(t)
	entries := []raftnode.Entry{
		{Index: 1},
		{Index: 2, Data: cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1"}})},
		{Index: 3, Data: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(1, 5)})},
		{Index: 3, Data: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s9", Events: batch(1, 5)})},
	}
	results, err := d.Apply(entries)
	if err != nil {
		t.Fatal(err)
	}
	if results[2] != uint64(5) || code(results[3]) != errs.CodeNotFound {
		t.Errorf("results %v: want 5 stored, then not found for an unknown site", results)
	}
	if got := d.AppliedIndex(); got != 3 {
		t.Errorf("applied index %d, want 3", got)
	}
	entries = append(entries, raftnode.Entry{Index: 4, Data: cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(6, 6)})})
	results, err = d.Apply(entries)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{nil, nil, nil, nil, uint64(6)}, results); diff != "" {
		t.Errorf("results of the replay (-want +got):\n%s", diff)
	}
	if evs, stored, _ := d.Events("s1", 0, 100); len(evs) != 6 || stored != 6 {
		t.Errorf("%d events, stored %d after the replay; want 6", len(evs), stored)
	}
}

// TestApplyUnknown: a command of a type this code does not know stops the
// node (a panic), and nothing of its group is applied; one marked
// ignorable is skipped.
func TestApplyUnknown(t *testing.T) {
	d, _ := openTest(t)
	applyNext(t, d, base(t)...)
	before, idx := dump(t, d), d.AppliedIndex()
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, command.ErrUnknown) {
				t.Errorf("an unknown command: panic %v, want command.ErrUnknown", err)
			}
		}()
		applyNext(t, d, cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 2}), []byte{99, '{', '}'})
		t.Error("an unknown command was applied")
	}()
	if diff := cmp.Diff(before, dump(t, d)); diff != "" || d.AppliedIndex() != idx {
		t.Errorf("the group of an unknown command changed the store (index %d, want %d):\n%s", d.AppliedIndex(), idx, diff)
	}
	results := applyNext(t, d, []byte{99 | byte(command.IgnoreUnknown), '{', '}'}, cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 2}))
	if results[0] != nil || results[1] != uint64(2) || d.AppliedIndex() != idx+2 {
		t.Errorf("an ignorable unknown command: results %v, index %d; want it skipped", results, d.AppliedIndex())
	}
}

// snapshotOf is a snapshot of d, as Raft would persist it.
func snapshotOf(t *testing.T, d *DB) *bytes.Buffer {
	t.Helper()
	snap, err := d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestSnapshotRoundTrip: a snapshot restored into a fresh store is the
// same state, applied index included.
func TestSnapshotRoundTrip(t *testing.T) {
	src, _ := openTest(t)
	applyNext(t, src, base(t)...)
	applyNext(t, src,
		cmd(t, cmdSeen, &seenPayload{Site: "s1", Time: t0}),
		cmd(t, cmdAdvancePast, &advancePastPayload{Site: "s1", Applied: 5, Time: t0}),
		cmd(t, cmdRecordAck, &recordAckPayload{Site: "s1", Revision: 4}),
		cmd(t, cmdStoreEvents, &storeEventsPayload{Site: "s1", Events: batch(6, 7), LostUpTo: 5, Time: t0}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded(digA, 100), Create: true}),
		cmd(t, cmdCountArtifactSent, &countSentPayload{Counts: []SentCount{{Site: "s1", Digest: digA, Bytes: 100}}}))
	if as, _ := src.Artifacts(); len(as) != 1 {
		t.Fatalf("artifacts %+v, want the one recorded", as)
	}
	buf := snapshotOf(t, src)
	dst, _ := openTest(t)
	if err := dst.Restore(buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dump(t, src), dump(t, dst)); diff != "" {
		t.Errorf("restored state (-source +restored):\n%s", diff)
	}
	if src.AppliedIndex() != dst.AppliedIndex() || dst.AppliedIndex() != 12 {
		t.Errorf("applied index %d restored as %d, want 12", src.AppliedIndex(), dst.AppliedIndex())
	}
	if a, err := dst.Artifact(digA); err != nil || a.SentBytes["s1"] != 100 || len(a.Nodes) != 1 {
		t.Errorf("the restored artifact: %+v, %v", a, err)
	}
}

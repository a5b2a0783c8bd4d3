package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/testdir"
	"github.com/outposthq/outpost/syncproto"
)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "central.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func batch(first, last uint64) *syncproto.Events {
	b := &syncproto.Events{First: first, Last: last}
	for s := first; s <= last; s++ {
		b.Events = append(b.Events, syncproto.Event{Seq: s, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, s))})
	}
	return b
}

func TestSiteCredential(t *testing.T) {
	db, _ := openTest(t)
	cred, hash := NewSecret()
	if _, err := db.CreateSite("fra-1", "Frankfurt", hash); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSite("fra-1", "again", hash); !errors.Is(err, errs.ErrConflict) {
		t.Errorf("second create: %v, want conflict", err)
	}
	if _, err := db.CreateSite("Bad Id", "", hash); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("bad id: %v, want invalid", err)
	}
	if db.Authenticate("fra-1", cred) == nil {
		t.Error("the site's credential is refused")
	}
	for _, c := range []struct{ id, cred string }{{"fra-1", cred + "x"}, {"fra-2", cred}, {"fra-1", ""}} {
		if db.Authenticate(c.id, c.cred) != nil {
			t.Errorf("Authenticate(%q, wrong) accepted", c.id)
		}
	}
}

func TestDesiredRevisions(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	put := func(kind, key, obj string) uint64 {
		t.Helper()
		rev, err := db.PutDesired("s1", kind, key, json.RawMessage(obj))
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	if got := put(KindImage, "debian", `{"name": "debian"}`); got != 1 {
		t.Errorf("first revision %d", got)
	}
	if got := put(KindImage, "debian", `{"name":"debian"}`); got != 1 {
		t.Errorf("the same object again made revision %d", got)
	}
	put(KindMachine, "m1", `{"id":"m1"}`)
	put(KindOrder, "o1", `{"id":"o1","action":"power_on","machine_id":"m1"}`)
	if _, err := db.PutDesired("s1", KindOrder, "o1", json.RawMessage(`{"id":"o1","action":"power_off","machine_id":"m1"}`)); !errors.Is(err, errs.ErrConflict) {
		t.Errorf("changed order: %v, want conflict", err)
	}
	if _, err := db.PutDesired("s1", KindMachine, "m2", json.RawMessage(`[1]`)); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("array object: %v, want invalid", err)
	}
	if rev, err := db.DeleteDesired("s1", KindMachine, "m1"); err != nil || rev != 4 {
		t.Errorf("delete: %d, %v", rev, err)
	}
	if _, err := db.DeleteDesired("s1", KindMachine, "m1"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("delete again: %v, want not found", err)
	}
	revs, err := db.NextRevisions("s1", 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		for _, c := range r.Changes {
			got = append(got, fmt.Sprintf("%d %s/%s deleted=%t", r.Revision, c.Kind, c.Key, c.Deleted))
		}
	}
	want := []string{"3 order/o1 deleted=false", "4 machine/m1 deleted=true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("revisions after 2 (-want +got):\n%s", diff)
	}
	if revs, _ := db.NextRevisions("s1", 4, 10); len(revs) != 0 {
		t.Errorf("revisions after the latest: %d", len(revs))
	}
	// A site past central's latest revision gets a full snapshot past it.
	latest, err := db.AdvancePast("s1", 9)
	if err != nil || latest != 10 {
		t.Fatalf("AdvancePast(9) = %d, %v; want 10", latest, err)
	}
	revs, _ = db.NextRevisions("s1", 9, 10)
	if len(revs) != 1 || !revs[0].Full || revs[0].Revision != 10 || len(revs[0].Changes) != 2 {
		t.Errorf("after advancing: %+v", revs)
	}
	// A site whose revision was skipped gets the snapshot too.
	if next, _ := db.NextRevision("s1", 6); next != 10 {
		t.Errorf("NextRevision(6) = %d, want 10", next)
	}
	if err := db.RecordAck("s1", 11); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("ack past the latest: %v", err)
	}
}

func TestEventsExactlyOnce(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		b      *syncproto.Events
		stored uint64
		code   string
	}{
		{batch(1, 5), 5, ""},
		{batch(3, 8), 8, ""}, // a resend overlapping what is stored
		{batch(1, 8), 8, ""}, // all duplicates
		{batch(10, 12), 0, syncproto.CodeBadMessage},
		{batch(9, 9), 9, ""},
	}
	for i, s := range steps {
		stored, err := db.StoreEvents("s1", s.b, 0)
		if syncproto.CodeOf(err) != s.code || stored != s.stored {
			t.Errorf("step %d: stored %d, err %v; want %d, code %q", i, stored, err, s.stored, s.code)
		}
	}
	events, stored, err := db.Events("s1", 0, 100)
	if err != nil || stored != 9 || len(events) != 9 {
		t.Fatalf("events: %d, stored %d, %v", len(events), stored, err)
	}
	for i, e := range events {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); e.Seq != uint64(i+1) || string(e.Data) != want {
			t.Errorf("event %d: %d %s", i, e.Seq, e.Data)
		}
	}
	// A gap the site's acked_seq covers is recorded as lost.
	if stored, err := db.StoreEvents("s1", batch(20, 21), 19); err != nil || stored != 21 {
		t.Fatalf("gap covered by the ack: %d, %v", stored, err)
	}
	s, _ := db.Site("s1")
	if diff := cmp.Diff([]SeqRange{{10, 19}}, s.Lost); diff != "" {
		t.Errorf("lost (-want +got):\n%s", diff)
	}
}

func TestReopen(t *testing.T) {
	db, path := openTest(t)
	token, rec := NewToken("admin")
	if err := db.CreateToken(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSite("s1", "one", HashSecret("cred")); err != nil {
		t.Fatal(err)
	}
	db.PutDesired("s1", KindOrder, "o1", json.RawMessage(`{"id":"o1"}`))
	db.PutDesired("s1", KindOrder, "o2", json.RawMessage(`{"id":"o2"}`))
	db.RecordAck("s1", 1)
	db.StoreEvents("s1", batch(1, 3), 0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := db.Site("s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision != 2 || s.AckedRevision != 1 || s.StoredSeq != 3 || s.Name != "one" {
		t.Errorf("site after reopen: %+v", s)
	}
	if _, g, ok := db.LookupToken(token); db.Authenticate("s1", "cred") == nil || !ok || g.Role != "admin" {
		t.Error("credentials after reopen")
	}
	if _, _, ok := db.LookupToken(token + "x"); ok {
		t.Error("credentials after reopen")
	}
	if revs, _ := db.NextRevisions("s1", 1, 10); len(revs) != 1 || revs[0].Changes[0].Key != "o2" {
		t.Errorf("revisions after reopen: %+v", revs)
	}
	if stored, _ := db.StoreEvents("s1", batch(1, 4), 0); stored != 4 {
		t.Errorf("stored after reopen: %d", stored)
	}
	if events, _, _ := db.Events("s1", 0, 10); len(events) != 4 {
		t.Errorf("events after reopen: %d", len(events))
	}
}

// Restore swaps in a snapshot's state and wakes every watcher; a file
// that is not a store is refused and changes nothing.
func TestSnapshotRestore(t *testing.T) {
	src, _ := openTest(t)
	if _, err := src.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := src.StoreEvents("s1", batch(1, 3), 0); err != nil {
		t.Fatal(err)
	}
	buf := snapshotOf(t, src)

	dst, _ := openTest(t)
	if _, err := dst.CreateSite("other", "", HashSecret("y")); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(strings.NewReader("not a bbolt file")); err == nil {
		t.Error("restoring garbage succeeded")
	}
	if _, err := dst.Site("other"); err != nil {
		t.Errorf("a refused restore changed the store: %v", err)
	}
	watch := dst.WatchEvents("s1")
	if err := dst.Restore(buf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Error("Restore woke no watcher")
	}
	if _, err := dst.Site("other"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("site other after restore: %v, want not found", err)
	}
	if evs, stored, err := dst.Events("s1", 0, 10); err != nil || stored != 3 || len(evs) != 3 {
		t.Errorf("restored events: %d, stored %d, %v; want 3", len(evs), stored, err)
	}
}

// A site keeps only its latest revisions; one further behind gets a full
// snapshot, with every object.
func TestRevisionsCompacted(t *testing.T) {
	defer func(k uint64) { keepRevisions = k }(keepRevisions)
	keepRevisions = 3
	db, _ := openTest(t)
	if _, err := db.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		obj := json.RawMessage(fmt.Sprintf(`{"id":"o%d","action":"power_on","machine_id":"m1"}`, i))
		if _, err := db.PutDesired("s1", KindOrder, fmt.Sprintf("o%d", i), obj); err != nil {
			t.Fatal(err)
		}
	}
	kept := 0
	db.view(func(tx *bolt.Tx) error {
		kept = tx.Bucket(bucketRevisions).Bucket([]byte("s1")).Stats().KeyN
		return nil
	})
	if kept != 3 {
		t.Errorf("%d revisions kept, want 3", kept)
	}
	revs, err := db.NextRevisions("s1", 1, 10)
	if err != nil || len(revs) != 1 || !revs[0].Full || revs[0].Revision != 6 || len(revs[0].Changes) != 6 {
		t.Errorf("a site at revision 1: %+v (%v), want the full snapshot of revision 6 with 6 orders", revs, err)
	}
	if next, _ := db.NextRevision("s1", 1); next != 6 {
		t.Errorf("NextRevision after 1 = %d, want 6 (the snapshot)", next)
	}
	revs, err = db.NextRevisions("s1", 4, 10)
	if err != nil || len(revs) != 2 || revs[0].Full || revs[0].Revision != 5 {
		t.Errorf("a site at revision 4: %+v (%v), want the deltas 5 and 6", revs, err)
	}
}

// TestOpenDamaged opens store files that lost their contents: each is
// refused with an error that matches ErrCorrupt and names the file, and
// the file is left as it was. An empty file is not a new store (it was
// once opened as one, with no sites), and one cut below its last page is
// an error, not a SIGBUS.
func TestOpenDamaged(t *testing.T) {
	db, path := openTest(t)
	for i := range 40 {
		site := fmt.Sprintf("s%d", i)
		if _, err := db.CreateSite(site, strings.Repeat("a long name ", 15), HashSecret("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.StoreEvents(site, batch(1, 50), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	used := testdir.PagesEnd(t, path)
	const page = 4096
	damaged := bytes.Clone(good)
	copy(damaged[4*page:used], bytes.Repeat([]byte{0xAB}, used-4*page))

	for name, content := range map[string][]byte{
		"empty":                  {},
		"truncated below a page": good[:used-page],
		"cut to its meta pages":  good[:2*page],
		"damaged pages":          damaged,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "central.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want ErrCorrupt naming %s", err, path)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Errorf("Open changed the file (%d bytes before, %d after)", len(content), len(after))
			}
		})
	}
}

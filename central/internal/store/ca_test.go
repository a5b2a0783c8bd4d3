package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/errs"
)

// A store that records no rotation is at generation 1; begin moves it to
// 2 with 1 still trusted; finish is refused, naming the members that
// have not renewed, and changes nothing, until every one has; a step out
// of turn is refused too.
func TestRotateCA(t *testing.T) {
	db, _ := openTest(t)
	if c, err := db.CA(); err != nil || c.Generation != 1 || c.Previous != 0 {
		t.Fatalf("a fresh store's CA: %+v, %v", c, err)
	}
	if _, err := db.RotateCA(CAFinish, "alice"); !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), "no rotation") {
		t.Errorf("finish with none under way: %v", err)
	}
	if _, err := db.RotateCA("sideways", "alice"); err == nil || !strings.Contains(err.Error(), `"sideways" is not a step`) {
		t.Errorf("an unknown step: %v", err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := db.PutMember(&Member{ID: id, RaftAddr: "127.0.0.1:1", APIURL: "http://127.0.0.1:2"}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := db.RotateCA(CABegin, "alice")
	if err != nil || c.Generation != 2 || c.Previous != 1 || c.By != "alice" {
		t.Fatalf("begin: %+v, %v", c, err)
	}
	if _, err := db.RotateCA(CABegin, "alice"); !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), "under way") {
		t.Errorf("begin twice: %v", err)
	}
	m1, _ := db.Member("c1")
	m1.CAGeneration = 2
	if err := db.PutMember(m1); err != nil {
		t.Fatal(err)
	}
	_, err = db.RotateCA(CAFinish, "bob")
	if !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), "c2 (generation 1)") || strings.Contains(err.Error(), "c1") {
		t.Fatalf("finish with c2 behind: %v, want a conflict naming c2 alone", err)
	}
	if c, _ := db.CA(); c.Previous != 1 {
		t.Errorf("a refused finish changed the record: %+v", c)
	}
	m2, _ := db.Member("c2")
	m2.CAGeneration = 2
	if err := db.PutMember(m2); err != nil {
		t.Fatal(err)
	}
	if c, err := db.RotateCA(CAFinish, "bob"); err != nil || c.Generation != 2 || c.Previous != 0 || c.By != "bob" {
		t.Fatalf("finish: %+v, %v", c, err)
	}
}

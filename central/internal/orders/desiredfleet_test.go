package orders

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/internal/store"
)

// TestDesiredFleet: the store-backed reader lists the sites' desired
// machines by site then id, in pages, matching its terms, and shows a
// site's link as connected says.
func TestDesiredFleet(t *testing.T) {
	db := openStore(t)
	for _, site := range []string{"s1", "s2"} {
		if _, err := db.CreateSite(site, "", store.HashSecret("x")); err != nil {
			t.Fatal(err)
		}
		for i, m := range []string{"m1", "m2"} {
			obj := fmt.Sprintf(`{"id":%q,"hostname":"%s-%s","tags":["rack-%d"]}`, m, site, m, i)
			if _, err := db.PutDesired(site, store.KindMachine, m, json.RawMessage(obj)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := &DesiredFleet{DB: db, Connected: func(site string) bool { return site == "s2" }}
	ids := func(q string, limit int, after string) ([]string, string, int) {
		p, err := f.Machines(q, limit, after)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range p.Machines {
			out = append(out, m.Site+"/"+m.ID)
		}
		return out, p.Next, p.Total
	}
	got, next, total := ids("", 3, "")
	if diff := cmp.Diff([]string{"s1/m1", "s1/m2", "s2/m1"}, got); diff != "" || next != "s2/m1" || total != 4 {
		t.Errorf("first page %v next %q total %d (-want +got):\n%s", got, next, total, diff)
	}
	if got, next, _ := ids("", 3, next); !cmp.Equal(got, []string{"s2/m2"}) || next != "" {
		t.Errorf("second page %v next %q", got, next)
	}
	if got, _, _ := ids("site:s2 tag:rack-1", 10, ""); !cmp.Equal(got, []string{"s2/m2"}) {
		t.Errorf("site:s2 tag:rack-1: %v", got)
	}
	if got, _, _ := ids("hostname:s1-*", 10, ""); !cmp.Equal(got, []string{"s1/m1", "s1/m2"}) {
		t.Errorf("hostname:s1-*: %v", got)
	}
	if _, err := f.Machines("state:failed", 10, ""); err == nil {
		t.Error("an unknown term was not refused")
	}
	if m, err := f.Machine("s2", "m1"); err != nil || m.Hostname != "s2-m1" {
		t.Errorf("machine s2/m1: %+v, %v", m, err)
	}
	if _, err := f.Machine("s2", "m9"); err == nil {
		t.Error("an unknown machine was found")
	}
	sites, err := f.Sites()
	if err != nil || len(sites) != 2 || sites[0].Link.Connected || !sites[1].Link.Connected || sites[1].Link.Revision != 2 {
		t.Errorf("sites %+v, %v", sites, err)
	}
}

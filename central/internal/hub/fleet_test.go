package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/syncproto"
)

// siteOf is the fleet's record of site id.
func (f *fixture) siteOf(id string) *fleet.Site {
	f.t.Helper()
	sites, err := f.db.Fleet().Sites()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range sites {
		if s.ID == id {
			return s
		}
	}
	f.t.Fatalf("no site %s in the fleet", id)
	return nil
}

// TestLinkState: a session's start and end are recorded as the site's
// link, naming the node that holds it; the hello's report and the
// heartbeats' are recorded, a heartbeat's unchanged report but for its
// newest sequence only once ReportEvery has passed, a changed one at
// once.
func TestLinkState(t *testing.T) {
	f := newFixture(t, Config{Node: "c1", ReportEvery: time.Hour})
	cred := f.site("s1")
	if l := f.siteOf("s1").Link; l.Connected {
		t.Fatalf("before any session: %+v", l)
	}
	h := hello("s1", cred, 0, 0, 0)
	h.Report = &syncproto.Report{Appliance: "v1", Nodes: 3, Voters: 3, Healthy: 3, Leader: "a1", Console: "https://ams2.example.net"}
	c, _ := f.connect(h)
	s := f.siteOf("s1")
	if !s.Link.Connected || s.Link.Node != "c1" || s.Appliance.Version != "v1" || s.Appliance.Console != "https://ams2.example.net" {
		t.Fatalf("connected: %+v", s)
	}

	// The same report but for a newer sequence: not recorded before
	// ReportEvery.
	c.send(&syncproto.Heartbeat{Time: time.Now(), Report: &syncproto.Report{Appliance: "v1", Nodes: 3, Voters: 3, Healthy: 3,
		Leader: "a1", Console: "https://ams2.example.net", LastSeq: 5}})
	// A changed one is, at once.
	c.send(&syncproto.Heartbeat{Time: time.Now(), Report: &syncproto.Report{Appliance: "v1", Nodes: 3, Voters: 3, Healthy: 2,
		Leader: "a1", Console: "https://ams2.example.net", Problems: []string{"a3 unreachable"}, LastSeq: 6}})
	testwait.For(t, "the changed report recorded", 10*time.Second, func() bool {
		return strings.Contains(f.logs.String(), "last_seq=6")
	})
	if n := strings.Count(f.logs.String(), "sync: site's report recorded"); n != 2 {
		t.Errorf("%d reports recorded, want 2: the hello's and the changed one (the unchanged one waits ReportEvery)", n)
	}
	s = f.siteOf("s1")
	if s.Link.SiteLastSeq != 6 || s.Link.EventsBehind != 6 || len(s.Appliance.Problems) != 1 {
		t.Errorf("after the changed report: %+v", s)
	}

	// A second connection replaces the first: the first's end does not
	// end the second's link. Each records one change of the fleet: the
	// second's start, the first's end.
	v0 := f.db.Fleet().Version()
	c2, _ := f.connect(hello("s1", cred, 0, 0, 0))
	if e, ok := c.recv().(*syncproto.Error); !ok || e.Code != syncproto.CodeReplaced {
		t.Fatalf("the first connection got %+v, want error replaced", e)
	}
	if !c.closed() {
		t.Fatal("the replaced connection stays open")
	}
	testwait.For(t, "the first session's end recorded", 10*time.Second, func() bool { return f.db.Fleet().Version() >= v0+2 })
	if !f.siteOf("s1").Link.Connected {
		t.Error("the replaced session's end ended the new one's link")
	}
	c2.conn.CloseNow()
	testwait.For(t, "the link's end recorded", 10*time.Second, func() bool { return !f.siteOf("s1").Link.Connected })
	if f.hub.Status("s1").Connected {
		t.Error("the hub still holds the session")
	}
}

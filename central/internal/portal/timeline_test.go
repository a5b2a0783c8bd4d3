package portal_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/internal/store"
)

// fakeHistory is central's records of provisions and annotations: a
// site's own and the fleet-wide ones, as the store selects them.
type fakeHistory struct {
	mu    sync.Mutex
	ends  []store.ProvisionEnd
	notes []store.Annotation
	asked []string // the sites asked for
}

func (h *fakeHistory) ProvisionsEnded(site string, from, to time.Time) ([]store.ProvisionEnd, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, site)
	var out []store.ProvisionEnd
	for _, p := range h.ends {
		if (site == "" || p.Site == site) && !p.Ended.Before(from) && !p.Ended.After(to) {
			out = append(out, p)
		}
	}
	return out, nil
}

// sites are the sites the provisions were read for, in turn.
func (h *fakeHistory) sites() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.asked)
}

func (h *fakeHistory) Annotations(f store.AnnotationFilter) ([]store.Annotation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []store.Annotation
	for _, a := range h.notes {
		if f.Site == "" || a.Site == "" || a.Site == f.Site {
			out = append(out, a)
		}
	}
	return out, nil
}

// newFakeHistory is an hour of eu1 and us1: provisions of 5 minutes
// every 5 minutes, and of 20 minutes and failures during a WAN
// partition of eu1 half an hour ago; a fleet-wide power incident 10
// minutes ago, and one of us1 two days ago (outside the window).
func newFakeHistory(now time.Time) *fakeHistory {
	h := &fakeHistory{}
	ago := func(m int) time.Time { return now.Add(-time.Duration(m) * time.Minute) }
	add := func(site, id string, created, took int, ok bool) {
		h.ends = append(h.ends, store.ProvisionEnd{Site: site, Machine: id, Order: "o-" + id, Created: ago(created), Ended: ago(created - took), OK: ok})
	}
	for i := range 10 {
		add("eu1", "m"+string(rune('a'+i)), 55-5*i, 5, true)
		add("us1", "n"+string(rune('a'+i)), 55-5*i, 4, true)
	}
	add("eu1", "slow", 32, 20, true)
	add("eu1", "lost1", 31, 3, false)
	add("eu1", "lost2", 30, 2, false)
	h.notes = []store.Annotation{
		{ID: 1, Site: "eu1", Kind: "wan.partition", Start: ago(31), End: ago(26), Text: "eu1 cut from central <all links>"},
		{ID: 2, Kind: "power", Start: ago(10), End: ago(9), Text: "grid dip"},
		{ID: 3, Site: "us1", Kind: "bmc.dead", Start: ago(3000), End: ago(2990)},
	}
	return h
}

// TestChartsTimeline: the charts page draws provisions over the window
// as an SVG with a band per annotation, prints its figures, and lists
// each annotation with what it cost (the provisions during it that
// failed, or took longer than the window's p90); ?site= shows one
// site's with the fleet-wide annotations; an unknown site or window is
// refused by name.
func TestChartsTimeline(t *testing.T) {
	e := start(t)
	c, _ := e.signIn(t, "viewer")
	resp, body := e.Do(t, http.MethodGet, "/charts?window=1h", nil, nil, c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("charts: %d\n%s", resp.StatusCode, body)
	}
	els := elements(t, body)
	if got := [3]string{texts(els, "timeline-provisions")[0], texts(els, "timeline-failed")[0], texts(els, "timeline-ratio")[0]}; got != [3]string{"23", "2", "91.3 %"} {
		t.Errorf("figures %q, want 23 provisions, 2 failed, 91.3 %%", got)
	}
	if n := strings.Count(body, `class="band"`); n != 2 {
		t.Errorf("%d bands, want the two annotations of the window", n)
	}
	if !strings.Contains(body, `<svg xmlns="http://www.w3.org/2000/svg" class="provchart"`) || !strings.Contains(body, `class="failed"`) {
		t.Error("the page has no chart with the failed provisions")
	}
	if strings.Contains(body, "ZgotmplZ") || strings.Count(body, `class="swatch" style="background:#`) != 2 {
		t.Error("the annotations' swatches are not in their colours")
	}
	type row struct{ Kind, Text, During, Failed, Slow string }
	var got []row
	for i := range els["annotation-row"] {
		got = append(got, row{texts(els, "annotation-kind")[i], texts(els, "annotation-text")[i], texts(els, "annotation-during")[i],
			texts(els, "annotation-failed")[i], texts(els, "annotation-slow")[i]})
	}
	want := []row{
		// The power dip: eu1's two and us1's one that ran then (one
		// ended as it began).
		{"power", "grid dip", "3", "0", "0"},
		// During eu1's partition: its two failures, its 20-minute
		// provision and two 5-minute ones (not us1's).
		{"wan.partition", "eu1 cut from central <all links>", "5", "2", "1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	_, body = e.Do(t, http.MethodGet, "/charts?site=us1&window=1h", nil, nil, c)
	els = elements(t, body)
	if texts(els, "timeline-provisions")[0] != "10" || len(els["annotation-row"]) != 1 || texts(els, "timeline-site-name")[0] != "us1" {
		t.Errorf("us1's charts: %q provisions, %d annotations, want 10 and the fleet-wide one", texts(els, "timeline-provisions"), len(els["annotation-row"]))
	}
	e.Do(t, http.MethodGet, "/charts?site=us1&window=1h", nil, nil, c)
	if asked := e.history.sites(); len(asked) != 2 || asked[1] != "us1" {
		t.Errorf("the history was asked for %q, want the fleet's then us1's once (the page's refreshes read it again only after a while)", asked)
	}
	for path, says := range map[string]string{"/charts?site=nowhere": `site &#34;nowhere&#34; not found`, "/charts?window=2w": `window &#34;2w&#34; is not one of`} {
		resp, body := e.Do(t, http.MethodGet, path, nil, nil, c)
		if resp.StatusCode/100 != 4 || !strings.Contains(body, says) {
			t.Errorf("GET %s: %d, want a 4xx saying %s\n%s", path, resp.StatusCode, says, body)
		}
	}
}

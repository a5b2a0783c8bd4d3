package portal

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/outposthq/outpost/central/fleet"
)

// The charts page: how long provisioning takes and how often it
// succeeds, per image and per hardware class (and per day), over the
// fleet model's orders: each machine's last order that is a provision
// and has ended, succeeded or failed. A fleet's average hides the class
// that fails; these split it.

// provision is one ended provision of the fleet model.
type provision struct {
	Image, Class, Day string
	Took              time.Duration
	OK                bool
}

// unknown names an image or a hardware class central was not told.
const unknown = "unknown"

// provisionsOf are the ended provisions among machines' last orders.
func provisionsOf(ms []*fleet.Machine) []provision {
	var out []provision
	for _, m := range ms {
		o := m.LastOrder
		if o == nil || o.Action != "provision" || (o.Status != fleet.OrderSucceeded && o.Status != fleet.OrderFailed) || o.Placed.IsZero() {
			continue
		}
		p := provision{Image: cmp.Or(o.Image, unknown), Class: cmp.Or(m.Hardware, unknown), Day: o.Updated.UTC().Format(time.DateOnly),
			Took: o.Updated.Sub(o.Placed), OK: o.Status == fleet.OrderSucceeded}
		out = append(out, p)
	}
	return out
}

// buckets are the histogram's upper bounds; the last bucket is above the
// last bound.
var buckets = []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour, 2 * time.Hour}

// bucketLabels name the buckets: "≤ 1m", "1m–2m", …, "> 2h".
func bucketLabels() []string {
	out := []string{"≤ " + short(buckets[0])}
	for i := 1; i < len(buckets); i++ {
		out = append(out, short(buckets[i-1])+"–"+short(buckets[i]))
	}
	return append(out, "> "+short(buckets[len(buckets)-1]))
}

func short(d time.Duration) string {
	if d >= time.Hour {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

// distribution is how long one group's successful provisions took.
type distribution struct {
	Group         string
	N             int
	P50, P90, P99 string
	// Hist counts its provisions per bucket, each with its bar's height
	// in percent of the group's largest bucket.
	Hist []histBar
}

type histBar struct {
	N      int
	Height float64
}

// distributions groups the successful provisions by key, largest group
// first.
func distributions(ps []provision, key func(provision) string) []distribution {
	groups := map[string][]time.Duration{}
	for _, p := range ps {
		if p.OK {
			groups[key(p)] = append(groups[key(p)], p.Took)
		}
	}
	var out []distribution
	for g, ds := range groups {
		slices.Sort(ds)
		d := distribution{Group: g, N: len(ds), P50: took(percentile(ds, 50)), P90: took(percentile(ds, 90)), P99: took(percentile(ds, 99)),
			Hist: make([]histBar, len(buckets)+1)}
		top := 0
		for _, x := range ds {
			i, _ := slices.BinarySearch(buckets, x)
			d.Hist[i].N++
			top = max(top, d.Hist[i].N)
		}
		for i := range d.Hist {
			d.Hist[i].Height = round1(100 * float64(d.Hist[i].N) / float64(top))
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b distribution) int { return cmp.Or(b.N-a.N, cmp.Compare(a.Group, b.Group)) })
	return out
}

// percentile is the p-th percentile of sorted ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

// ratio is one group's provisions that succeeded and failed.
type ratio struct {
	Group             string
	Succeeded, Failed int
	// Pct is the share that succeeded, in percent.
	Pct float64
}

// ratios groups the provisions by key; order sorts the groups.
func ratios(ps []provision, key func(provision) string, order func(a, b ratio) int) []ratio {
	groups := map[string]*ratio{}
	for _, p := range ps {
		r := groups[key(p)]
		if r == nil {
			r = &ratio{Group: key(p)}
			groups[key(p)] = r
		}
		if p.OK {
			r.Succeeded++
		} else {
			r.Failed++
		}
	}
	out := make([]ratio, 0, len(groups))
	for _, r := range groups {
		r.Pct = round1(100 * float64(r.Succeeded) / float64(r.Succeeded+r.Failed))
		out = append(out, *r)
	}
	slices.SortFunc(out, order)
	return out
}

// byShare puts the groups that fail most first: a fleet's average hides
// them.
func byShare(a, b ratio) int {
	return cmp.Or(cmp.Compare(a.Pct, b.Pct), cmp.Compare(b.Succeeded+b.Failed, a.Succeeded+a.Failed), cmp.Compare(a.Group, b.Group))
}

// newestFirst puts the days newest first.
func newestFirst(a, b ratio) int { return cmp.Compare(b.Group, a.Group) }

// maxDays bounds the days the page shows.
const maxDays = 30

type chartsData struct {
	// Provisions counts the ended provisions, Succeeded those that did.
	Provisions, Succeeded int
	// Times are the distributions of provisioning time (per image, per
	// hardware class), Ratios the success ratios (per day, image, class).
	Times  []distTable
	Ratios []ratioTable
	// Timeline is provisions over a window with its annotations
	// (timeline.go); nil without a history to read.
	Timeline *timelineData
}

// distTable is a table of distributions: its data-test name, title, the
// name of what it groups by, and the histogram's bucket labels.
type distTable struct {
	Test, Title, Group string
	Buckets            []string
	Rows               []distribution
}

// ratioTable is a table of success ratios.
type ratioTable struct {
	Test, Title, Group string
	Rows               []ratio
}

// chartsOf computes the charts of the machines' last orders.
func chartsOf(ms []*fleet.Machine) chartsData {
	ps := provisionsOf(ms)
	image := func(p provision) string { return p.Image }
	class := func(p provision) string { return p.Class }
	days := ratios(ps, func(p provision) string { return p.Day }, newestFirst)
	if len(days) > maxDays {
		days = days[:maxDays]
	}
	d := chartsData{Provisions: len(ps),
		Times: []distTable{
			{Test: "time-by-image", Title: "Provisioning time per image", Group: "Image", Buckets: bucketLabels(), Rows: distributions(ps, image)},
			{Test: "time-by-class", Title: "Provisioning time per hardware class", Group: "Hardware class", Buckets: bucketLabels(), Rows: distributions(ps, class)},
		},
		Ratios: []ratioTable{
			{Test: "success-by-day", Title: "Success per day", Group: "Day (UTC)", Rows: days},
			{Test: "success-by-image", Title: "Success per image", Group: "Image", Rows: ratios(ps, image, byShare)},
			{Test: "success-by-class", Title: "Success per hardware class", Group: "Hardware class", Rows: ratios(ps, class, byShare)},
		}}
	for _, p := range ps {
		if p.OK {
			d.Succeeded++
		}
	}
	return d
}

// chartsPage is how many machines the charts read at a time.
const chartsPage = 1000

// charts serves the charts page, over every machine of the fleet model.
func (s *Server) charts(w http.ResponseWriter, r *http.Request) {
	var all []*fleet.Machine
	for after := ""; ; {
		page, err := s.cfg.Fleet.Machines("", chartsPage, after)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		all = append(all, page.Machines...)
		if page.Next == "" || len(page.Machines) == 0 {
			break
		}
		after = page.Next
	}
	tl, err := s.timelineOf(r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := chartsOf(all)
	d.Timeline = tl
	s.render(w, r, http.StatusOK, "charts", "Charts", d)
}

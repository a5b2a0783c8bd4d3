package console

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// The charts page: how long the site's provisions take, per image and
// per hardware class (p50, p90, p99 and a histogram), and how many
// succeed, per day, per image and per hardware class: a site-wide
// average hides the classes that fail. It is read from the site's
// provision orders that ended.

// provision is one provision order that ended, and when.
type provision struct {
	Image, Class, Day string
	Took              time.Duration
	OK                bool
	Ended             time.Time
}

// histBounds are the upper bounds of the histogram's bins (the last bin
// is everything longer).
var histBounds = []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, time.Hour}

// chartsData is what the charts page shows.
type chartsData struct {
	Bins       []string
	ByImage    []timeRow
	ByClass    []timeRow
	Days       []ratioRow
	Images     []ratioRow
	Classes    []ratioRow
	Provisions int
	Unknown    int // provisions of machines with no hardware facts
	// TimeTables and RatioTables are the tables the page draws, of the
	// rows above.
	TimeTables  []table[timeRow]
	RatioTables []table[ratioRow]
	// Timeline is provisions over a window (timeline.go).
	Timeline *timelineData
}

// table is one table of the page: its section's test name and heading,
// its first column's title, its rows.
type table[R any] struct {
	Test, Heading, Title string
	Rows                 []R
}

// timeRow is the time distribution of one image's or class's
// successful provisions.
type timeRow struct {
	Key           string
	Count         int
	P50, P90, P99 time.Duration
	Hist          []histBin
}

type histBin struct {
	Count  int
	Height string // percent of the row's fullest bin
}

// ratioRow is the success ratio of one day's, image's or class's
// provisions.
type ratioRow struct {
	Key               string
	Succeeded, Failed int
	Ratio             string // percent
}

// unknownClass is the class of a machine whose hardware is not known.
const unknownClass = "unknown"

func (s *Server) charts(w http.ResponseWriter, r *http.Request) {
	var ps []provision
	err := s.cfg.Store.View(func(tx *store.Tx) (err error) {
		ps, err = provisions(tx)
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := buildCharts(ps)
	if d.Timeline, err = s.timelineOf(r, ps); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "charts", "Charts", d)
}

// provisions reads the site's provision orders that ended, with their
// machines' hardware classes.
func provisions(tx *store.Tx) ([]provision, error) {
	orders, err := store.List[store.Order](tx)
	if err != nil {
		return nil, err
	}
	classes := map[string]string{}
	var out []provision
	for _, o := range orders {
		if o.Action != store.OrderProvision || !o.Done() {
			continue
		}
		class, ok := classes[o.MachineID]
		if !ok {
			class = unknownClass
			if m, err := store.Get[store.Machine](tx, o.MachineID); err == nil {
				class = hardwareClass(m.Hardware)
			}
			classes[o.MachineID] = class
		}
		image := o.Image
		if image == "" {
			image = o.Values["image"]
		}
		out = append(out, provision{Image: image, Class: class, Day: o.UpdatedAt.UTC().Format(time.DateOnly),
			Took: o.UpdatedAt.Sub(o.CreatedAt), OK: o.State == store.OrderSucceeded, Ended: o.UpdatedAt})
	}
	return out, nil
}

// hardwareClass is a machine's vendor and product, as discovery found
// them, or "unknown".
func hardwareClass(h *store.Hardware) string {
	if h == nil {
		return unknownClass
	}
	if c := strings.TrimSpace(h.Vendor + " " + h.Product); c != "" {
		return c
	}
	return unknownClass
}

// buildCharts computes the charts of provisions ps.
func buildCharts(ps []provision) chartsData {
	d := chartsData{Provisions: len(ps)}
	for i, b := range histBounds {
		if i == 0 {
			d.Bins = append(d.Bins, "≤ "+b.String())
		} else {
			d.Bins = append(d.Bins, histBounds[i-1].String()+"–"+b.String())
		}
	}
	d.Bins = append(d.Bins, "> "+histBounds[len(histBounds)-1].String())
	for _, p := range ps {
		if p.Class == unknownClass {
			d.Unknown++
		}
	}
	d.ByImage = timeRows(ps, func(p provision) string { return p.Image })
	d.ByClass = timeRows(ps, func(p provision) string { return p.Class })
	d.Days = ratioRows(ps, func(p provision) string { return p.Day })
	slices.Reverse(d.Days) // newest first
	d.Images = ratioRows(ps, func(p provision) string { return p.Image })
	d.Classes = ratioRows(ps, func(p provision) string { return p.Class })
	d.TimeTables = []table[timeRow]{
		{"time-by-image", "Provisioning time by image", "Image", d.ByImage},
		{"time-by-class", "Provisioning time by hardware class", "Hardware class", d.ByClass},
	}
	d.RatioTables = []table[ratioRow]{
		{"ratio-by-day", "Success by day", "Day", d.Days},
		{"ratio-by-image", "Success by image", "Image", d.Images},
		{"ratio-by-class", "Success by hardware class", "Hardware class", d.Classes},
	}
	return d
}

// timeRows groups the successful provisions by key, by key.
func timeRows(ps []provision, key func(provision) string) []timeRow {
	groups := map[string][]time.Duration{}
	for _, p := range ps {
		if p.OK {
			groups[key(p)] = append(groups[key(p)], p.Took)
		}
	}
	var out []timeRow
	for k, ds := range groups {
		slices.Sort(ds)
		row := timeRow{Key: k, Count: len(ds), P50: percentile(ds, 50), P90: percentile(ds, 90), P99: percentile(ds, 99)}
		counts := make([]int, len(histBounds)+1)
		for _, d := range ds {
			i, _ := slices.BinarySearch(histBounds, d)
			counts[i]++
		}
		top := slices.Max(counts)
		for _, c := range counts {
			row.Hist = append(row.Hist, histBin{Count: c, Height: fmt.Sprintf("%.0f", float64(c)/float64(top)*100)})
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b timeRow) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// percentile is the nearest-rank p-th percentile of sorted ds, rounded
// to the second.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	rank := (p*len(ds) + 99) / 100 // ceil(p/100 × n)
	return ds[max(rank, 1)-1].Round(time.Second)
}

// ratioRows counts the provisions that succeeded and failed by key, by
// key.
func ratioRows(ps []provision, key func(provision) string) []ratioRow {
	rows := map[string]*ratioRow{}
	for _, p := range ps {
		r := rows[key(p)]
		if r == nil {
			r = &ratioRow{Key: key(p)}
			rows[key(p)] = r
		}
		if p.OK {
			r.Succeeded++
		} else {
			r.Failed++
		}
	}
	out := make([]ratioRow, 0, len(rows))
	for _, r := range rows {
		r.Ratio = fmt.Sprintf("%.1f", float64(r.Succeeded)/float64(r.Succeeded+r.Failed)*100)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ratioRow) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

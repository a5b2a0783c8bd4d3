package soak

import (
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/provchart"
)

// kindColor is each fault kind's band colour.
var kindColor = map[string]string{
	string(SiteKill): "#d62728", string(CentralKill): "#9467bd", string(WANPartition): "#ff7f0e", string(WANFlap): "#e6b800",
	string(BootLoss): "#17becf", string(BMCDead): "#8c564b", string(BMCTimeout): "#a0785a", string(BMCRefuse): "#c49c94",
	string(AgentKill): "#e377c2", string(ImageCorrupt): "#2ca02c", string(DiskFull): "#bcbd22", string(ClockStep): "#1f77b4",
	string(Upgrade): "#7f7f7f",
}

// SVG geometry: the title, then the chart (provchart), then the table
// of faults.
const (
	svgW, plotX = provchart.Width, 60
	chartY      = 36
	tableY      = chartY + provchart.Height + 20
)

// SVG draws the report as one self-contained picture: the title with
// the verdict, provisions ended over the run with each fault a band in
// its kind's colour and the time-to-provision histogram (the chart the
// portal and the console draw), and the faults with what each cost.
func (r *Report) SVG() string {
	var b strings.Builder
	rows := len(r.Faults)
	h := tableY + 18*(rows+min(len(r.Violations), svgViolations+1)+4)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", svgW, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	verdict, colour := "all invariants held", "#2ca02c"
	if len(r.Violations) > 0 {
		verdict, colour = fmt.Sprintf("%d invariant violations", len(r.Violations)), "#d62728"
	}
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Soak seed %d: %.2f h, %d machines, %d provisions (%.0f/h), success %.3f, p99 %.0f s — <tspan fill="%s">%s</tspan></text>`+"\n",
		plotX, r.Seed, r.Hours, r.Machines, r.Provisions, r.PerHour, r.SuccessRatio, r.TTP.P99, colour, verdict)
	chart := r.Chart().SVG()
	// The chart nests as its own svg element, placed under the title.
	b.WriteString(strings.Replace(chart, "<svg ", fmt.Sprintf(`<svg x="0" y="%d" `, chartY), 1))
	r.svgFaultTable(&b)
	b.WriteString("</svg>\n")
	return b.String()
}

// soakEpoch is the time a run's offsets count from in its chart, whose
// axis is labelled with offsets.
var soakEpoch = time.Unix(0, 0).UTC()

// Chart is the run as provchart draws it: its provisions that ended and
// its faults as annotations, over the run.
func (r *Report) Chart() provchart.Chart {
	c := provchart.Chart{From: soakEpoch, To: soakEpoch.Add(time.Duration(r.Hours * float64(time.Hour))), Colors: kindColor, Relative: true}
	for _, o := range r.Orders {
		if o.Action == "provision" && o.State != "" {
			c.Provisions = append(c.Provisions, provchart.Provision{Start: soakEpoch.Add(o.Placed), End: soakEpoch.Add(o.Ended), OK: o.State == "succeeded"})
		}
	}
	for _, f := range r.Faults {
		c.Annotations = append(c.Annotations, f.Annotation(soakEpoch))
	}
	return c
}

// Annotation is the fault as an annotation of a run that started at
// start: its kind, window, and its target as its text.
func (f Fault) Annotation(start time.Time) provchart.Annotation {
	text := ""
	if f.Target != "" {
		text = "target " + f.Target
	}
	return provchart.Annotation{Kind: string(f.Kind), Text: text, Start: start.Add(f.Start), End: start.Add(f.End)}
}

// svgFaultTable lists the faults with what each cost, then the
// violations.
func (r *Report) svgFaultTable(b *strings.Builder) {
	y := tableY
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">faults: start–end, kind, target; orders failed under it; provisions during it, their median time to provision less the clean median</text>`+"\n", plotX, y)
	for _, f := range r.Faults {
		y += 18
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s  failed %d  during %d  extra %+.1f s</text>`+"\n",
			plotX, y-10, kindColor[string(f.Kind)], plotX+14, y, html.EscapeString(f.Fault.String()), len(f.FailedOrders), f.Overlapping, f.ExtraS)
	}
	for i, v := range r.Violations {
		y += 18
		if i == svgViolations {
			fmt.Fprintf(b, `<text x="%d" y="%d" fill="#d62728">… and %d more violations (soak.json has them all)</text>`+"\n", plotX, y, len(r.Violations)-i)
			break
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#d62728">VIOLATION %s</text>`+"\n", plotX, y, html.EscapeString(clip(v.String(), 150)))
	}
}

// svgViolations bounds the violations the picture lists.
const svgViolations = 20

// clip cuts s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

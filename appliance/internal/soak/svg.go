package soak

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// kindColor is each fault kind's band colour.
var kindColor = map[Kind]string{
	SiteKill: "#d62728", CentralKill: "#9467bd", WANPartition: "#ff7f0e", WANFlap: "#e6b800",
	BootLoss: "#17becf", BMCDead: "#8c564b", BMCTimeout: "#a0785a", BMCRefuse: "#c49c94", AgentKill: "#e377c2",
	ImageCorrupt: "#2ca02c",
}

// SVG geometry.
const (
	svgW, plotX, plotW = 1100, 60, 1000
	timeY, timeH       = 60, 220
	histY, histH       = 400, 160
)

// SVG draws the report as one self-contained picture: provisions ended
// per interval over the run (succeeded stacked under failed) with each
// fault a band in its kind's colour, the time-to-provision histogram,
// and the faults with what each cost.
func (r *Report) SVG() string {
	var b strings.Builder
	rows := len(r.Faults)
	h := histY + histH + 80 + 18*(rows+min(len(r.Violations), svgViolations+1)+4)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", svgW, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	verdict, colour := "all invariants held", "#2ca02c"
	if len(r.Violations) > 0 {
		verdict, colour = fmt.Sprintf("%d invariant violations", len(r.Violations)), "#d62728"
	}
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Soak seed %d: %.2f h, %d machines, %d provisions (%.0f/h), success %.3f, p99 %.0f s — <tspan fill="%s">%s</tspan></text>`+"\n",
		plotX, r.Seed, r.Hours, r.Machines, r.Provisions, r.PerHour, r.SuccessRatio, r.TTP.P99, colour, verdict)
	r.svgTimeline(&b)
	r.svgHistogram(&b)
	r.svgFaultTable(&b)
	b.WriteString("</svg>\n")
	return b.String()
}

// svgTimeline draws provisions ended per bin with the faults as bands.
func (r *Report) svgTimeline(b *strings.Builder) {
	total := time.Duration(r.Hours * float64(time.Hour))
	if total <= 0 {
		return
	}
	const bins = 100
	var ok, bad [bins]int
	for _, o := range r.Orders {
		if o.Action != "provision" || o.State == "" {
			continue
		}
		i := min(int(float64(o.Ended)/float64(total)*bins), bins-1)
		if o.State == "succeeded" {
			ok[i]++
		} else {
			bad[i]++
		}
	}
	top := 1
	for i := range ok {
		top = max(top, ok[i]+bad[i])
	}
	x := func(d time.Duration) float64 { return plotX + float64(plotW)*float64(d)/float64(total) }
	fmt.Fprintf(b, `<text x="%d" y="%d">provisions ended per %.0f s (green succeeded, red failed); bands: faults</text>`+"\n",
		plotX, timeY-8, total.Seconds()/bins)
	for i, f := range r.Faults {
		w := max(x(f.End)-x(f.Start), 2)
		lane := float64(i%4) * 12
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.18"><title>%s</title></rect>`+"\n",
			x(f.Start), timeY, w, timeH, kindColor[f.Kind], html.EscapeString(f.String()))
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="10" fill="%s"/>`+"\n", x(f.Start), float64(timeY+timeH+4)+lane, w, kindColor[f.Kind])
	}
	bw := float64(plotW) / bins
	for i := range ok {
		hOK := float64(timeH) * float64(ok[i]) / float64(top)
		hBad := float64(timeH) * float64(bad[i]) / float64(top)
		x0 := plotX + bw*float64(i)
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2ca02c"/>`, x0, float64(timeY+timeH)-hOK, bw-1, hOK)
		if bad[i] > 0 {
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728"/>`, x0, float64(timeY+timeH)-hOK-hBad, bw-1, hBad)
		}
	}
	fmt.Fprintf(b, "\n"+`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotX, timeY+timeH, plotX+plotW, timeY+timeH)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%d</text><text x="%d" y="%d" text-anchor="end">0</text>`+"\n",
		plotX-4, timeY+10, top, plotX-4, timeY+timeH)
	for i := 0; i <= 10; i++ {
		d := total * time.Duration(i) / 10
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(d), timeY+timeH+66, d.Round(time.Second))
	}
	lx := plotX
	for _, k := range Kinds {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, lx, timeY+timeH+76, kindColor[k], lx+14, timeY+timeH+85, k)
		lx += 130
	}
	b.WriteString("\n")
}

// svgHistogram draws the time-to-provision histogram.
func (r *Report) svgHistogram(b *strings.Builder) {
	fmt.Fprintf(b, `<text x="%d" y="%d">time to provision (order placed at central → ended at the site), %d provisions: p50 %.1f s, p90 %.1f s, p99 %.1f s, max %.1f s</text>`+"\n",
		plotX, histY-8, r.TTP.N, r.TTP.P50, r.TTP.P90, r.TTP.P99, r.TTP.Max)
	if len(r.Histogram) == 0 {
		return
	}
	top := 1
	for _, k := range r.Histogram {
		top = max(top, k.Count)
	}
	bw := float64(plotW) / float64(len(r.Histogram))
	for i, k := range r.Histogram {
		hh := float64(histH) * float64(k.Count) / float64(top)
		x0 := plotX + bw*float64(i)
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4"><title>%d under %.1f s</title></rect>`,
			x0, float64(histY+histH)-hh, bw-2, hh, k.Count, k.UpTo)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%.0f</text>`, x0+bw, histY+histH+12, k.UpTo)
	}
	b.WriteString("\n")
}

// svgFaultTable lists the faults with what each cost, then the
// violations.
func (r *Report) svgFaultTable(b *strings.Builder) {
	y := histY + histH + 40
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">faults: start–end, kind, target; orders failed under it; provisions during it, their median time to provision less the clean median</text>`+"\n", plotX, y)
	for _, f := range r.Faults {
		y += 18
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s  failed %d  during %d  extra %+.1f s</text>`+"\n",
			plotX, y-10, kindColor[f.Kind], plotX+14, y, html.EscapeString(f.Fault.String()), len(f.FailedOrders), f.Overlapping, f.ExtraS)
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

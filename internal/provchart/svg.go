package provchart

import (
	"fmt"
	"hash/fnv"
	"html"
	"html/template"
	"slices"
	"strings"
	"time"
)

// Chart is the picture of one window: the provisions that ended in it
// and the annotations that touch it.
type Chart struct {
	From, To    time.Time
	Provisions  []Provision
	Annotations []Annotation
	// Colors maps an annotation's kind to its colour; a kind not in it
	// takes one from a fixed palette by its name, so that a kind has the
	// same colour on every page.
	Colors map[string]string
	// Relative labels the time axis with the offset from From ("10m0s")
	// rather than the clock (UTC): a soak's run.
	Relative bool
}

// The picture's geometry, in SVG user units.
const (
	Width              = 1100
	plotX, plotW       = 60, 980
	timeY, timeH       = 40, 220
	laneH, lanes       = 10, 4
	histGap, histH     = 130, 140
	histBars           = 20
	maxBins            = 60
	colorOK, colorFail = "#2ca02c", "#d62728"
	colorRatio         = "#1f77b4"
)

// Height is the picture's height.
const Height = timeY + timeH + histGap + histH + 40

// palette colours the annotations' kinds (Tableau 10, without the
// green and red of the bars).
var palette = []string{"#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#e6b800", "#1f77b4", "#393b79"}

// colorOf is kind's colour: colors' if it names one, else the
// palette's by the kind's hash.
func colorOf(kind string, colors map[string]string) string {
	if c, ok := colors[kind]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(kind))
	return palette[h.Sum32()%uint32(len(palette))]
}

// binSizes are the widths a timeline's bars may have: the smallest that
// keeps the bars at most maxBins.
var binSizes = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// BinFor is the width of a bar over a window of span.
func BinFor(span time.Duration) time.Duration {
	for _, b := range binSizes {
		if span <= b*maxBins {
			return b
		}
	}
	return binSizes[len(binSizes)-1]
}

// HTML is the picture for an html/template page: its SVG, all of whose
// text is escaped here.
func (c Chart) HTML() template.HTML { return template.HTML(c.SVG()) }

// SVG is the picture: the timeline with its bands, then the histogram
// of time to provision.
func (c Chart) SVG() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="provchart" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="12" role="img">`+"\n",
		Width, Height, Width, Height)
	s := Summarize(c.Provisions, c.From, c.To)
	fmt.Fprintf(&b, `<title>%d provisions, %.1f per hour, success %.1f %%, p90 %s</title>`+"\n", s.Provisions, s.PerHour, 100*s.SuccessRatio, roundD(s.P90))
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	if !c.To.After(c.From) {
		b.WriteString(`<text x="60" y="60">no window to draw</text></svg>` + "\n")
		return b.String()
	}
	c.timeline(&b)
	c.histogram(&b, s)
	b.WriteString("</svg>\n")
	return b.String()
}

// x is the horizontal position of t.
func (c Chart) x(t time.Time) float64 {
	return plotX + float64(plotW)*float64(t.Sub(c.From))/float64(c.To.Sub(c.From))
}

// timeline draws the bands, the stacked bars, the success ratio and the
// time axis.
func (c Chart) timeline(b *strings.Builder) {
	bin := BinFor(c.To.Sub(c.From))
	n := int((c.To.Sub(c.From) + bin - 1) / bin)
	ok, bad := make([]int, n), make([]int, n)
	for _, p := range c.Provisions {
		i := min(max(int(p.End.Sub(c.From)/bin), 0), n-1)
		if p.OK {
			ok[i]++
		} else {
			bad[i]++
		}
	}
	top := 1
	for i := range ok {
		top = max(top, ok[i]+bad[i])
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">provisions ended per %s (green succeeded, red failed); blue line: success ratio; bands: annotations</text>`+"\n",
		plotX, timeY-10, short(bin))
	c.bands(b)
	bw := float64(plotW) * float64(bin) / float64(c.To.Sub(c.From))
	y0 := float64(timeY + timeH)
	for i := range ok {
		x0 := c.x(c.From.Add(time.Duration(i) * bin))
		hOK, hBad := float64(timeH)*float64(ok[i])/float64(top), float64(timeH)*float64(bad[i])/float64(top)
		if ok[i] > 0 {
			fmt.Fprintf(b, `<rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d succeeded</title></rect>`, x0, y0-hOK, max(bw-1, 0.5), hOK, colorOK, ok[i])
		}
		if bad[i] > 0 {
			fmt.Fprintf(b, `<rect class="failed" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d failed</title></rect>`, x0, y0-hOK-hBad, max(bw-1, 0.5), hBad, colorFail, bad[i])
		}
	}
	b.WriteString("\n")
	c.ratioLine(b, ok, bad, bw)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", plotX, timeY+timeH, plotX+plotW, timeY+timeH)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%d</text><text x="%d" y="%d" text-anchor="end">0</text>`,
		plotX-4, timeY+10, top, plotX-4, timeY+timeH)
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s">100%%</text><text x="%d" y="%d" fill="%s">0%%</text>`+"\n",
		plotX+plotW+4, timeY+10, colorRatio, plotX+plotW+4, timeY+timeH, colorRatio)
	c.timeAxis(b)
	c.legend(b)
}

// bands draws each annotation as a band over the plot and a bar in one
// of the lanes under it, with its kind, window and text as its title.
func (c Chart) bands(b *strings.Builder) {
	for i, a := range c.Annotations {
		x0, x1 := max(c.x(a.Start), plotX), min(c.x(a.End), plotX+plotW)
		w := max(x1-x0, 2)
		color := colorOf(a.Kind, c.Colors)
		title := html.EscapeString(c.describe(a))
		fmt.Fprintf(b, `<rect class="band" data-kind="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.2"><title>%s</title></rect>`+"\n",
			html.EscapeString(a.Kind), x0, timeY, w, timeH, color, title)
		fmt.Fprintf(b, `<rect class="lane" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			x0, timeY+timeH+4+(i%lanes)*(laneH+2), w, laneH, color, title)
	}
}

// describe is an annotation as its band's title says it.
func (c Chart) describe(a Annotation) string {
	s := a.Kind + " " + c.label(a.Start)
	if a.End.After(a.Start) {
		s += "–" + c.label(a.End)
	}
	if a.Site != "" {
		s += " site " + a.Site
	}
	if a.Text != "" {
		s += ": " + a.Text
	}
	return s
}

// ratioLine draws the success ratio of each bar that has provisions.
func (c Chart) ratioLine(b *strings.Builder, ok, bad []int, bw float64) {
	var pts []string
	for i := range ok {
		if n := ok[i] + bad[i]; n > 0 {
			x := c.x(c.From.Add(time.Duration(i)*BinFor(c.To.Sub(c.From)))) + bw/2
			y := float64(timeY+timeH) - float64(timeH)*float64(ok[i])/float64(n)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
	}
	if len(pts) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555">no provision ended in this window</text>`+"\n", plotX+plotW/2-100, timeY+timeH/2)
		return
	}
	fmt.Fprintf(b, `<polyline class="ratio" points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.Join(pts, " "), colorRatio)
}

// timeAxis labels the time axis under the lanes.
func (c Chart) timeAxis(b *strings.Builder) {
	y := timeY + timeH + 4 + lanes*(laneH+2) + 14
	for i := 0; i <= 6; i++ {
		t := c.From.Add(c.To.Sub(c.From) * time.Duration(i) / 6)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, c.x(t), y, c.label(t))
	}
	b.WriteString("\n")
}

// label is t as the time axis says it.
func (c Chart) label(t time.Time) string {
	if c.Relative {
		return t.Sub(c.From).Round(time.Second).String()
	}
	if c.To.Sub(c.From) > 24*time.Hour {
		return t.UTC().Format("Jan 2 15:04")
	}
	return t.UTC().Format("15:04:05")
}

// legend names the annotations' kinds in their colours.
func (c Chart) legend(b *strings.Builder) {
	var kinds []string
	for _, a := range c.Annotations {
		if !slices.Contains(kinds, a.Kind) {
			kinds = append(kinds, a.Kind)
		}
	}
	y, x := timeY+timeH+4+lanes*(laneH+2)+34, plotX
	for _, k := range kinds {
		if x > plotX+plotW-120 {
			break
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			x, y-9, colorOf(k, c.Colors), x+14, y, html.EscapeString(clip(k, 18)))
		x += 140
	}
	b.WriteString("\n")
}

// histogram draws the time to provision of the provisions that
// succeeded, with their p50, p90 and p99 marked.
func (c Chart) histogram(b *strings.Builder, s Summary) {
	y0 := timeY + timeH + histGap
	fmt.Fprintf(b, `<text x="%d" y="%d">time to provision of the %d that succeeded: p50 %s, p90 %s, p99 %s, max %s</text>`+"\n",
		plotX, y0-10, s.Provisions-s.Failed, roundD(s.P50), roundD(s.P90), roundD(s.P99), roundD(s.Max))
	if s.Max <= 0 {
		return
	}
	w := max(s.Max/histBars+1, time.Millisecond)
	counts := make([]int, histBars)
	for _, p := range c.Provisions {
		if p.OK {
			counts[min(int(p.Took()/w), histBars-1)]++
		}
	}
	top := max(slices.Max(counts), 1)
	bw := float64(plotW) / histBars
	for i, n := range counts {
		h := float64(histH) * float64(n) / float64(top)
		x0 := plotX + bw*float64(i)
		fmt.Fprintf(b, `<rect class="hist" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4"><title>%d took %s–%s</title></rect>`,
			x0, float64(y0+histH)-h, bw-2, h, n, roundD(w*time.Duration(i)), roundD(w*time.Duration(i+1)))
		if i%2 == 1 {
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`, x0+bw, y0+histH+12, roundD(w*time.Duration(i+1)))
		}
	}
	// Each quantile's label on its own line, so that close ones stay
	// legible.
	for i, q := range []struct {
		name string
		d    time.Duration
	}{{"p50", s.P50}, {"p90", s.P90}, {"p99", s.P99}} {
		x := plotX + float64(plotW)*float64(q.d)/float64(w*histBars)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/><text x="%.1f" y="%d" font-size="10">%s</text>`,
			x, y0, x, y0+histH, x+2, y0+10+12*i, q.name)
	}
	b.WriteString("\n")
}

// roundD rounds a duration for a label: to the second from 10 s on.
func roundD(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// short names a bar's width: "10s", "5m", "1h", "1d".
func short(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// clip cuts s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestProgressLines: where stderr is not a terminal, a transfer's
// progress is a line each time it passes a multiple of 5 percent,
// however often it is updated, and always its end.
func TestProgressLines(t *testing.T) {
	tests := map[string]struct {
		total int64
		steps []int64
		want  []string // the percents shown
	}{
		"every percent":     {total: 1000, steps: seq(0, 1000, 10), want: []string{"5", "10", "15", "20", "25", "30", "35", "40", "45", "50", "55", "60", "65", "70", "75", "80", "85", "90", "95", "100"}},
		"a jump to the end": {total: 1 << 30, steps: []int64{1 << 20, 1 << 30}, want: []string{"100"}},
		"uneven steps":      {total: 100, steps: []int64{3, 7, 12, 13, 29, 31, 99, 100}, want: []string{"7", "12", "29", "31", "99", "100"}},
		"empty":             {total: 0, steps: []int64{0}, want: []string{"100"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			p := newProgress(&buf, "push", tc.total)
			for _, s := range tc.steps {
				p.update(s)
			}
			p.end()
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var pct string
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "push:")), "%s", &pct)
				got = append(got, strings.TrimSuffix(pct, "%"))
				if !strings.Contains(l, "MiB/s") {
					t.Errorf("line %q shows no rate", l)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("percents shown %q, want %q", got, tc.want)
			}
		})
	}
}

func seq(from, to, step int64) []int64 {
	var out []int64
	for v := from; v <= to; v += step {
		out = append(out, v)
	}
	return out
}

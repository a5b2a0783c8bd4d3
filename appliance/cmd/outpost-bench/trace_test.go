package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	tests := map[string]struct {
		runs []float64
		want summary
	}{
		"none":                    {runs: nil, want: summary{}},
		"one":                     {runs: []float64{4}, want: summary{median: 4}},
		"three, any order":        {runs: []float64{12, 10, 11}, want: summary{median: 11, spreadPct: 2.0 / 11 * 100}},
		"even count: mean of two": {runs: []float64{1, 4, 2, 3}, want: summary{median: 2.5, spreadPct: 3 / 2.5 * 100}},
		"zero median: no spread":  {runs: []float64{0, 0, 0}, want: summary{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := append([]float64(nil), tc.runs...)
			if diff := cmp.Diff(tc.want, summarize(tc.runs), cmp.AllowUnexported(summary{})); diff != "" {
				t.Errorf("summarize(%v) (-want +got):\n%s", tc.runs, diff)
			}
			if !cmp.Equal(in, tc.runs) {
				t.Errorf("summarize reordered its input: %v, was %v", tc.runs, in)
			}
		})
	}
}

func TestOverheadPct(t *testing.T) {
	tests := map[string]struct{ off, on, want float64 }{
		"five percent": {off: 2, on: 2.1, want: 5},
		"cheaper on":   {off: 2, on: 1.9, want: -5},
		"same":         {off: 3, on: 3, want: 0},
		"no off":       {off: 0, on: 1, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := overheadPct(tc.off, tc.on); got < tc.want-1e-9 || got > tc.want+1e-9 {
				t.Errorf("overheadPct(%v, %v) = %v, want %v", tc.off, tc.on, got, tc.want)
			}
		})
	}
}

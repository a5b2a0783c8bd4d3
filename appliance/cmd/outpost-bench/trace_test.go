package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/tracing"
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

// TestStormTraceparent: each storm machine's workflow gets a valid
// traceparent of its own, the same on every run.
func TestStormTraceparent(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"m0001", "m0002", "m0003"} {
		tp := stormTraceparent(id)
		if err := tracing.ValidTraceparent(tp); err != nil {
			t.Fatalf("stormTraceparent(%s): %v", id, err)
		}
		if tp != stormTraceparent(id) {
			t.Errorf("stormTraceparent(%s) changes between calls", id)
		}
		tid := tracing.TraceID(tp)
		if other, ok := seen[tid]; ok {
			t.Errorf("machines %s and %s share trace %s", other, id, tid)
		}
		seen[tid] = id
	}
}

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// callgrindFile is the shape of a callgrind dump: a header with the
// summary, cost lines, the totals last.
const callgrindFile = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 375
cmd:  /usr/bin/python3 -c pass
part: 2

positions: line
events: %s
summary: %s

fl=(1) ???
fn=(1) 0x0000000000001100
0 51568142
%s`

func TestParseCallgrindTotal(t *testing.T) {
	tests := map[string]struct {
		events, summary, totals string
		want                    uint64
		wantErr                 string
	}{
		"instructions":           {events: "Ir", summary: "51568142", totals: "totals: 51568142\n", want: 51568142},
		"more events, Ir first":  {events: "Ir Dr Dw", summary: "100 20 3", totals: "totals: 100 20 3\n", want: 100},
		"not written to the end": {events: "Ir", summary: "51568142", totals: "", wantErr: errNoTotals.Error()},
		"totals ran on":          {events: "Ir", summary: "51568141", totals: "totals: 51568142\n", want: 51568141},
		"summary not a number":   {events: "Ir", summary: "many", totals: "totals: 5\n", wantErr: "summary: "},
		"Ir not counted":         {events: "Dr", summary: "5", totals: "totals: 5\n", wantErr: `first event is "Dr", not Ir`},
		"totals not a number":    {events: "Ir", summary: "", totals: "totals: many\n", wantErr: "totals: "},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := fmt.Sprintf(callgrindFile, tc.events, tc.summary, tc.totals)
			got, err := parseCallgrindTotal(strings.NewReader(in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseCallgrindTotal = %d, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseCallgrindTotal = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// A shell busy in a loop under callgrind: each dump writes a part of its
// own, dump returns the sum of the parts so far (it grows), and stop
// ends the process.
func TestCallgrindDump(t *testing.T) {
	lab.Require(t, "root", "ip", "valgrind", "callgrind_control", "/bin/sh")
	ns := lab.NewNetns(t, "callgrind")
	dir := t.TempDir()
	p, err := startCallgrind(ns, dir, filepath.Join(dir, "sh.log"), nil, "/bin/sh", "-c", "while :; do :; done")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	var totals []uint64
	for range 2 {
		total, err := p.dump(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		totals = append(totals, total)
	}
	if !(totals[0] > 0 && totals[1] > totals[0]) {
		t.Fatalf("dump totals %v, want a positive count that grows", totals)
	}
	var sum uint64
	for i := range 2 {
		part, err := readCallgrindTotal(fmt.Sprintf("%s.%d", p.out, i+1))
		if err != nil {
			t.Fatal(err)
		}
		sum += part
	}
	if sum != totals[1] {
		t.Errorf("the parts' files hold %d instructions, dump said %d", sum, totals[1])
	}
	p.stop()
	if !p.exited() {
		t.Error("the process still runs after stop")
	}
	if _, err := p.dump(t.Context()); err == nil || errors.Is(err, errNoTotals) {
		t.Errorf("dump after stop: %v, want an error saying it exited", err)
	}
}

package soak

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Report is what a soak measured: the figures of its BENCH line, every
// order, every fault with what it cost, the daemons' samples and the
// broken invariants.
type Report struct {
	Seed         uint64  `json:"seed"`
	Hours        float64 `json:"hours"`
	Machines     int     `json:"machines"`
	Provisions   int     `json:"provisions"` // provision orders ended
	Failed       int     `json:"failed"`     // of those, failed
	PerHour      float64 `json:"provisions_per_hour"`
	SuccessRatio float64 `json:"success_ratio"`
	// TTP is the time to provision of the provisions that succeeded,
	// from placing at central to the order's end at the site, in
	// seconds: quantiles and a histogram.
	TTP        Quantiles           `json:"time_to_provision_s"`
	Histogram  []Bucket            `json:"time_to_provision_histogram"`
	DupIPs     int                 `json:"dup_ips"`
	LostEvents int                 `json:"lost_events"`
	DupEvents  int                 `json:"dup_events"`
	Faults     []FaultCost         `json:"faults"`
	Orders     []Order             `json:"orders"`
	Samples    map[string][]Sample `json:"samples"`
	Violations []Violation         `json:"violations"`
	// VMs counts the real QEMU VMs among the machines; VMProvisions and
	// VMFailed are their provisions ended and failed (counted in
	// Provisions and Failed too), and VMBooted those after which the VM's
	// own test OS reached the metadata service (CountVMs).
	VMs          int                    `json:"vms"`
	VMProvisions int                    `json:"vm_provisions"`
	VMFailed     int                    `json:"vm_failed"`
	VMBooted     int                    `json:"vm_booted"`
	Extra        map[string]interface{} `json:"extra,omitempty"`
}

// Quantiles of a distribution, by the nearest-rank method.
type Quantiles struct {
	N                  int
	P50, P90, P99, Max float64
}

// Bucket is one bar of a histogram: how many values were under UpTo
// (and at least the previous bucket's UpTo).
type Bucket struct {
	UpTo  float64 `json:"up_to_s"`
	Count int     `json:"count"`
}

// FaultCost is a fault and what it cost: the orders that failed under
// it (charged to it), and the provisions that ran during it and how
// much longer they took than the median of those that ran under no
// fault.
type FaultCost struct {
	Fault
	FailedOrders []string `json:"failed_orders,omitempty"`
	// Overlapping counts the provisions that ended successfully and ran
	// during the fault; ExtraS is their median time to provision less
	// the median of the provisions that ran under no fault.
	Overlapping int     `json:"overlapping_provisions"`
	ExtraS      float64 `json:"extra_median_s"`
}

// NewReport computes a report from a run's schedule, its orders and
// the checker's findings; charged is CheckOrders' answer.
func NewReport(s *Schedule, elapsed time.Duration, machines int, c *Checker, charged map[string]Fault) *Report {
	r := &Report{Seed: s.Seed, Hours: elapsed.Hours(), Machines: machines, Orders: c.Orders(),
		Samples: c.Samples(), Violations: c.Violations()}
	var ok, clean []float64
	for _, o := range r.Orders {
		if o.Action != "provision" || o.State == "" {
			continue
		}
		r.Provisions++
		if o.State != "succeeded" {
			r.Failed++
			continue
		}
		d := (o.Ended - o.Placed).Seconds()
		ok = append(ok, d)
		if !duringAny(s.Faults, o) {
			clean = append(clean, d)
		}
	}
	if r.Provisions > 0 {
		r.SuccessRatio = float64(r.Provisions-r.Failed) / float64(r.Provisions)
	}
	if r.Hours > 0 {
		r.PerHour = float64(r.Provisions) / r.Hours
	}
	r.TTP = quantiles(ok)
	r.Histogram = histogram(ok)
	r.DupIPs = c.Count(InvDupAddress) + c.Count(InvLeaseTable)
	base := quantiles(clean).P50
	for _, f := range s.Faults {
		fc := FaultCost{Fault: f}
		for id, g := range charged {
			if g == f {
				fc.FailedOrders = append(fc.FailedOrders, id)
			}
		}
		slices.Sort(fc.FailedOrders)
		var during []float64
		for _, o := range r.Orders {
			if o.Action == "provision" && o.State == "succeeded" && f.Start <= o.Ended && o.Placed <= f.End {
				during = append(during, (o.Ended - o.Placed).Seconds())
			}
		}
		fc.Overlapping = len(during)
		if len(during) > 0 && len(clean) > 0 {
			fc.ExtraS = quantiles(during).P50 - base
		}
		r.Faults = append(r.Faults, fc)
	}
	return r
}

func duringAny(faults []Fault, o Order) bool {
	for _, f := range faults {
		if f.Start <= o.Ended && o.Placed <= f.End {
			return true
		}
	}
	return false
}

func quantiles(v []float64) Quantiles {
	if len(v) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := func(p float64) float64 {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Quantiles{N: len(s), P50: rank(0.5), P90: rank(0.9), P99: rank(0.99), Max: s[len(s)-1]}
}

// histogram buckets v into 20 bars from 0 to its maximum.
func histogram(v []float64) []Bucket {
	if len(v) == 0 {
		return nil
	}
	top := slices.Max(v)
	const bars = 20
	w := max(top/bars, 0.001)
	out := make([]Bucket, bars)
	for i := range out {
		out[i].UpTo = w * float64(i+1)
	}
	for _, x := range v {
		out[min(int(x/w), bars-1)].Count++
	}
	return out
}

// CountVMs counts the provisions of the machines vms (real VMs) among
// the report's orders, and takes booted, how many of them the VMs' test
// OS confirmed.
func (r *Report) CountVMs(vms []string, booted int) {
	r.VMs, r.VMBooted = len(vms), booted
	for _, o := range r.Orders {
		if o.Action != "provision" || o.State == "" || !slices.Contains(vms, o.Machine) {
			continue
		}
		r.VMProvisions++
		if o.State != "succeeded" {
			r.VMFailed++
		}
	}
}

// BenchLine is the report's BENCH line.
func (r *Report) BenchLine() string {
	return fmt.Sprintf("BENCH soak hours=%.3f provisions=%d failed=%d success_ratio=%.3f dup_ips=%d lost_events=%d dup_events=%d p99_s=%.1f faults=%d vms=%d vm_provisions=%d vm_failed=%d vm_booted=%d",
		r.Hours, r.Provisions, r.Failed, r.SuccessRatio, r.DupIPs, r.LostEvents, r.DupEvents, r.TTP.P99, len(r.Faults),
		r.VMs, r.VMProvisions, r.VMFailed, r.VMBooted)
}

// Write writes the report into dir as soak.json and soak.svg and
// returns their paths.
func (r *Report) Write(dir string) (jsonPath, svgPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	jsonPath, svgPath = filepath.Join(dir, "soak.json"), filepath.Join(dir, "soak.svg")
	if err := os.WriteFile(jsonPath, raw, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(svgPath, []byte(r.SVG()), 0o644); err != nil {
		return "", "", err
	}
	return jsonPath, svgPath, nil
}

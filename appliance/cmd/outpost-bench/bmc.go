package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// bmcCount is how many simulated BMCs bmc.cycle power-cycles.
const bmcCount = 200

// benchBMCCycle power-cycles bmcCount ipmi_sim BMCs at once through one
// appliance: a power_cycle order per machine, all placed together, run by
// the leader's job runner under its site-wide limit (bmc.concurrency, 32
// by default). seconds is from the first order to the last one ended; ok
// counts the orders that succeeded and the BMCs that report power on.
func benchBMCCycle(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-bmc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildApplianced(ctx, dir)
	if err != nil {
		return err
	}
	var line string
	r := lab.NewRunner(ctx, "bench-bmc", discardLog{log})
	err = r.Run(func(t lab.T) {
		s := labsite.Start(t, labsite.Config{Applianced: bin, Images: lab.Images{Dir: t.TempDir()}, LogLevel: "warn",
			Args: []string{"-bmc-poll-interval", "0s"}})
		sims := make([]*lab.IPMISim, bmcCount)
		for i := range sims {
			sims[i] = lab.StartIPMISim(t, lab.IPMISimConfig{Name: fmt.Sprintf("b%03d", i), Netns: s.NS})
			m := labsite.Machine(fmt.Sprintf("m%03d", i), fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff))
			m.BMC = &store.BMC{Address: sims[i].Addr, Driver: "ipmi", Username: sims[i].Username, Password: sims[i].Password}
			s.Put(t, m)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i := range sims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := &store.Order{ID: fmt.Sprintf("cycle-%03d", i), Action: store.OrderPowerCycle, MachineID: fmt.Sprintf("m%03d", i)}
				if err := s.API.Put(ctx, "orders", o.ID, o, nil); err != nil {
					t.Errorf("order %s: %v", o.ID, err)
				}
			}()
		}
		wg.Wait()
		var orders []*store.Order
		err := labsite.Poll(ctx, 10*time.Minute, func() error {
			if err := s.API.List(ctx, "orders", &orders); err != nil {
				return err
			}
			for _, o := range orders {
				if !o.Done() {
					return fmt.Errorf("order %s is %s", o.ID, o.State)
				}
			}
			return nil
		})
		secs := time.Since(start).Seconds()
		if err != nil {
			t.Fatalf("the orders did not end: %v", err)
		}
		succeeded := map[string]bool{}
		for _, o := range orders {
			if o.State == store.OrderSucceeded {
				succeeded[o.MachineID] = true
			} else {
				log.Warn("bmc.cycle: order failed", "order", o.ID, "reason", o.Reason)
			}
		}
		ok := 0
		for i, sim := range sims {
			if st, err := sim.PowerState(ctx); err == nil && st == "on" && succeeded[fmt.Sprintf("m%03d", i)] {
				ok++
			}
		}
		line = fmt.Sprintf("BENCH bmc.cycle bmcs=%d ok=%d seconds=%.1f", bmcCount, ok, secs)
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

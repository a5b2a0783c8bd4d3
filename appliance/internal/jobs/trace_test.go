package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/jobs"
	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/tracing"
)

// traceSite is the runner's site over a plain store: it leads, starts
// each job once and records the results it is given.
type traceSite struct {
	mu      sync.Mutex
	started map[string]bool
	results map[string]site.JobResult
}

func (s *traceSite) IsReadyLeader() bool { return true }
func (s *traceSite) Now() time.Time      { return time.Now() }
func (s *traceSite) StartJob(_ context.Context, id string, _ int, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started[id] {
		return errors.New("started already")
	}
	s.started[id] = true
	return nil
}
func (s *traceSite) TakeOverJob(ctx context.Context, id string, attempt int, deadline time.Time) error {
	return s.StartJob(ctx, id, attempt, deadline)
}
func (s *traceSite) FinishJob(_ context.Context, id string, _ int, res site.JobResult) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results[id] = res
	return nil
}
func (s *traceSite) SetPower(context.Context, string, string, uint64) error { return nil }
func (s *traceSite) RecordBMCCertificate(context.Context, string, string, string) error {
	return nil
}

func (s *traceSite) result(id string) (site.JobResult, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[id]
	return r, ok
}

// Each execution of a job with a traceparent is a span bmc.<action>,
// child of it, naming the machine, order, job and attempt; a failed
// job's span is failed with its error; the BMC's password is in no
// span; a job without a traceparent records nothing.
func TestJobSpans(t *testing.T) {
	rec := tracetest.Start(t)
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var objs []store.Object
	for _, id := range []string{"m1", "m2", "m3"} {
		m := apptest.Machine(id, len(objs)+1)
		m.BMC = &store.BMC{Address: "198.18.1." + id[1:] + ":623", Driver: "ipmi", Username: "admin", SealedPassword: key.Seal([]byte(password), store.BMCPasswordAD(id))}
		objs = append(objs, m)
	}
	apptest.Put(t, db, now, objs...)
	err = db.Update(func(tx *store.Tx) error {
		for i, j := range []*store.Job{
			{ID: "o1-power", MachineID: "m1", Action: store.JobPowerCycle, Order: "o1", Traceparent: tp, State: store.JobPending},
			{ID: "o2-power", MachineID: "m2", Action: store.JobPowerOn, Order: "o2", Traceparent: tp, State: store.JobPending},
			{ID: "o3-power", MachineID: "m3", Action: store.JobPowerOn, Order: "o3", State: store.JobPending},
		} {
			if err := tx.UnsafePutJob(j, store.Write{Index: uint64(100 + i), Time: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &traceSite{started: map[string]bool{}, results: map[string]site.JobResult{}}
	bmc := &fakeBMC{dead: map[string]bool{"198.18.1.2:623": true}, power: map[string]string{}}
	r := jobs.New(jobs.Config{Site: ts, Store: db, Key: key, BMC: bmc, Tick: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for _, id := range []string{"o1-power", "o2-power", "o3-power"} {
		for {
			if _, ok := ts.result(id); ok {
				break
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-t.Context().Done():
				t.Fatalf("job %s not run", id)
			}
		}
	}
	cancel()
	<-done

	spans := rec.Spans(t, tp)
	byName := map[string]tracing.Span{}
	for _, s := range spans {
		byName[s.Name] = s
		for k, v := range s.Attrs {
			if strings.Contains(v, password) {
				t.Errorf("span %s attribute %s holds the BMC password", s.Name, k)
			}
		}
	}
	if len(spans) != 3 {
		t.Errorf("%d spans in the trace, want the root and two jobs': %+v", len(spans), spans)
	}
	parent := tracetest.SpanID(tp)
	cycle, ok := byName["bmc.power_cycle"]
	if !ok || cycle.Parent != parent || cycle.Error != "" || cycle.Attrs[tracing.AttrMachine] != "m1" ||
		cycle.Attrs[tracing.AttrOrder] != "o1" || cycle.Attrs["outpost.job"] != "o1-power" || cycle.Attrs["outpost.attempt"] != "1" ||
		cycle.Attrs["outpost.power"] != "on" || cycle.Attrs["outpost.bmc.address"] != "198.18.1.1:623" {
		t.Errorf("power cycle's span: %+v", cycle)
	}
	on, ok := byName["bmc.power_on"]
	if !ok || on.Parent != parent || on.Attrs[tracing.AttrMachine] != "m2" || !strings.Contains(on.Error, "no answer after 3 attempts") {
		t.Errorf("failed power on's span: %+v", on)
	}
}

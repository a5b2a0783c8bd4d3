package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/jobs"
	"github.com/outposthq/outpost/appliance/internal/store"
)

const password = "bmc-secret-d8c1"

// fakeBMC records what it is asked, and fails for the addresses in dead.
type fakeBMC struct {
	mu    sync.Mutex
	calls []string
	dead  map[string]bool
	power map[string]string
	// stale holds, per machine, readings PowerState returns before the
	// true one, as a BMC does for a moment after a power action.
	stale map[string][]string
	reads map[string]int
}

func (f *fakeBMC) Do(ctx context.Context, t jobs.Target, j *store.Job) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s", t.Machine, j.Action, t.Password))
	if f.dead[t.Address] {
		return "", fmt.Errorf("%s: %s: no answer after 3 attempts", t.Address, j.Action)
	}
	switch j.Action {
	case store.JobBootPXE:
		return "", fmt.Errorf("%s: %w: Invalid data field", t.Address, jobs.ErrBootDeviceRefused)
	case store.JobPowerOff:
		f.power[t.Machine] = "off"
	default:
		f.power[t.Machine] = "on"
	}
	return f.power[t.Machine], nil
}

func (f *fakeBMC) PowerState(ctx context.Context, t jobs.Target) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead[t.Address] {
		return "", errors.New("no answer")
	}
	if f.reads == nil {
		f.reads = map[string]int{}
	}
	f.reads[t.Machine]++
	if q := f.stale[t.Machine]; len(q) > 0 {
		f.stale[t.Machine] = q[1:]
		return q[0], nil
	}
	return f.power[t.Machine], nil
}

func (f *fakeBMC) flip(machine, power string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.power[machine] = power
}

func setup(t *testing.T, bmc jobs.BMC) (*apptest.Node, *client.Client, *apptest.SyncBuffer) {
	t.Helper()
	n, c := startNode(t)
	logs := startRunner(t, n, bmc, 200*time.Millisecond)
	return n, c, logs
}

// startRunner runs a job runner on n, polling power every poll, until
// the test ends, and returns its log.
func startRunner(t *testing.T, n *apptest.Node, bmc jobs.BMC, poll time.Duration) *apptest.SyncBuffer {
	logs := &apptest.SyncBuffer{}
	r := jobs.New(jobs.Config{Site: n.Site, Store: n.DB, Key: n.Key, BMC: bmc, PollInterval: poll, Tick: 50 * time.Millisecond,
		TakeOverAfter: 300 * time.Millisecond,
		Log:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return logs
}

// startNode starts a node with machines m1 and m2, each with a BMC.
func startNode(t *testing.T) (*apptest.Node, *client.Client) {
	t.Helper()
	n := apptest.Start(t)
	c := client.New(n.URL, n.Token)
	for _, m := range []string{"m1", "m2"} {
		machine := &store.Machine{ID: m, Interfaces: []store.Interface{{MAC: "02:00:00:00:00:0" + m[1:]}},
			BMC: &store.BMC{Address: "198.18.1." + m[1:] + ":623", Username: "admin", Password: password}}
		if err := c.Put(t.Context(), "machines", m, machine, nil); err != nil {
			t.Fatal(err)
		}
	}
	return n, c
}

func waitOrder(t *testing.T, c *client.Client, id string) *store.Order {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var o store.Order
		if err := c.Get(t.Context(), "orders", id, &o); err == nil && o.Done() {
			return &o
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("order %s did not end", id)
	return nil
}

func TestPowerOrders(t *testing.T) {
	bmc := &fakeBMC{dead: map[string]bool{"198.18.1.2:623": true}, power: map[string]string{}}
	n, c, logs := setup(t, bmc)
	for _, o := range []*store.Order{
		{ID: "on1", Action: store.OrderPowerOn, MachineID: "m1"},
		{ID: "on2", Action: store.OrderPowerOn, MachineID: "m2"},
	} {
		if err := c.Put(t.Context(), "orders", o.ID, o, nil); err != nil {
			t.Fatal(err)
		}
	}
	if o := waitOrder(t, c, "on1"); o.State != store.OrderSucceeded {
		t.Errorf("on1: %s %q", o.State, o.Reason)
	}
	o := waitOrder(t, c, "on2")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, "no answer") {
		t.Errorf("on2 (dead BMC): %s %q, want failed saying the BMC did not answer", o.State, o.Reason)
	}
	var m store.Machine
	if err := c.Get(t.Context(), "machines", "m1", &m); err != nil || m.Power != "on" {
		t.Errorf("m1 power %q (%v), want on", m.Power, err)
	}
	// The BMC got the password in the clear; nothing else did.
	bmc.mu.Lock()
	if len(bmc.calls) == 0 || !strings.HasSuffix(bmc.calls[0], password) {
		t.Errorf("BMC calls %q: want the clear password", bmc.calls)
	}
	bmc.mu.Unlock()

	// A change of power the poller sees is recorded, with an event.
	bmc.flip("m1", "off")
	deadline := time.Now().Add(30 * time.Second)
	for m.Power != "off" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		c.Get(t.Context(), "machines", "m1", &m)
	}
	if m.Power != "off" {
		t.Errorf("the poller did not record m1's power off")
	}
	events, _, err := c.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, e := range events {
		fmt.Fprintf(&all, "%s %s %v\n", e.Kind, e.Message, e.Fields)
	}
	for _, want := range []string{"power.on", "power.off", "bmc.job.failed", "order.failed"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no %s event in:\n%s", want, all.String())
		}
	}
	for what, text := range map[string]string{"events": all.String(), "the runner's log": logs.String(), "the node's log": n.Logs.String()} {
		if strings.Contains(text, password) {
			t.Errorf("the BMC password is in %s", what)
		}
	}
}

// TestTakeOverOrphanedJob: the jobs an earlier leader left running (it
// died after StartJob) are taken over by the new leader's runner before
// their deadline (3 minutes off), as their next attempt, and the events
// say so. The power_on the earlier attempt had done (the power is on)
// is not done again; the power_off it had not done is.
func TestTakeOverOrphanedJob(t *testing.T) {
	n, c := startNode(t)
	bmc := &fakeBMC{power: map[string]string{"m1": "on", "m2": "on"}}
	for _, o := range []*store.Order{
		{ID: "on1", Action: store.OrderPowerOn, MachineID: "m1"},
		{ID: "off2", Action: store.OrderPowerOff, MachineID: "m2"},
	} {
		if err := c.Put(t.Context(), "orders", o.ID, o, nil); err != nil {
			t.Fatal(err)
		}
		// The earlier leader's attempt, which never finished.
		if err := n.Site.StartJob(t.Context(), o.ID+"-power", 1, time.Now().Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	startRunner(t, n, bmc, 0)
	for _, id := range []string{"on1", "off2"} {
		if o := waitOrder(t, c, id); o.State != store.OrderSucceeded {
			t.Errorf("%s: %s %q, want succeeded", id, o.State, o.Reason)
		}
		var j store.Job
		if err := c.Get(t.Context(), "jobs", id+"-power", &j); err != nil || j.Attempt != 2 {
			t.Errorf("job %s-power: attempt %d (%v), want 2, the takeover", id, j.Attempt, err)
		}
	}
	bmc.mu.Lock()
	calls := strings.Join(bmc.calls, "\n")
	bmc.mu.Unlock()
	if strings.Contains(calls, "m1 power_on") || !strings.Contains(calls, "m2 power_off") {
		t.Errorf("BMC calls:\n%s\nwant m2's power_off alone (m1 was on already)", calls)
	}
	events, _, err := c.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var taken, done int
	for _, e := range events {
		if strings.Contains(e.Message, "taken over from attempt 1, which an earlier leader left running (attempt 2)") {
			taken++
		}
		if strings.Contains(e.Message, "attempt 1, which an earlier leader left running, had done it: the power is on") {
			done++
		}
	}
	if taken != 2 || done != 1 {
		t.Errorf("%d takeover events, %d saying the earlier attempt had done it; want 2 and 1", taken, done)
	}
}

// A reading of the old state just after a power job (ipmi_sim reports
// "on" while its VM shuts down) does not undo what the job recorded: a
// change takes two readings in a row.
func TestPowerPollIgnoresOneStaleReading(t *testing.T) {
	bmc := &fakeBMC{power: map[string]string{}, stale: map[string][]string{}}
	_, c, _ := setup(t, bmc)
	if err := c.Put(t.Context(), "orders", "off1", &store.Order{ID: "off1", Action: store.OrderPowerOff, MachineID: "m1"}, nil); err != nil {
		t.Fatal(err)
	}
	bmc.mu.Lock()
	bmc.stale["m1"] = []string{"on"}
	bmc.mu.Unlock()
	if o := waitOrder(t, c, "off1"); o.State != store.OrderSucceeded {
		t.Fatalf("off1: %s %q", o.State, o.Reason)
	}
	// Wait for the stale reading and two more polls of m1.
	reads := func() (n int, left int) {
		bmc.mu.Lock()
		defer bmc.mu.Unlock()
		return bmc.reads["m1"], len(bmc.stale["m1"])
	}
	deadline := time.Now().Add(30 * time.Second)
	for n, left := reads(); (left > 0 || n < 3) && time.Now().Before(deadline); n, left = reads() {
		time.Sleep(50 * time.Millisecond)
	}
	if n, left := reads(); left > 0 || n < 3 {
		t.Fatalf("the poller read m1 %d times, %d stale readings left", n, left)
	}
	var m store.Machine
	if err := c.Get(t.Context(), "machines", "m1", &m); err != nil || m.Power != "off" {
		t.Errorf("m1 power %q (%v), want off: one stale reading undid the job", m.Power, err)
	}
	events, _, err := c.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind == "power.on" {
			t.Errorf("event %s %s: the stale reading was recorded", e.Kind, e.Message)
		}
	}
}

func TestProvisionOrderJobs(t *testing.T) {
	bmc := &fakeBMC{power: map[string]string{}}
	_, c, _ := setup(t, bmc)
	for _, o := range []struct {
		plural, key string
		obj         any
	}{
		{"subnets", "lab", &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}}},
		// A file of the artifact directory: the order does not wait for
		// the site to pull it.
		{"images", "img", &store.Image{Name: "img", Type: store.ImageOS, File: "img.raw.gz", Format: "raw.gz", SHA256: strings.Repeat("ab", 32)}},
		{"templates", "install", &store.Template{Name: "install", Actions: []store.Action{
			{Name: "w", Type: "image.write", Args: map[string]string{"device": "/dev/sda", "image": "{{ .image }}"}}}}},
		{"orders", "p1", &store.Order{ID: "p1", Action: store.OrderProvision, MachineID: "m1", Image: "img"}},
	} {
		if err := c.Put(t.Context(), o.plural, o.key, o.obj, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The jobs run in order: the boot device (refused: a warning), then
	// the power cycle; the order waits for its workflow.
	deadline := time.Now().Add(30 * time.Second)
	var cycle store.Job
	for time.Now().Before(deadline) {
		if err := c.Get(t.Context(), "jobs", "p1-cycle", &cycle); err == nil && cycle.Done() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pxe store.Job
	c.Get(t.Context(), "jobs", "p1-pxe", &pxe)
	if pxe.State != store.JobSucceeded || !strings.Contains(pxe.Warning, "refused") || cycle.State != store.JobSucceeded {
		t.Errorf("jobs: pxe %s (%q), cycle %s", pxe.State, pxe.Warning, cycle.State)
	}
	bmc.mu.Lock()
	got := strings.Join(bmc.calls, "; ")
	bmc.mu.Unlock()
	if got != "m1 boot_pxe "+password+"; m1 power_cycle "+password {
		t.Errorf("BMC calls: %s", got)
	}
	var o store.Order
	c.Get(t.Context(), "orders", "p1", &o)
	if o.State != store.OrderRunning {
		t.Errorf("order %s, want running until its workflow ends", o.State)
	}
}

// certBMC is a Redfish BMC as the runner sees it through package bmc:
// it refuses a target that does not name the certificate it presents.
type certBMC struct {
	mu     sync.Mutex
	cert   string   // the fingerprint it presents
	pinned []string // the fingerprint each call was given
	power  string
}

func (b *certBMC) check(t jobs.Target) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.Driver != "redfish" {
		return nil // IPMI: no certificate
	}
	b.pinned = append(b.pinned, t.Fingerprint)
	if t.Fingerprint != b.cert {
		return &jobs.CertificateError{Fingerprint: b.cert,
			Err: fmt.Errorf("bmc %s: certificate not trusted: the BMC presented certificate %s; the password was not sent", t.Address, b.cert)}
	}
	return nil
}

func (b *certBMC) Do(ctx context.Context, t jobs.Target, j *store.Job) (string, error) {
	if err := b.check(t); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power = "on"
	return "on", nil
}

func (b *certBMC) PowerState(ctx context.Context, t jobs.Target) (string, error) {
	if err := b.check(t); err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.power, nil
}

// TestUntrustedCertificate: a job on a BMC whose certificate is not
// accepted fails saying how to accept it, and the certificate is recorded
// with the machine (by the job and by the poller, once); after the
// operator accepts it, the runner gives it to the BMC and the job
// succeeds; a changed certificate is refused and recorded again.
func TestUntrustedCertificate(t *testing.T) {
	first, second := "sha256:"+strings.Repeat("1f", 32), "sha256:"+strings.Repeat("2e", 32)
	bmc := &certBMC{cert: first, power: "off"}
	n, c, _ := setup(t, bmc)
	redfish := &store.Machine{ID: "r1", Interfaces: []store.Interface{{MAC: "02:00:00:00:01:01"}},
		BMC: &store.BMC{Address: "198.18.1.9", Driver: "redfish", Username: "admin", Password: password}}
	if err := c.Put(t.Context(), "machines", "r1", redfish, nil); err != nil {
		t.Fatal(err)
	}
	order := func(id string) *store.Order {
		t.Helper()
		if err := c.Put(t.Context(), "orders", id, &store.Order{ID: id, Action: store.OrderPowerOn, MachineID: "r1"}, nil); err != nil {
			t.Fatal(err)
		}
		return waitOrder(t, c, id)
	}
	certOf := func() store.BMCCertificate {
		var m store.Machine
		if err := c.Get(t.Context(), "machines", "r1", &m); err != nil || m.BMC.Certificate == nil {
			return store.BMCCertificate{}
		}
		return *m.BMC.Certificate
	}

	o := order("on-1")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, first) || !strings.Contains(o.Reason, "outpost bmc accept-certificate r1 "+first) {
		t.Fatalf("order on-1: %s %q, want failed naming %s and how to accept it", o.State, o.Reason, first)
	}
	if got := certOf(); got != (store.BMCCertificate{Presented: first}) {
		t.Errorf("machine's certificate %+v, want %s presented", got, first)
	}

	if err := c.Do(t.Context(), "POST", "/v1/machines/r1/bmc/accept-certificate", map[string]string{"fingerprint": first}, nil); err != nil {
		t.Fatal(err)
	}
	if o := order("on-2"); o.State != store.OrderSucceeded {
		t.Fatalf("order on-2 after accepting: %s %q", o.State, o.Reason)
	}

	// The BMC's certificate changes: the poller sees it first, or a job.
	bmc.mu.Lock()
	bmc.cert = second
	bmc.mu.Unlock()
	if o := order("on-3"); o.State != store.OrderFailed || !strings.Contains(o.Reason, second) {
		t.Errorf("order on-3 after the change: %s %q, want failed naming %s", o.State, o.Reason, second)
	}
	if got := certOf(); got != (store.BMCCertificate{Accepted: first, Presented: second}) {
		t.Errorf("machine's certificate %+v, want %s accepted and %s presented", got, first, second)
	}
	events, _, err := c.Events(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, e := range events {
		if e.Kind == "bmc.certificate_refused" {
			refused++
			t.Logf("event %d at %d: %s", e.Seq, e.Index, e.Message)
			if e.MachineID != "r1" {
				t.Errorf("a certificate recorded for %s, driven by IPMI", e.MachineID)
			}
		}
		if strings.Contains(e.Message, password) {
			t.Errorf("event %s shows the password", e.Kind)
		}
	}
	if refused != 2 {
		t.Errorf("%d bmc.certificate_refused events, want 2 (one per certificate, however often polled)", refused)
	}
	// The accepted certificate was given to the BMC; the changed one
	// never was: only an operator accepts.
	bmc.mu.Lock()
	pinned := slices.Clone(bmc.pinned)
	bmc.mu.Unlock()
	if !slices.Contains(pinned, first) || slices.Contains(pinned, second) {
		t.Errorf("the BMC was given the pins %q, want %s and never %s", slices.Compact(pinned), first, second)
	}
	if strings.Contains(n.Logs.String(), password) {
		t.Error("the password is in the node's log")
	}
}

// togglingSite is a node's site whose leadership the test sets.
type togglingSite struct {
	jobs.Site
	leads atomic.Bool
}

func (s *togglingSite) IsReadyLeader() bool { return s.leads.Load() && s.Site.IsReadyLeader() }

// blockingBMC blocks its first Do until its context ends, and says so;
// later calls power the machine on.
type blockingBMC struct {
	fakeBMC
	began, gaveUp chan struct{}
	calls         atomic.Int32
}

func (b *blockingBMC) Do(ctx context.Context, t jobs.Target, j *store.Job) (string, error) {
	if b.calls.Add(1) == 1 {
		close(b.began)
		<-ctx.Done()
		close(b.gaveUp)
		return "", ctx.Err()
	}
	return b.fakeBMC.Do(ctx, t, j)
}

// TestDeposedLeaderGivesUp: a node that stops leading stops its BMC call
// and records nothing (no failure of the job or its order); once it
// leads again it takes the job over as the next attempt, which
// completes the order.
func TestDeposedLeaderGivesUp(t *testing.T) {
	n, c := startNode(t)
	s := &togglingSite{Site: n.Site}
	s.leads.Store(true)
	bmc := &blockingBMC{fakeBMC: fakeBMC{power: map[string]string{"m1": "off"}}, began: make(chan struct{}), gaveUp: make(chan struct{})}
	r := jobs.New(jobs.Config{Site: s, Store: n.DB, Key: n.Key, BMC: bmc, Tick: 50 * time.Millisecond, TakeOverAfter: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := c.Put(t.Context(), "orders", "on1", &store.Order{ID: "on1", Action: store.OrderPowerOn, MachineID: "m1"}, nil); err != nil {
		t.Fatal(err)
	}
	<-bmc.began
	s.leads.Store(false)
	select {
	case <-bmc.gaveUp:
	case <-t.Context().Done():
		t.Fatal("the deposed leader's BMC call went on")
	}
	var j store.Job
	if err := c.Get(t.Context(), "jobs", "on1-power", &j); err != nil || j.State != store.JobRunning || j.Attempt != 1 {
		t.Fatalf("job after the leader gave it up: %s attempt %d (%v), want attempt 1 still running, nothing recorded", j.State, j.Attempt, err)
	}
	s.leads.Store(true)
	if o := waitOrder(t, c, "on1"); o.State != store.OrderSucceeded {
		t.Fatalf("on1: %s %q, want succeeded", o.State, o.Reason)
	}
	if err := c.Get(t.Context(), "jobs", "on1-power", &j); err != nil || j.Attempt != 2 {
		t.Errorf("job: attempt %d (%v), want 2, the takeover", j.Attempt, err)
	}
}

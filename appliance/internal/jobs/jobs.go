// Package jobs runs the site's BMC jobs and watches its machines' power,
// on the Raft leader alone.
//
// A job is committed before it runs (an order, or the API, stored it).
// The leader proposes StartJob, which the site accepts only for a
// pending job or a running one whose deadline has passed; only then does
// it call the BMC, within that deadline; then it proposes FinishJob with
// the result. So a job survives a restart or a leader change (the new
// leader starts it again once its deadline has passed, as a new attempt)
// and never runs twice at once: whoever ran it before has given up by its
// deadline. The jobs of one machine run one after another, in the order
// their After fields give.
//
// A leader need not wait for the deadline of a job an earlier leader
// left running (it died, or was deposed): every job running that this
// node did not start was started under an earlier term. Once it has led
// for Config.TakeOverAfter, it takes such a job over (TakeOverJob) as
// its next attempt. That is safe because a node stops its executions
// (and reports nothing) within a Tick of no longer leading, well within
// TakeOverAfter. A power action the earlier attempt did complete is not
// done twice where it matters: power_on and power_off find the power
// already as asked and succeed without acting; a power_cycle whose
// machine has since started its workflow's installer (an action started
// after the earlier attempt did) succeeds without cycling it again.
//
// A Redfish BMC whose certificate is not trusted gets no password (package
// bmc): its job fails saying how to accept the certificate, and the
// runner records the certificate with the machine (RecordBMCCertificate,
// once per certificate), from a job or a power poll, so that the operator
// sees it and can accept it.
//
// The poller reads each machine's power state at a modest rate and
// records changes (SetPower), which become events. A change is recorded
// only when two readings in a row agree on it: a BMC goes on reporting
// the old state for a moment after a power action (ipmi_sim says "on"
// while its VM is still shutting down), and one such reading would
// undo what the job just recorded.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

// Target is a machine's BMC with its password in the clear, for one
// operation. Its String hides the password.
type Target struct {
	Machine  string
	Address  string
	Driver   string
	Username string
	Password string
	// Fingerprint is the Redfish certificate an operator accepted for
	// the BMC: the password goes to no other (package bmc).
	Fingerprint string

	presented string // the certificate last refused, as the store has it
}

func (t Target) String() string {
	return fmt.Sprintf("BMC %s of %s (%s, user %s)", t.Address, t.Machine, t.Driver, t.Username)
}

// BMC performs operations on BMCs, with their timeouts, retries,
// per-BMC serialization and the site-wide limit (package bmc does).
type BMC interface {
	// Do performs a job's action and returns the power state it left
	// ("on", "off"; "" if unknown, as after boot_pxe).
	Do(ctx context.Context, t Target, j *store.Job) (power string, err error)
	// PowerState reads the power state.
	PowerState(ctx context.Context, t Target) (string, error)
}

// ErrBootDeviceRefused is what a BMC returns, wrapped, when it refuses to
// set the boot device: the job then succeeds with a warning.
var ErrBootDeviceRefused = errors.New("the BMC refused to set the boot device")

// CertificateError is what a BMC returns, wrapped, when the certificate
// its Redfish service presented is not trusted (neither accepted for it
// nor vouched for by the site's BMC CA): the password was not sent.
type CertificateError struct {
	// Fingerprint is the certificate's (store.NormalizeFingerprint's
	// form).
	Fingerprint string
	Err         error
}

func (e *CertificateError) Error() string { return e.Err.Error() }
func (e *CertificateError) Unwrap() error { return e.Err }

// Site is what the runner needs of its site: whether this node leads,
// and the proposals that record jobs, power and the certificates BMCs
// presented that were not trusted (package site's proposer).
type Site interface {
	IsReadyLeader() bool
	// Now is the site's clock, which stored deadlines are set by and
	// compared with.
	Now() time.Time
	StartJob(ctx context.Context, id string, attempt int, deadline time.Time) error
	TakeOverJob(ctx context.Context, id string, attempt int, deadline time.Time) error
	FinishJob(ctx context.Context, id string, attempt int, res site.JobResult) error
	SetPower(ctx context.Context, machineID, power string, version uint64) error
	RecordBMCCertificate(ctx context.Context, machineID, address, fingerprint string) error
}

// Config configures a Runner.
type Config struct {
	Site Site
	// Store is this node's store, which jobs and machines are read from.
	Store *store.DB
	// Key opens the sealed BMC passwords.
	Key *seal.Key
	BMC BMC
	Log *slog.Logger
	// JobTimeout bounds one execution of a job, retries included; the
	// job's deadline is this much after it starts. Default 3 minutes.
	JobTimeout time.Duration
	// PollInterval is how often each machine's power state is read;
	// 0 turns the poller off. Default 30 seconds.
	PollInterval time.Duration
	// Tick is how often the leader looks for jobs to start, besides
	// every change of the store. Default 1 second.
	Tick time.Duration
	// TakeOverAfter is how long a node must have led before it takes
	// over the jobs an earlier leader left running: long enough for a
	// deposed leader to have stepped down (Raft's leader lease) and, a
	// Tick later, given its executions up. Default 3 seconds.
	TakeOverAfter time.Duration
}

// Runner runs jobs and polls power on the leader.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	inflight map[string]bool // machine ids with a job running here
	// ledSince is when this node last became the ready leader (zero
	// while it does not lead); Run's goroutine alone uses it.
	ledSince time.Time

	// unconfirmed holds, per machine, a reading that differed from the
	// store at the poll before, awaiting a second to agree (poller only).
	unconfirmed map[string]reading
}

// reading is a power state read from a BMC while the machine was at
// version.
type reading struct {
	power   string
	version uint64
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = 3 * time.Minute
	}
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.TakeOverAfter == 0 {
		cfg.TakeOverAfter = 3 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log, inflight: map[string]bool{}, unconfirmed: map[string]reading{}}
}

// Run starts jobs and polls power until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.cfg.PollInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); r.poll(ctx) }()
	}
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.cfg.Store.ChangedBesidesLeases(): // a lease starts no job
		}
		if !r.cfg.Site.IsReadyLeader() {
			r.ledSince = time.Time{}
			continue
		}
		if r.ledSince.IsZero() {
			r.ledSince = time.Now()
		}
		for _, st := range r.startable(time.Since(r.ledSince) >= r.cfg.TakeOverAfter) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.done(st.job.MachineID)
				r.run(ctx, st.job, st.takeOver)
			}()
		}
	}
}

// start is a job to start: its next attempt, taking over the one an
// earlier leader left running if takeOver.
type start struct {
	job      *store.Job
	takeOver bool
}

// startable returns the jobs to start now, at most one per machine, and
// marks their machines busy: the pending ones, those whose running
// attempt's deadline has passed and, if takeOver, those running that this
// node did not start (an earlier leader's).
func (r *Runner) startable(takeOver bool) []start {
	now := r.cfg.Site.Now().UTC()
	horizon := now
	if takeOver {
		horizon = now.Add(100 * 365 * 24 * time.Hour) // every running job
	}
	var pending []*store.Job
	if err := r.cfg.Store.View(func(tx *store.Tx) (err error) {
		pending, err = tx.PendingJobs(horizon)
		return err
	}); err != nil {
		r.log.Error("jobs: pending jobs", "err", err)
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []start
	for _, j := range pending {
		if r.inflight[j.MachineID] {
			continue
		}
		r.inflight[j.MachineID] = true
		out = append(out, start{job: j, takeOver: j.State == store.JobRunning && now.Before(j.Deadline)})
	}
	return out
}

func (r *Runner) done(machine string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inflight, machine)
}

// run executes one attempt of job j, taking over the running attempt an
// earlier leader left if takeOver. An execution this node stopped because
// it no longer leads reports nothing: the next leader takes the job over.
func (r *Runner) run(ctx context.Context, j *store.Job, takeOver bool) {
	attempt := j.Attempt + 1
	// The stored deadline is on the site's clock, which other nodes
	// compare; this node's own wait is on the monotonic clock, which a
	// clock step does not move.
	deadline := time.Now().Add(r.cfg.JobTimeout)
	begin := r.cfg.Site.StartJob
	if takeOver {
		begin = r.cfg.Site.TakeOverJob
	}
	if err := begin(ctx, j.ID, attempt, r.cfg.Site.Now().Add(r.cfg.JobTimeout)); err != nil {
		r.log.Info("jobs: not starting", "job", j.ID, "take_over", takeOver, "err", err)
		return
	}
	log := r.log.With("job", j.ID, "machine", j.MachineID, "action", j.Action, "attempt", attempt)
	if takeOver {
		log.Info("jobs: took over the attempt an earlier leader left running")
	}
	log.Info("jobs: running")
	lctx, deposed := r.whileLeading(ctx)
	sctx, span := startSpan(lctx, j, attempt)
	res, t := r.execute(sctx, j, deadline, takeOver)
	endSpan(span, t, res)
	if deposed() {
		log.Warn("jobs: no longer the leader; the execution is given up, unreported, for the next leader", "err", res.Error)
		return
	}
	if res.OK {
		log.Info("jobs: succeeded", "power", res.Power, "warning", res.Warning)
	} else {
		log.Warn("jobs: failed", "err", res.Error)
	}
	// The result is retried until it is committed, while this node
	// leads; past the deadline another leader may run the job again.
	for ctx.Err() == nil && time.Now().Before(deadline) {
		err := r.cfg.Site.FinishJob(ctx, j.ID, attempt, res)
		if err == nil {
			return
		}
		if _, domain := errs.AsError(err); domain {
			log.Warn("jobs: result refused", "err", err)
			return
		}
		log.Warn("jobs: committing the result; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// whileLeading returns a context that ends once this node no longer
// leads (checked every Tick) or ctx ends, and a function that stops the
// watch and says whether it ended the context because of that.
func (r *Runner) whileLeading(ctx context.Context) (context.Context, func() bool) {
	lctx, cancel := context.WithCancelCause(ctx)
	errDeposed := errors.New("jobs: no longer the leader")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(r.cfg.Tick)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-lctx.Done():
				return
			case <-tick.C:
				if !r.cfg.Site.IsReadyLeader() {
					cancel(errDeposed)
					return
				}
			}
		}
	})
	return lctx, func() bool {
		close(stop)
		wg.Wait()
		deposed := errors.Is(context.Cause(lctx), errDeposed)
		cancel(nil)
		return deposed
	}
}

// execute performs the job's action within deadline, on the BMC it
// returns (the zero Target if it could not be read). An execution that
// takes over an earlier leader's attempt first checks whether that
// attempt did the action (done).
func (r *Runner) execute(ctx context.Context, j *store.Job, deadline time.Time, takeOver bool) (site.JobResult, Target) {
	// Leave a margin to commit the result before the deadline.
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(-r.cfg.JobTimeout/10))
	defer cancel()
	t, err := r.target(j.MachineID)
	if err != nil {
		return site.JobResult{Error: err.Error()}, Target{}
	}
	if takeOver {
		if res, ok := r.alreadyDone(ctx, t, j); ok {
			return res, t
		}
	}
	power, err := r.cfg.BMC.Do(ctx, t, j)
	var cert *CertificateError
	switch {
	case err == nil:
		return site.JobResult{OK: true, Power: power}, t
	case errors.Is(err, ErrBootDeviceRefused):
		return site.JobResult{OK: true, Power: power, Warning: err.Error()}, t
	case errors.As(err, &cert):
		r.recordCertificate(ctx, t, cert.Fingerprint)
		return site.JobResult{Error: fmt.Sprintf("%v. %s", err, site.HowToAccept(t.Machine, cert.Fingerprint))}, t
	}
	return site.JobResult{Error: err.Error()}, t
}

// alreadyDone says whether the attempt of job j that an earlier leader
// left running did the job's action, as far as can be told, and the
// result to record then: a power_on or power_off whose power is already
// as asked; a power_cycle whose order's workflow started an action since
// that attempt started (its installer booted, so the cycle happened).
// Anything else is done again.
func (r *Runner) alreadyDone(ctx context.Context, t Target, j *store.Job) (site.JobResult, bool) {
	earlier := fmt.Sprintf("attempt %d, which an earlier leader left running, had done it", j.Attempt)
	switch j.Action {
	case store.JobPowerOn, store.JobPowerOff:
		want := "on"
		if j.Action == store.JobPowerOff {
			want = "off"
		}
		if p, err := r.cfg.BMC.PowerState(ctx, t); err == nil && p == want {
			return site.JobResult{OK: true, Power: p, Warning: earlier + ": the power is " + p}, true
		}
	case store.JobPowerCycle:
		if r.installerRanSince(j) {
			return site.JobResult{OK: true, Power: "on", Warning: earlier + ": the machine's installer has run since"}, true
		}
	}
	return site.JobResult{}, false
}

// installerRanSince says whether the workflow of j's order started an
// action after j's running attempt started (j.UpdatedAt: StartJob's
// time).
func (r *Runner) installerRanSince(j *store.Job) bool {
	if j.Order == "" {
		return false
	}
	ran := false
	err := r.cfg.Store.View(func(tx *store.Tx) error {
		o, err := store.Get[store.Order](tx, j.Order)
		if err != nil || o.Workflow == "" {
			return err
		}
		w, err := store.Get[store.Workflow](tx, o.Workflow)
		if err != nil || w.State == nil {
			return err
		}
		for _, a := range w.State.Actions {
			ran = ran || a.StartedAt.After(j.UpdatedAt)
		}
		return nil
	})
	if err != nil {
		r.log.Warn("jobs: read the job's order and workflow", "job", j.ID, "err", err)
	}
	return ran
}

// recordCertificate records the certificate t's BMC presented and the
// site did not trust, unless the store has it already, so that the
// operator sees it with the machine.
func (r *Runner) recordCertificate(ctx context.Context, t Target, fingerprint string) {
	if fingerprint == "" || fingerprint == t.presented {
		return
	}
	if err := r.cfg.Site.RecordBMCCertificate(ctx, t.Machine, t.Address, fingerprint); err != nil {
		r.log.Warn("jobs: record the BMC's certificate", "machine", t.Machine, "fingerprint", fingerprint, "err", err)
	}
}

// target reads machine id's BMC and opens its password.
func (r *Runner) target(id string) (Target, error) {
	var m *store.Machine
	if err := r.cfg.Store.View(func(tx *store.Tx) (err error) {
		m, err = store.Get[store.Machine](tx, id)
		return err
	}); err != nil {
		return Target{}, fmt.Errorf("machine %s: %w", id, err)
	}
	return r.targetOf(m)
}

// targetOf is machine m's BMC with its password opened.
func (r *Runner) targetOf(m *store.Machine) (Target, error) {
	if m.BMC == nil {
		return Target{}, fmt.Errorf("machine %s has no BMC", m.ID)
	}
	t := Target{Machine: m.ID, Address: m.BMC.Address, Driver: m.BMC.Driver, Username: m.BMC.Username}
	if c := m.BMC.Certificate; c != nil {
		t.Fingerprint, t.presented = c.Accepted, c.Presented
	}
	if len(m.BMC.SealedPassword) > 0 {
		pw, err := r.cfg.Key.Open(m.BMC.SealedPassword, store.BMCPasswordAD(m.ID))
		if err != nil {
			// Never the sealed bytes or the key: only what failed.
			return Target{}, fmt.Errorf("machine %s: the BMC password does not open with the site key", m.ID)
		}
		t.Password = string(pw)
	}
	return t, nil
}

// poll reads the power state of every machine with a BMC, every
// PollInterval, on the leader, skipping machines with a job running, and
// records changes.
func (r *Runner) poll(ctx context.Context) {
	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !r.cfg.Site.IsReadyLeader() {
			continue
		}
		var machines []*store.Machine
		r.cfg.Store.View(func(tx *store.Tx) (err error) {
			machines, err = store.List[store.Machine](tx)
			return err
		})
		r.forgetGone(machines)
		var wg sync.WaitGroup
		for _, m := range machines {
			if m.BMC == nil || r.busy(m.ID) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.pollOne(ctx, m)
			}()
		}
		wg.Wait()
	}
}

// confirm records rd as machine's latest differing reading and reports
// whether the one before was the same state at the same machine version;
// the zero reading forgets it. A job's change in between bumps the
// version, so a reading from before it never confirms one after.
func (r *Runner) confirm(machine string, rd reading) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rd == (reading{}) {
		delete(r.unconfirmed, machine)
		return false
	}
	prev, ok := r.unconfirmed[machine]
	if ok && prev == rd {
		delete(r.unconfirmed, machine)
		return true
	}
	r.unconfirmed[machine] = rd
	return false
}

// forgetGone drops the unconfirmed readings of machines no longer stored.
func (r *Runner) forgetGone(machines []*store.Machine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unconfirmed) == 0 {
		return
	}
	stored := make(map[string]bool, len(machines))
	for _, m := range machines {
		stored[m.ID] = true
	}
	for id := range r.unconfirmed {
		if !stored[id] {
			delete(r.unconfirmed, id)
		}
	}
}

func (r *Runner) busy(machine string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[machine]
}

func (r *Runner) pollOne(ctx context.Context, m *store.Machine) {
	t, err := r.targetOf(m) // the machine as the poll listed it: no second read
	if err != nil {
		r.log.Warn("jobs: power poll", "machine", m.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
	defer cancel()
	power, err := r.cfg.BMC.PowerState(ctx, t)
	if cert := (*CertificateError)(nil); errors.As(err, &cert) {
		r.recordCertificate(ctx, t, cert.Fingerprint)
	}
	if err != nil {
		r.log.Debug("jobs: power poll", "machine", m.ID, "err", err)
		return
	}
	if power == m.Power || (power != "on" && power != "off") {
		r.confirm(m.ID, reading{})
		return
	}
	if !r.confirm(m.ID, reading{power: power, version: m.Version}) {
		return
	}
	// Expect: a job that changed the power while this reading was on its
	// way makes it stale, and the store ignores it.
	if err := r.cfg.Site.SetPower(ctx, m.ID, power, m.Version); err != nil {
		r.log.Warn("jobs: record power", "machine", m.ID, "err", err)
	}
}

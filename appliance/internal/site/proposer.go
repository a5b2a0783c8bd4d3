package site

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/clock"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/tracing"
)

// Errors of a proposal that did not get a result.
var (
	// ErrNoLeader means no leader could be found before the proposal's
	// time ran out: nothing was applied.
	ErrNoLeader = errors.New("site: no leader")
	// ErrUnknownOutcome means the command reached a leader but no answer
	// came back (leadership was lost, the leader went away): it may or
	// may not have been applied. It is not retried, so that nothing is
	// applied twice; the caller decides.
	ErrUnknownOutcome = errors.New("site: the leader did not answer; the change may or may not have been applied")
)

// Log is where the proposer sends its commands: the site's Raft node
// (package cluster), which commits a command on the leader, forwarding it
// from a follower, and returns its Result once applied. A domain refusal
// is the Result's Err.
type Log interface {
	Commit(ctx context.Context, cmd []byte) (Result, error)
}

// How long a proposal may wait to be committed, unless its caller's
// context ends sooner. One bound for every edge, but the DHCP path's: a
// client retransmits after a few seconds, and an ACK later than that is
// answered to nobody.
const (
	commitTimeout = 30 * time.Second
	leaseTimeout  = 5 * time.Second
)

// ProposerConfig configures a Proposer.
type ProposerConfig struct {
	// Log commits the commands.
	Log Log
	// Store is this node's store, read for what a preparation needs to
	// know (the machine a put replaces).
	Store *store.DB
	// Key is the site key, which seals secrets before they are proposed.
	Key *seal.Key
	// BootURL is where machines reach this node's boot service; new
	// workflows get it as boot_url and metadata_url unless they name
	// them. Empty leaves them to the workflow's values.
	BootURL string
	// Now is the proposer's clock, the only clock commands carry; nil
	// means time.Now.
	Now func() time.Time
	// Steps, if set, guards workflows against forward steps of Now: for
	// WorkflowStepWindow after a step of S, ticks and reports carry a
	// time S earlier, so the step times out no workflow that started
	// before it (clock.StepGuard). Nil: no guard.
	Steps *clock.StepGuard
	// Nonce draws a workflow's nonce; nil means 16 random bytes in hex.
	// Tests that compare credentials with golden files fix it.
	Nonce func() string
}

// Proposer turns what an edge asks into a command and commits it. It does
// every preparation a command needs before it is proposed, once for every
// edge: it seals secrets, draws nonces, fills boot values, starts an
// order's order.apply span (proposer_trace.go) and stamps the time, so
// that apply reads no clock, no randomness and no key.
type Proposer struct {
	cfg ProposerConfig
}

// NewProposer returns a proposer.
func NewProposer(cfg ProposerConfig) *Proposer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Nonce == nil {
		cfg.Nonce = newNonce
	}
	return &Proposer{cfg: cfg}
}

// now is the proposer's clock, in UTC.
func (p *Proposer) now() time.Time { return p.cfg.Now().UTC() }

// WorkflowStepWindow is how long after a forward step of the clock
// workflows are judged as of before it (ProposerConfig.Steps): longer
// than a provision, whose deadline was set on the clock before the step.
// A clock corrected for good times workflows out that much late for as
// long.
const WorkflowStepWindow = 6 * time.Hour

// WorkflowNow is the time a workflow's deadlines are judged by: now,
// less a forward step of the clock within WorkflowStepWindow.
func (p *Proposer) WorkflowNow() time.Time {
	return p.cfg.Steps.JudgeAt(p.now(), WorkflowStepWindow).UTC()
}

// Now is the proposer's clock (ProposerConfig.Now): the clock every
// decision that is stored, or compared with a stored time, reads on
// this node.
func (p *Proposer) Now() time.Time { return p.cfg.Now() }

// propose encodes a JSON payload of type t and commits it.
func (p *Proposer) propose(ctx context.Context, t Type, payload any) (Result, error) {
	if err := p.checkKnown(t); err != nil {
		return Result{}, err
	}
	cmd, err := command.Encode(t, payload)
	if err != nil {
		return Result{}, err
	}
	return p.commit(ctx, commitTimeout, cmd)
}

// commit commits cmd within timeout; a refusal is returned as the error.
func (p *Proposer) commit(ctx context.Context, timeout time.Duration, cmd []byte) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := p.cfg.Log.Commit(ctx, cmd)
	if err == nil && r.Err != nil {
		err = r.Err
	}
	return r, err
}

// put proposes a Put of obj, by the caller ctx names or else the site,
// with events, and returns the object as stored.
func put[T any](ctx context.Context, p *Proposer, t Type, obj *T, expect uint64, events ...store.Event) (*T, error) {
	r, err := p.propose(ctx, t, Put[T]{Object: obj, Expect: expect, Time: p.now(), Events: events, By: actor(ctx, ActorSite)})
	if err != nil {
		return nil, err
	}
	return DecodeValue[T](r)
}

// newNonce draws a workflow's nonce, from which its installer credential
// is derived.
func newNonce() string {
	var nonce [16]byte
	rand.Read(nonce[:])
	return hex.EncodeToString(nonce[:])
}

// PutMachine stores a machine an operator gives: what the appliance owns
// of the stored one is kept (keepApplianceFields), and a BMC password is
// sealed before it is proposed.
func (p *Proposer) PutMachine(ctx context.Context, m *store.Machine, expect uint64) (*store.Machine, error) {
	if m.BMC != nil && len(m.BMC.SealedPassword) > 0 {
		return nil, errs.Invalid("bmc.sealed_password", "is set by the appliance, not by clients")
	}
	var old *store.Machine
	_ = p.cfg.Store.View(func(tx *store.Tx) error { old, _ = store.Find[store.Machine](tx, m.ID); return nil })
	keepApplianceFields(m, old)
	m.Normalize()
	p.sealBMC(m)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	// The state machine records the event of the machine as it stores it
	// (fleet.go): the command need not carry a second copy of it.
	return put[store.Machine](ctx, p, PutMachineV2, m, expect)
}

// AcceptBMCCertificate makes the certificate whose fingerprint is given
// (the stored form, or openssl's) the one the site trusts for machineID's
// Redfish BMC, and returns the machine.
func (p *Proposer) AcceptBMCCertificate(ctx context.Context, machineID, fingerprint string) (*store.Machine, error) {
	fp, err := store.NormalizeFingerprint(fingerprint)
	if err != nil {
		return nil, errs.Invalid("fingerprint", "%v", err)
	}
	r, err := p.propose(ctx, AcceptBMCCertificate, BMCCertificate{Machine: machineID, Fingerprint: fp, Time: p.now(), By: actor(ctx, ActorSite)})
	if err != nil {
		return nil, err
	}
	return DecodeValue[store.Machine](r)
}

// BootPXE queues a job that sets machineID's next boot device to the
// network through its BMC (for every boot if persistent; UEFI if efi),
// and returns the job, pending: the leader's job runner runs it.
func (p *Proposer) BootPXE(ctx context.Context, machineID string, persistent, efi bool) (*store.Job, error) {
	var b [6]byte
	rand.Read(b[:])
	r, err := p.propose(ctx, QueueBootPXE, BootPXE{Job: "boot-pxe-" + hex.EncodeToString(b[:]), Machine: machineID,
		Persistent: persistent, EFI: efi, Time: p.now(), By: actor(ctx, ActorSite)})
	if err != nil {
		return nil, err
	}
	return DecodeValue[store.Job](r)
}

// sealBMC replaces m's clear BMC password with its sealed form (any
// sealed one it came with is dropped: only the site seals).
func (p *Proposer) sealBMC(m *store.Machine) {
	if m.BMC == nil {
		return
	}
	m.BMC.PasswordSet = false
	if m.BMC.Password != "" && p.cfg.Key != nil {
		m.BMC.SealedPassword = p.cfg.Key.Seal([]byte(m.BMC.Password), store.BMCPasswordAD(m.ID))
		m.BMC.Password = ""
	}
}

// PutSubnet stores a subnet the site's DHCP server can serve, which
// overlaps no other: it is refused here against this node's store, and
// at apply against the site's.
func (p *Proposer) PutSubnet(ctx context.Context, s *store.Subnet, expect uint64) (*store.Subnet, error) {
	if err := p.cfg.Store.View(func(tx *store.Tx) error { return checkSubnet(tx, s, (*store.Subnet).CheckServable) }); err != nil {
		return nil, err
	}
	out, err := put(ctx, p, PutSubnet, s, expect)
	if errors.Is(err, ErrUnknownToMember) {
		// An old node remains: the rules PutSubnet adds were checked
		// above, and PutSubnetV2 is what that node applies.
		return put(ctx, p, PutSubnetV2, s, expect)
	}
	return out, err
}

// PutImage stores an image.
func (p *Proposer) PutImage(ctx context.Context, i *store.Image, expect uint64) (*store.Image, error) {
	i.Normalize()
	if err := i.Validate(); err != nil {
		return nil, err
	}
	return put(ctx, p, PutImage, i, expect)
}

// PutTemplate stores a template.
func (p *Proposer) PutTemplate(ctx context.Context, t *store.Template, expect uint64) (*store.Template, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return put(ctx, p, PutTemplate, t, expect)
}

// audit returns e for a change a caller named in ctx (WithActor) made:
// the admin's changes (settings, tokens) are events, so that the timeline
// says who made them; none for the site's own (its first token).
func audit(ctx context.Context, e store.Event) []store.Event {
	if actor(ctx, "") == "" {
		return nil
	}
	return []store.Event{e}
}

// PutSettings stores the site's settings (an event, settings.changed).
func (p *Proposer) PutSettings(ctx context.Context, s *store.Settings, expect uint64) (*store.Settings, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	e := store.Event{Kind: "settings.changed",
		Message: fmt.Sprintf("settings changed: site_name %s, unknown_machines %s", s.SiteName, s.UnknownMachines),
		Fields:  map[string]string{"site_name": s.SiteName, "unknown_machines": s.UnknownMachines}}
	return put(ctx, p, PutSettings, s, expect, audit(ctx, e)...)
}

// CreateToken stores a new API token's record, which must have a name and
// a role (an event, token.created).
func (p *Proposer) CreateToken(ctx context.Context, t *store.Token) error {
	if err := t.ValidateNew(); err != nil {
		return err
	}
	_, err := put(ctx, p, CreateToken, t, 0, audit(ctx, tokenEvent(t))...)
	return err
}

// CreateWorkflow stores a new workflow from what a client gives (the
// machine, the template, values, purpose, timeout): the state is the
// site's to make, the nonce is drawn here, and boot values are filled in.
// Its trace is the span ctx holds (the API request's), if any: the
// machine's boot and its agent's actions are of that trace.
func (p *Proposer) CreateWorkflow(ctx context.Context, w *store.Workflow) (*store.Workflow, error) {
	w.Normalize()
	w.State, w.Order, w.BootAddr = nil, "", ""
	w.Traceparent = tracing.Traceparent(ctx)
	w.Nonce = p.cfg.Nonce()
	w.Values = withBootValues(w.Values, p.cfg.BootURL)
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return put(ctx, p, PutWorkflow, w, 0)
}

// PlaceOrder stores a new order, which makes its workflow and jobs: what
// it came to is the site's to say, the nonce of its workflow is drawn
// here, and boot values are filled in.
//
// The order's order.apply span covers its proposal to its applying: a
// child of the traceparent the order comes with, if any, else of ctx's
// span (the API request's); its traceparent becomes the order's.
func (p *Proposer) PlaceOrder(ctx context.Context, o *store.Order) (*store.Order, error) {
	if err := tracing.ValidTraceparent(o.Traceparent); err != nil {
		return nil, errs.Invalid("traceparent", "%v", err)
	}
	p.prepareOrder(o)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, span := startApply(ctx, o)
	stored, err := put(ctx, p, PlaceOrder, o, 0)
	endApply(span, err)
	return stored, err
}

// prepareOrder readies an order from an operator or from central: the
// image_sha256 it comes with is the digest it asks for (ImageWanted).
func (p *Proposer) prepareOrder(o *store.Order) {
	o.ImageWanted = o.ImageSHA256
	o.State, o.Reason, o.Workflow, o.Jobs, o.ImageSHA256, o.WaitingFor = "", "", "", nil, "", nil
	o.Nonce = p.cfg.Nonce()
	if o.Action == store.OrderProvision || o.Action == store.OrderDeprovision {
		o.Values = withBootValues(o.Values, p.cfg.BootURL)
	}
}

// Kind names a kind of object for Delete.
type Kind struct {
	t   Type
	obj store.Object
	// audit, if set, is the kind of the event a delete records.
	audit string
}

// The kinds Delete removes.
var (
	Machines  = Kind{DeleteMachine, &store.Machine{}, ""}
	Subnets   = Kind{DeleteSubnet, &store.Subnet{}, ""}
	Leases    = Kind{DeleteLease, &store.Lease{}, ""}
	Images    = Kind{DeleteImage, &store.Image{}, ""}
	Templates = Kind{DeleteTemplate, &store.Template{}, ""}
	Workflows = Kind{DeleteWorkflow, &store.Workflow{}, ""}
	Orders    = Kind{DeleteOrder, &store.Order{}, ""}
	Jobs      = Kind{DeleteJob, &store.Job{}, ""}
	Tokens    = Kind{DeleteToken, &store.Token{}, "token.deleted"}
	Members   = Kind{DeleteMember, &store.Member{}, ""}
)

// Delete removes the object of kind k with key, if its version is expect
// (0: any). The site refuses to delete what is still in use (an active
// workflow, a running order or job).
func (p *Proposer) Delete(ctx context.Context, k Kind, key string, expect uint64) error {
	return p.delete(ctx, k, key, expect, actor(ctx, ActorSite))
}

// delete proposes the delete of a Delete by the actor by.
func (p *Proposer) delete(ctx context.Context, k Kind, key string, expect uint64, by string) error {
	if k.obj == nil {
		return fmt.Errorf("site: delete %q: no kind", key)
	}
	d := Delete{Key: key, Expect: expect, Time: p.now(), By: by}
	if k.t == DeleteMachine {
		d.Events = []store.Event{deletedEvent(key)}
	}
	if k.audit != "" {
		d.Events = audit(ctx, store.Event{Kind: k.audit, Message: fmt.Sprintf("%s %s deleted", k.obj.Kind(), key),
			Fields: map[string]string{k.obj.Kind(): key}})
	}
	_, err := p.propose(ctx, k.t, d)
	return err
}

// RecordEvent records an event, such as an operator's note, and returns
// the index it was recorded at.
func (p *Proposer) RecordEvent(ctx context.Context, e store.Event) (uint64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	return p.RecordEvents(ctx, []store.Event{e})
}

// RecordEvents records events in one command, in order, and returns the
// index they were recorded at.
func (p *Proposer) RecordEvents(ctx context.Context, events []store.Event) (uint64, error) {
	if len(events) == 0 {
		return 0, errs.Invalid("events", "is empty")
	}
	if err := validateEvents(events); err != nil {
		return 0, err
	}
	// Who recorded them is the caller ctx names, never what they say.
	own := make([]store.Event, len(events))
	for i, e := range events {
		e.By = ""
		own[i] = e
	}
	r, err := p.propose(ctx, AppendEvents, Events{Time: p.now(), Events: own, By: actor(ctx, ActorSite)})
	return r.Index, err
}

// CancelWorkflow ends an active workflow: its running actions fail, its
// pending ones are skipped, and its machine is failed with the reason.
func (p *Proposer) CancelWorkflow(ctx context.Context, id, reason string) (*store.Workflow, error) {
	return p.advance(ctx, AdvanceWorkflow, Advance{Workflow: id, Kind: AdvanceCancel, Reason: reason, Time: p.now(), By: actor(ctx, ActorSite)})
}

// Report records an agent's report on its workflow and returns the
// workflow after it.
func (p *Proposer) Report(ctx context.Context, workflowID string, r Report) (*store.Workflow, error) {
	if r.Kind != ReportLost {
		return p.advance(ctx, AdvanceWorkflow, Advance{Workflow: workflowID, Kind: AdvanceReport, Report: &r, Time: p.WorkflowNow(), By: actor(ctx, ActorAgent)})
	}
	wf, err := p.advance(ctx, LoseAttempt, Advance{Workflow: workflowID, Kind: AdvanceReport, Report: &r, Time: p.WorkflowNow(), By: actor(ctx, ActorAgent)})
	if errors.Is(err, ErrUnknownToMember) {
		// A node of an older release remains, which knows a lost
		// attempt only as a failed one (as its agents reported it).
		failed := r
		failed.Kind, failed.OK = ReportFinish, false
		return p.advance(ctx, AdvanceWorkflow, Advance{Workflow: workflowID, Kind: AdvanceReport, Report: &failed, Time: p.WorkflowNow(), By: actor(ctx, ActorAgent)})
	}
	return wf, err
}

// Tick moves a workflow on at the proposer's time: an action or the
// workflow timing out, a retry's backoff ending.
func (p *Proposer) Tick(ctx context.Context, workflowID string) (*store.Workflow, error) {
	return p.advance(ctx, AdvanceWorkflow, Advance{Workflow: workflowID, Kind: AdvanceTick, Time: p.WorkflowNow(), By: actor(ctx, ActorTimer)})
}

// BindWorkflow claims workflow id's installer credential for addr, where
// the appliance leases no addresses (proxyDHCP), and returns the workflow
// as stored: its BootAddr is addr if the claim won, or the address that
// claimed it first.
func (p *Proposer) BindWorkflow(ctx context.Context, id string, addr netip.Addr) (*store.Workflow, error) {
	r, err := p.propose(ctx, BindWorkflow, Bind{Workflow: id, Addr: addr.Unmap().String(), Time: p.now(), By: actor(ctx, ActorAgent)})
	if err != nil {
		return nil, err
	}
	return DecodeValue[store.Workflow](r)
}

func (p *Proposer) advance(ctx context.Context, typ Type, a Advance) (*store.Workflow, error) {
	r, err := p.propose(ctx, typ, a)
	if err != nil {
		return nil, err
	}
	return DecodeValue[store.Workflow](r)
}

// Discover records what an installer in discovery mode found, creating or
// completing the machine that owns its MACs.
func (p *Proposer) Discover(ctx context.Context, hw Hardware) (*DiscoverResult, error) {
	r, err := p.propose(ctx, Discover, DiscoverPayload{Hardware: hw, Time: p.now(), By: actor(ctx, ActorAgent)})
	if err != nil {
		return nil, err
	}
	return DecodeValue[DiscoverResult](r)
}

// RotateCA proposes a step of a rotation of the site's CA (CABegin,
// CAFinish; see apply_ca.go), from the generation this node's store
// holds, and returns where the rotation stands once it is applied.
func (p *Proposer) RotateCA(ctx context.Context, step string) (*store.CA, error) {
	var cur *store.CA
	if err := p.cfg.Store.View(func(tx *store.Tx) (err error) { cur, err = tx.CA(); return err }); err != nil {
		return nil, err
	}
	req := CARotation{Step: step, Generation: cur.Generation, Time: p.now(), By: actor(ctx, ActorSite)}
	switch step {
	case CABegin:
		req.Generation = cur.Generation + 1
	case CAFinish:
	default:
		return nil, errs.Invalid("step", "%q is not a step of a rotation: want %q or %q", step, CABegin, CAFinish)
	}
	r, err := p.propose(ctx, SetCAGeneration, req)
	if err != nil {
		return nil, err
	}
	return DecodeValue[store.CA](r)
}

package site

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// The proposals of the edges that run on the leader: the DHCP server, the
// BMC job runner, the sync client, the cluster's own membership. Each is
// made by its part of the site (actor.go), unless the context names
// another actor.

// CommitLease commits a lease of the DHCP server (an offer, an ACK, a
// release, a decline) and reports whether it only renewed the client's
// active lease, as the state machine decided while applying it. The
// command's time is the lease's start.
func (p *Proposer) CommitLease(ctx context.Context, l *store.Lease) (renewed bool, err error) {
	cmd, err := encodeLeaseCommit(l)
	if err != nil {
		return false, err
	}
	r, err := p.commit(ctx, leaseTimeout, cmd)
	if err != nil {
		return false, err
	}
	res, err := DecodeValue[LeaseResult](r)
	if err != nil {
		return false, err
	}
	return res.Renewed, nil
}

// ReclaimLease deletes a lease that ended long ago, unless it changed
// since it was read at version.
func (p *Proposer) ReclaimLease(ctx context.Context, ip string, version uint64) error {
	return p.delete(ctx, Leases, ip, version, actor(ctx, ActorDHCP))
}

// StartJob starts the attempt'th execution of a BMC job, which must be
// over by deadline.
func (p *Proposer) StartJob(ctx context.Context, id string, attempt int, deadline time.Time) error {
	_, err := p.propose(ctx, StartJob, JobStart{Job: id, Attempt: attempt, Deadline: deadline.UTC(), Time: p.now(), By: actor(ctx, ActorJobs)})
	return err
}

// TakeOverJob starts the attempt'th execution of a BMC job an earlier
// leader left running (the attempt-1st), before that attempt's
// deadline; it must be over by deadline.
func (p *Proposer) TakeOverJob(ctx context.Context, id string, attempt int, deadline time.Time) error {
	_, err := p.propose(ctx, TakeOverJob, JobStart{Job: id, Attempt: attempt, Deadline: deadline.UTC(), Time: p.now(), By: actor(ctx, ActorJobs)})
	return err
}

// FinishJob records what the attempt'th execution of a job came to.
func (p *Proposer) FinishJob(ctx context.Context, id string, attempt int, res JobResult) error {
	_, err := p.propose(ctx, FinishJob, JobFinish{Job: id, Attempt: attempt, Result: res, Time: p.now(), By: actor(ctx, ActorJobs)})
	return err
}

// SetPower records a machine's power state as its BMC reported it, read
// when the machine was at version (0: whatever its version).
func (p *Proposer) SetPower(ctx context.Context, machineID, power string, version uint64) error {
	_, err := p.propose(ctx, SetPower, Power{Machine: machineID, Power: power, Expect: version, Time: p.now(), By: actor(ctx, ActorJobs)})
	return err
}

// RecordBMCCertificate records the certificate (its fingerprint, in
// store.NormalizeFingerprint's form) that machineID's BMC presented at
// address and the site did not trust, for an operator to check and
// accept. The store ignores a record it knows already.
func (p *Proposer) RecordBMCCertificate(ctx context.Context, machineID, address, fingerprint string) error {
	_, err := p.propose(ctx, RecordBMCCertificate, BMCCertificate{Machine: machineID, Fingerprint: fingerprint, Address: address, Time: p.now(), By: actor(ctx, ActorJobs)})
	return err
}

// ApplyDesired applies one complete revision of central's desired state,
// prepared as the site's own writes are (PrepareDesired).
//
// Each new order of the revision gets its order.apply span (a child of
// central's order.place span, the traceparent it comes with), ended
// when the revision is applied; an order the site refused ends it
// failed.
func (p *Proposer) ApplyDesired(ctx context.Context, d *Desired) (Result, *DesiredResult, error) {
	applies := p.prepareDesired(ctx, d)
	r, err := p.propose(ctx, ApplyDesired, DesiredPayload{Desired: *d, Time: p.now(), By: actor(ctx, ActorCentral)})
	if err != nil {
		for _, a := range applies {
			endApply(a.span, err)
		}
		return r, nil, err
	}
	res, err := DecodeValue[DesiredResult](r)
	p.endApplies(applies)
	return r, res, err
}

// orderApply is the order.apply span of an order of a revision.
type orderApply struct {
	order, traceparent string
	span               trace.Span
}

// endApplies ends the spans of a revision's orders once it is applied:
// an order this node's store does not hold with the span's traceparent
// was refused (its event says why) or was there before.
func (p *Proposer) endApplies(applies []orderApply) {
	for _, a := range applies {
		var err error
		if p.cfg.Store != nil {
			o, gerr := storedOrder(p.cfg.Store, a.order)
			if gerr != nil || o.Traceparent != a.traceparent {
				err = fmt.Errorf("order %s was refused (its sync.order_refused event says why)", a.order)
			}
		}
		endApply(a.span, err)
	}
}

func storedOrder(db *store.DB, id string) (o *store.Order, err error) {
	err = db.View(func(tx *store.Tx) error {
		o, err = store.Get[store.Order](tx, id)
		return err
	})
	return o, err
}

// PrepareDesired does for central's objects what the site's own writes
// get: BMC passwords central sent in the clear are sealed (and a sealed
// one it sent is dropped: only the site seals; without a key the clear
// password stays, and the state machine refuses that machine), and a new
// order gets its workflow's nonce and this node's boot values, as
// PlaceOrder's do. An object that does not decode is left for the state
// machine to refuse, naming what is wrong.
func (p *Proposer) PrepareDesired(d *Desired) { p.prepareDesired(nil, d) }

// prepareDesired is PrepareDesired; with a ctx, it also starts the
// order.apply span of each order the site does not hold yet.
func (p *Proposer) prepareDesired(ctx context.Context, d *Desired) []orderApply {
	var applies []orderApply
	for i, ch := range d.Changes {
		if ch.Deleted {
			continue
		}
		var obj any
		switch ch.Kind {
		case DesiredMachine:
			var m store.Machine
			if json.Unmarshal(ch.Object, &m) != nil || m.BMC == nil {
				continue
			}
			if m.ID == "" {
				m.ID = ch.Key
			}
			m.BMC.SealedPassword = nil
			p.sealBMC(&m)
			obj = &m
		case DesiredOrder:
			var o store.Order
			if json.Unmarshal(ch.Object, &o) != nil {
				continue
			}
			p.prepareOrder(&o)
			id := o.ID
			if id == "" {
				id = ch.Key
			}
			if ctx != nil && tracing.ValidTraceparent(o.Traceparent) == nil && !p.holdsOrder(id) {
				_, span := startApply(ctx, &o)
				applies = append(applies, orderApply{order: id, traceparent: o.Traceparent, span: span})
			}
			obj = &o
		default:
			continue
		}
		if raw, err := json.Marshal(obj); err == nil {
			d.Changes[i].Object = raw
		}
	}
	return applies
}

// holdsOrder reports whether this node's store holds order id: a
// revision's order the site has applied before (a full snapshot names
// every order) is left as it is, and gets no span.
func (p *Proposer) holdsOrder(id string) bool {
	if p.cfg.Store == nil || id == "" {
		return false
	}
	_, err := storedOrder(p.cfg.Store, id)
	return err == nil
}

// AckEvents records that central has stored the site's events up to seq.
func (p *Proposer) AckEvents(ctx context.Context, seq uint64) error {
	_, err := p.propose(ctx, AckEvents, AckedPayload{Seq: seq, Time: p.now()})
	return err
}

// RecordLink records the state of the link to central as the leader's
// sync client sees it (apply_link.go). The proposer stamps the time,
// drops any credentials, query or fragment from the central URL, and
// cuts the error to store.MaxLinkError bytes.
func (p *Proposer) RecordLink(ctx context.Context, r LinkReport) error {
	r.Time, r.By = p.now(), actor(ctx, ActorSync)
	r.Since, r.LastSync = r.Since.UTC(), r.LastSync.UTC()
	r.Central = redactURL(r.Central)
	r.LastError = strings.ToValidUTF8(truncate(r.LastError, store.MaxLinkError), "")
	_, err := p.propose(ctx, RecordLink, r)
	return err
}

// redactURL returns raw without user information, query or fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// RecordArtifact records that node holds artifact sha256 (lowercase
// hex) of size bytes, verified. The site refuses a digest no image
// points at (the node may remove it).
func (p *Proposer) RecordArtifact(ctx context.Context, node, sha256 string, size int64) error {
	_, err := p.propose(ctx, RecordArtifact, ArtifactHeld{Node: node, SHA256: sha256, Size: size, Time: p.now(), By: actor(ctx, ActorArtifacts)})
	return err
}

// ForgetArtifact records that node no longer holds artifact sha256.
func (p *Proposer) ForgetArtifact(ctx context.Context, node, sha256 string) error {
	_, err := p.propose(ctx, ForgetArtifact, ArtifactHeld{Node: node, SHA256: sha256, Time: p.now(), By: actor(ctx, ActorArtifacts)})
	return err
}

// ReportArtifact records a node's note on a transfer of an artifact
// (ArtifactPulling, ArtifactCorrupt, ArtifactFailed): its caller keeps
// them few (a pull's progress every tenth or half minute). The message
// is cut to fit; the source and message must carry no secret.
func (p *Proposer) ReportArtifact(ctx context.Context, r ArtifactReport) error {
	r.Time, r.By = p.now(), actor(ctx, ActorArtifacts)
	r.Message = strings.ToValidUTF8(truncate(r.Message, maxReason), "")
	_, err := p.propose(ctx, ReportArtifact, r)
	return err
}

// PutMember records where a node of the site is reached.
func (p *Proposer) PutMember(ctx context.Context, m *store.Member) error {
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := put(ctx, p, PutMember, m, 0)
	return err
}

// withBootValues returns values with boot_url and metadata_url set to
// bootURL, where the installer and the installed OS reach the appliance,
// unless values gives them. Every appliance knows its own boot URL (it is
// configuration), so the node that proposes a workflow fills them in.
func withBootValues(values map[string]string, bootURL string) map[string]string {
	if bootURL == "" {
		return values
	}
	out := maps.Clone(values)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range []string{actions.ValueBootURL, actions.ValueMetadataURL} {
		if _, ok := out[k]; !ok {
			out[k] = bootURL
		}
	}
	return out
}

package site

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// fingerprint is a fingerprint in the stored form, of the byte b repeated.
func fingerprint(b string) string { return "sha256:" + strings.Repeat(b, 32) }

// machineOf reads machine id.
func (e *env) machineOf(id string) *store.Machine {
	e.t.Helper()
	var m *store.Machine
	e.view(func(tx *store.Tx) (err error) { m, err = store.Get[store.Machine](tx, id); return err })
	return m
}

// lastEvent is the newest event, nil if none.
func (e *env) lastEvent() *store.Event {
	e.t.Helper()
	var last *store.Event
	e.view(func(tx *store.Tx) error {
		evs, err := tx.EventsSince(0, 1000)
		if len(evs) > 0 {
			last = evs[len(evs)-1]
		}
		return err
	})
	return last
}

// TestBMCCertificate: a certificate the runner refused is recorded once,
// with an event that names it and says how to accept it; an operator's
// acceptance makes it the trusted one; a changed certificate is recorded
// again; records for another address, or of what is already known,
// change nothing; and puts, by clients or central, keep the record.
func TestBMCCertificate(t *testing.T) {
	e := newEnv(t)
	a, b, c := fingerprint("0a"), fingerprint("0b"), fingerprint("0c")
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	cert := func() store.BMCCertificate {
		t.Helper()
		if m := e.machineOf("m1"); m.BMC.Certificate != nil {
			return *m.BMC.Certificate
		}
		return store.BMCCertificate{}
	}
	unchanged := func(index uint64, typ Type, payload any) {
		t.Helper()
		before := rawDump(t, e.db)
		e.applyOK(index, typ, payload)
		if diff := cmp.Diff(withApplied(before, index), rawDump(t, e.db)); diff != "" {
			t.Errorf("command %d at %d changed the store (-before +after):\n%s", typ, index, diff)
		}
	}

	e.applyOK(2, RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: a, Address: "10.1.0.1", Time: ts0})
	if got := cert(); got != (store.BMCCertificate{Presented: a}) || e.machineOf("m1").Version != 2 {
		t.Fatalf("after the first refusal: %+v at version %d, want presented %s at 2", got, e.machineOf("m1").Version, a)
	}
	ev := e.lastEvent()
	if ev.Kind != "bmc.certificate_refused" || !strings.Contains(ev.Message, "outpost bmc accept-certificate m1 "+a) ||
		!strings.Contains(ev.Message, "no certificate is accepted") || ev.Fields["fingerprint"] != a {
		t.Errorf("event %+v: want bmc.certificate_refused naming %s and how to accept it", ev, a)
	}
	unchanged(3, RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: a, Address: "10.1.0.1", Time: ts1})
	unchanged(4, RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: b, Address: "10.9.9.9", Time: ts1})

	// A client's put keeps the record, whatever it says of it.
	put := fxMachine("m1", "02:00:00:00:00:01")
	put.BMC.Certificate = &store.BMCCertificate{Accepted: c}
	e.applyOK(5, PutMachine, Put[store.Machine]{Object: put, Time: ts1})
	if got := cert(); got != (store.BMCCertificate{Presented: a}) {
		t.Errorf("after a client's put: %+v, want the record kept", got)
	}

	r := e.applyOK(6, AcceptBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: a, Time: ts1})
	if m, err := DecodeValue[store.Machine](r); err != nil || m.BMC.Certificate == nil || m.BMC.Certificate.Accepted != a {
		t.Errorf("accept returned %+v, %v; want the machine with %s accepted", m, err, a)
	}
	if got := cert(); got != (store.BMCCertificate{Accepted: a}) {
		t.Errorf("after accepting: %+v, want %s accepted and nothing presented", got, a)
	}
	if ev := e.lastEvent(); ev.Kind != "bmc.certificate_accepted" || !strings.Contains(ev.Message, a) {
		t.Errorf("event %+v: want bmc.certificate_accepted naming %s", ev, a)
	}
	unchanged(7, RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: a, Address: "10.1.0.1", Time: ts1})

	// The certificate changes: recorded, the accepted one kept.
	e.applyOK(8, RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: c, Address: "10.1.0.1", Time: ts1})
	if got := cert(); got != (store.BMCCertificate{Accepted: a, Presented: c}) {
		t.Errorf("after a change: %+v", got)
	}
	if ev := e.lastEvent(); !strings.Contains(ev.Message, "the accepted one is "+a+": its certificate changed") {
		t.Errorf("event %q: want the change said", ev.Message)
	}

	// Central's machine keeps it too.
	e.applyOK(9, ApplyDesired, DesiredPayload{Desired: Desired{Revision: 1, Changes: []DesiredChange{
		{Kind: DesiredMachine, Key: "m1", Object: mustJSON(t, fxMachine("m1", "02:00:00:00:00:01"))}}}, Time: ts1})
	if got := cert(); got != (store.BMCCertificate{Accepted: a, Presented: c}) {
		t.Errorf("after central's put: %+v, want the record kept", got)
	}
	e.applyOK(10, AcceptBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: c, Time: ts1})
	if got := cert(); got != (store.BMCCertificate{Accepted: c}) {
		t.Errorf("after accepting the new one: %+v", got)
	}
	if ev := e.lastEvent(); !strings.Contains(ev.Message, "replacing "+a) {
		t.Errorf("event %q: want the replaced certificate named", ev.Message)
	}

	// A BMC driven by IPMI has no certificate to record.
	ipmi := fxMachine("i1", "02:00:00:00:00:09")
	ipmi.BMC.Driver = "ipmi"
	e.applyOK(11, PutMachine, Put[store.Machine]{Object: ipmi, Time: ts0})
	unchanged(12, RecordBMCCertificate, BMCCertificate{Machine: "i1", Fingerprint: b, Address: "10.1.0.1", Time: ts1})
}

// TestBMCCertificateRefused: bad commands are refused, naming the field,
// and change nothing.
func TestBMCCertificateRefused(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	ipmi := fxMachine("m2", "02:00:00:00:00:02")
	ipmi.BMC.Driver = "ipmi"
	e.applyOK(2, PutMachine, Put[store.Machine]{Object: ipmi, Time: ts0})
	none := fxMachine("m3", "02:00:00:00:00:03")
	none.BMC = nil
	e.applyOK(3, PutMachine, Put[store.Machine]{Object: none, Time: ts0})
	tests := map[string]struct {
		typ         Type
		req         BMCCertificate
		code, field string
	}{
		"not a fingerprint":   {AcceptBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: "sha256:abc"}, errs.CodeInvalid, "fingerprint"},
		"not the stored form": {AcceptBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: strings.ToUpper(fingerprint("0a"))}, errs.CodeInvalid, "fingerprint"},
		"record garbage":      {RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: "", Address: "10.1.0.1"}, errs.CodeInvalid, "fingerprint"},
		"unknown machine":     {AcceptBMCCertificate, BMCCertificate{Machine: "m9", Fingerprint: fingerprint("0a")}, errs.CodeNotFound, ""},
		"no BMC":              {AcceptBMCCertificate, BMCCertificate{Machine: "m3", Fingerprint: fingerprint("0a")}, errs.CodeInvalid, "bmc"},
		"IPMI":                {AcceptBMCCertificate, BMCCertificate{Machine: "m2", Fingerprint: fingerprint("0a")}, errs.CodeInvalid, "bmc.driver"},
	}
	index := uint64(4)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := rawDump(t, e.db)
			tc.req.Time = ts1
			r := e.applyCmd(index, tc.typ, tc.req)
			if r.Err == nil || r.Err.Code != tc.code || r.Err.Field != tc.field {
				t.Errorf("result %+v (err %v), want %s on field %q", r, r.Err, tc.code, tc.field)
			}
			if diff := cmp.Diff(withApplied(before, index), rawDump(t, e.db)); diff != "" {
				t.Errorf("a refused command changed the store (-before +after):\n%s", diff)
			}
			index++
		})
	}
}

// TestProposerAcceptBMCCertificate: the proposer takes openssl's form of a
// fingerprint and proposes the stored one; it refuses what is not a
// fingerprint without proposing anything.
func TestProposerAcceptBMCCertificate(t *testing.T) {
	e := newEnv(t)
	p := NewProposer(ProposerConfig{Log: NewLocalLog(e.db, testLogger(t)), Store: e.db})
	m := fxMachine("m1", "02:00:00:00:00:01")
	m.BMC.SealedPassword = nil
	m, err := p.PutMachine(t.Context(), m, 0)
	if err != nil {
		t.Fatal(err)
	}
	openssl := "SHA256 Fingerprint=" + strings.TrimSuffix(strings.Repeat("0A:", 32), ":")
	m, err = p.AcceptBMCCertificate(t.Context(), "m1", openssl)
	if err != nil || m.BMC.Certificate == nil || m.BMC.Certificate.Accepted != fingerprint("0a") {
		t.Fatalf("AcceptBMCCertificate(%q) = %+v, %v; want %s accepted", openssl, m, err, fingerprint("0a"))
	}
	applied := e.db.AppliedIndex()
	_, err = p.AcceptBMCCertificate(t.Context(), "m1", "not-a-fingerprint")
	if e, ok := errs.AsError(err); !ok || e.Field != "fingerprint" || !strings.Contains(err.Error(), "not-a-fingerprint") {
		t.Errorf("err %v, want invalid fingerprint naming what was given", err)
	}
	if e.db.AppliedIndex() != applied {
		t.Error("a refused fingerprint was proposed")
	}
}

package site

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// cmdStep is a command and the check of its result and effect.
type cmdStep struct {
	typ     Type
	payload any
	check   func(t *testing.T, r Result, index uint64)
}

// TestApplyEveryCommand applies every command type in order and checks
// each one's result and effect on the store. The first steps are those of
// release b482c18, whose PutOrder (23) and ApplyDesired (29) are now
// PutOrderV1 and ApplyDesiredV1, and PutSubnet (3) PutSubnetV1; the
// commands added since follow.
func TestApplyEveryCommand(t *testing.T) {
	e := newEnv(t)
	ev := func(kind, machine string) store.Event {
		return store.Event{Kind: kind, MachineID: machine, Message: kind + " " + machine, Fields: map[string]string{"by": "test"}}
	}
	wantEvent := func(seq, index uint64, src store.Event) *store.Event {
		src.Seq, src.Index, src.Time = seq, index, ts0
		return &src
	}
	checkEvents := func(t *testing.T, want ...*store.Event) {
		t.Helper()
		e.view(func(tx *store.Tx) error {
			got, err := tx.EventsSince(0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			return nil
		})
	}
	macByOwner := func(t *testing.T, mac, want string) {
		t.Helper()
		e.view(func(tx *store.Tx) error {
			m, err := tx.MachineByMAC(mac)
			switch {
			case want == "" && !errors.Is(err, errs.ErrNotFound):
				t.Errorf("MachineByMAC(%s) = %v, %v; want not found", mac, m, err)
			case want != "" && (err != nil || m.ID != want):
				t.Errorf("MachineByMAC(%s) = %v, %v; want %s", mac, m, err, want)
			}
			return nil
		})
	}

	machineEvent := ev("machine.created", "m1")
	appended := []store.Event{ev("power.on", "m1"), ev("boot.pxe", "m1")}
	wfEvent := ev("workflow.deleted", "m1")

	steps := []cmdStep{
		{PutSettings, Put[store.Settings]{Object: fxSettings(), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSettings(), i)
			e.view(func(tx *store.Tx) error {
				s, err := tx.Settings()
				if err != nil || s.SiteName != "ams2" {
					t.Errorf("Settings() = %+v, %v", s, err)
				}
				return nil
			})
		}},
		{PutMember, Put[store.Member]{Object: fxMember("n1"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxMember("n1"), i)
		}},
		{PutTokenV1, Put[store.Token]{Object: fxToken("tok1"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			// Release b482c18's tokens had no role: the record has none
			// (it is an admin's), whatever the payload says.
			legacy := fxToken("tok1")
			legacy.Grant = access.Grant{}
			checkPut(t, e, r, legacy, i)
		}},
		{PutSubnetV1, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSubnet("lab"), i)
		}},
		{PutImageV1, Put[store.Image]{Object: fxImage("debian"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxImage("debian"), i)
		}},
		{PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxTemplate("install"), i)
		}},
		{PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), Time: ts0, Events: []store.Event{machineEvent}}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), i)
			macByOwner(t, "02:00:00:00:00:01", "m1")
			macByOwner(t, "02-00-00-00-00-02", "m1")
			checkEvents(t, wantEvent(1, i, machineEvent))
		}},
		{PutLease, Put[store.Lease]{Object: fxLease("198.18.0.100"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxLease("198.18.0.100"), i)
		}},
		{PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			w, err := DecodeValue[store.Workflow](r)
			if r.Err != nil || err != nil {
				t.Fatalf("result = %+v (err %v, decode %v)", r, r.Err, err)
			}
			if w.Status() != workflow.Pending || len(w.State.Actions) != 2 || w.Values["hostname"] != "m1" {
				t.Errorf("created workflow = %+v, want pending with 2 actions and hostname m1", w)
			}
			a, _ := w.State.Plan.Action("write")
			if a.Args["url"] != ArtifactPath+fxImage("debian").SHA256 || a.Args["sha256"] != fxImage("debian").SHA256 || a.Args["format"] != "raw.gz" {
				t.Errorf("image.write args = %v, want the image resolved", a.Args)
			}
			checkMachineState(t, e, "m1", store.StateProvisioning, "wf1")
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state")
		}},
		{AppendEvents, Events{Time: ts0, Events: appended}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || r.Index != i || r.Value != nil || r.Object != nil {
				t.Fatalf("result = %+v", r)
			}
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind)
		}},
		{AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceCancel, Reason: "operator", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			w, err := DecodeValue[store.Workflow](r)
			if r.Err != nil || err != nil || w.Status() != workflow.Failed {
				t.Fatalf("result = %+v (err %v, decode %v), want a failed workflow", r, r.Err, err)
			}
			checkMachineState(t, e, "m1", store.StateFailed, "wf1")
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind,
				"action.skipped", "action.skipped", "workflow.failed", "machine.state")
		}},
		{DiscoverV1, DiscoverPayload{Hardware: Hardware{MAC: "02:00:00:00:00:99", CPUs: 2, MemoryBytes: 1 << 30,
			NICs: []NIC{{Name: "eth0", MAC: "02:00:00:00:00:99"}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[DiscoverResult](r)
			if r.Err != nil || err != nil || got.MachineID != "m-020000000099" || !got.Created {
				t.Fatalf("result = %+v (err %v, decode %v), want machine m-020000000099 created", r, r.Err, err)
			}
			checkMachineState(t, e, "m-020000000099", store.StateDiscovered, "")
			macByOwner(t, "02:00:00:00:00:99", "m-020000000099")
		}},
		{PutOrderV1, Put[store.Order]{Object: &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			o, err := DecodeValue[store.Order](r)
			if r.Err != nil || err != nil || o.State != store.OrderRunning || len(o.Jobs) != 1 || o.Jobs[0] != "o1-power" {
				t.Fatalf("result = %+v (err %v, decode %v), want a running order with job o1-power", r, r.Err, err)
			}
		}},
		{StartJob, JobStart{Job: "o1-power", Attempt: 1, Deadline: ts1, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			j, err := DecodeValue[store.Job](r)
			if r.Err != nil || err != nil || j.State != store.JobRunning || j.Attempt != 1 {
				t.Fatalf("result = %+v (err %v, decode %v), want job running its first attempt", r, r.Err, err)
			}
		}},
		{FinishJob, JobFinish{Job: "o1-power", Attempt: 1, Result: JobResult{OK: true, Power: "on"}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			j, err := DecodeValue[store.Job](r)
			if r.Err != nil || err != nil || j.State != store.JobSucceeded {
				t.Fatalf("result = %+v (err %v, decode %v), want job succeeded", r, r.Err, err)
			}
			e.view(func(tx *store.Tx) error {
				o, _ := store.Get[store.Order](tx, "o1")
				m, _ := store.Get[store.Machine](tx, "m1")
				if o.State != store.OrderSucceeded || m.Power != "on" {
					t.Errorf("order %s, machine power %q: want succeeded and on", o.State, m.Power)
				}
				return nil
			})
		}},
		{SetPower, Power{Machine: "m1", Power: "off", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil {
				t.Fatalf("result = %+v", r)
			}
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind,
				"action.skipped", "action.skipped", "workflow.failed", "machine.state", "machine.discovered",
				"bmc.job.created", "order.created", "bmc.job.running", "bmc.job.succeeded", "power.on", "order.succeeded", "power.off")
		}},
		{DeleteOrder, Delete{Key: "o1", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Order](t, e, r, "o1", i)
		}},
		{DeleteJob, Delete{Key: "o1-power", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Job](t, e, r, "o1-power", i)
		}},
		{DeleteWorkflow, Delete{Key: "wf1", Expect: 11, Time: ts0, Events: []store.Event{wfEvent}}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Workflow](t, e, r, "wf1", i)
		}},
		{DeleteMachine, Delete{Key: "m-020000000099", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Machine](t, e, r, "m-020000000099", i)
		}},
		{DeleteLease, Delete{Key: "198.18.0.100", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Lease](t, e, r, "198.18.0.100", i)
		}},
		{DeleteMachine, Delete{Key: "m1", Expect: 16, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Machine](t, e, r, "m1", i)
			macByOwner(t, "02:00:00:00:00:01", "")
			macByOwner(t, "02:00:00:00:00:02", "")
			if idx := rawDump(t, e.db)["mac_index"]; len(idx) != 0 {
				t.Errorf("MAC index after deleting the only machine: %q", idx)
			}
		}},
		{DeleteTemplate, Delete{Key: "install", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Template](t, e, r, "install", i)
		}},
		{DeleteImageV1, Delete{Key: "debian", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Image](t, e, r, "debian", i)
		}},
		{DeleteSubnet, Delete{Key: "lab", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Subnet](t, e, r, "lab", i)
		}},
		{DeleteToken, Delete{Key: "tok1", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Token](t, e, r, "tok1", i)
		}},
		{DeleteMember, Delete{Key: "n1", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Member](t, e, r, "n1", i)
		}},
		{command.Noop, nil, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || r.Index != i || r.Value != nil || r.Object != nil {
				t.Fatalf("result = %+v", r)
			}
		}},
		{ApplyDesiredV1, DesiredPayload{Desired: Desired{Revision: 1, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "sync", Object: mustJSON(t, fxImage("sync"))}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 1, true, 0)
		}},
		{ApplyDesiredV1, DesiredPayload{Desired: Desired{Revision: 2, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "sync", Deleted: true}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 2, true, 0)
		}},
		{AckEvents, AckedPayload{Seq: 18, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || e.syncState().AckedSeq != 18 {
				t.Fatalf("result = %+v, sync state %+v; want acked 18", r, e.syncState())
			}
		}},
	}

	covered := map[Type]bool{}
	run := func(steps []cmdStep, first uint64) {
		t.Helper()
		for i, s := range steps {
			index := first + uint64(i)
			covered[s.typ] = true
			t.Run(fmt.Sprintf("%02d-type%d", index, s.typ), func(t *testing.T) {
				data := []byte{byte(s.typ)}
				if s.payload != nil {
					data = encodeCmd(t, s.typ, s.payload)
				}
				before := rawDump(t, e.db)
				r := e.apply(entry(index, data))
				s.check(t, r, index)
				if got := e.db.AppliedIndex(); got != index {
					t.Errorf("AppliedIndex = %d, want %d", got, index)
				}
				if s.typ == command.Noop {
					if diff := cmp.Diff(withApplied(before, index), rawDump(t, e.db)); diff != "" {
						t.Errorf("Noop changed more than the applied index (-want +got):\n%s", diff)
					}
				}
			})
		}
	}
	run(steps, 1)

	// Every object but the settings is gone again; the events stay.
	s := readState(t, e.db)
	if n := len(s.Machines) + len(s.Subnets) + len(s.Leases) + len(s.Images) + len(s.Templates) + len(s.Workflows) + len(s.Members) + len(s.Tokens); n != 0 {
		t.Errorf("%d objects left after deleting everything: %+v", n, s)
	}
	if len(s.Settings) != 1 || len(s.Events) != 18 || len(s.MACs) != 0 {
		t.Errorf("settings %d, events %d, MACs %d; want 1, 18, 0", len(s.Settings), len(s.Events), len(s.MACs))
	}

	// The commands added since release b482c18, in a site set up again.
	lease := fxLease("198.18.0.150")
	lease.MAC, lease.MachineID = "02:00:00:00:00:03", "m2"
	renewal := *lease
	renewal.Starts, renewal.Expires = ts0.Add(30*time.Minute), ts0.Add(90*time.Minute)
	since := []cmdStep{
		{PutSubnetV2, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSubnet("lab"), i)
		}},
		{PutMachine, Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:03"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxMachine("m2", "02:00:00:00:00:03"), i)
		}},
		{CommitLease, lease, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[LeaseResult](r)
			if r.Err != nil || err != nil || got.Renewed {
				t.Fatalf("result = %+v (err %v, decode %v), want a new lease", r, r.Err, err)
			}
			e.view(func(tx *store.Tx) error {
				l, err := tx.LeaseByMAC("lab", "02:00:00:00:00:03")
				if err != nil || l.IP != "198.18.0.150" || l.Version != i {
					t.Errorf("LeaseByMAC = %+v, %v; want 198.18.0.150 at version %d", l, err, i)
				}
				return nil
			})
		}},
		{CommitLease, &renewal, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[LeaseResult](r)
			if r.Err != nil || err != nil || !got.Renewed {
				t.Fatalf("result = %+v (err %v, decode %v), want a renewal", r, r.Err, err)
			}
		}},
		{PlaceOrderV2, Put[store.Order]{Object: &store.Order{ID: "o2", Action: store.OrderPowerOn, MachineID: "m2"}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			o, err := DecodeValue[store.Order](r)
			if r.Err != nil || err != nil || o.State != store.OrderRunning || len(o.Jobs) != 1 || o.Jobs[0] != "o2-power" {
				t.Fatalf("result = %+v (err %v, decode %v), want a running order with job o2-power", r, r.Err, err)
			}
		}},
		{ApplyDesiredV2, DesiredPayload{Desired: Desired{Revision: 3, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "sync", Object: mustJSON(t, fxImage("sync"))}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 3, true, 0)
		}},
		{CreateToken, Put[store.Token]{Object: fxToken("tok2"), Time: ts0, By: "alice"}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxToken("tok2"), i)
		}},
		{PutTemplate, Put[store.Template]{Object: probeTemplate(), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, probeTemplate(), i)
		}},
		{PutWorkflow, Put[store.Workflow]{Object: &store.Workflow{ID: "wf3", MachineID: "m2", Template: "probe", Purpose: store.PurposeProvision}, Time: ts0},
			func(t *testing.T, r Result, i uint64) {
				if r.Err != nil {
					t.Fatalf("result = %+v (err %v)", r, r.Err)
				}
			}},
		{BindWorkflow, Bind{Workflow: "wf3", Addr: "198.18.0.150", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			w, err := DecodeValue[store.Workflow](r)
			if r.Err != nil || err != nil || w.BootAddr != "198.18.0.150" || w.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want wf3 bound to 198.18.0.150 at version %d", r, r.Err, err, i)
			}
		}},
	}
	run(since, uint64(len(steps)+1))
	if kinds := eventKinds(t, e); len(kinds) < 18 || !cmp.Equal(kinds[18:], []string{"dhcp.lease", "bmc.job.created", "order.created",
		"workflow.created", "machine.state", "workflow.bound"}) {
		t.Errorf("events %q, want after the first 18 a dhcp.lease for the first ACK only, then the order's, then the workflow's", kinds)
	}

	// The BMC certificate commands, on m2 (a Redfish BMC).
	fp := "sha256:" + strings.Repeat("5e", 32)
	run([]cmdStep{
		{RecordBMCCertificate, BMCCertificate{Machine: "m2", Fingerprint: fp, Address: "10.1.0.1", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || r.Object != nil {
				t.Fatalf("result = %+v (err %v)", r, r.Err)
			}
		}},
		{AcceptBMCCertificate, BMCCertificate{Machine: "m2", Fingerprint: fp, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			m, err := DecodeValue[store.Machine](r)
			if r.Err != nil || err != nil || m.BMC.Certificate == nil || m.BMC.Certificate.Accepted != fp || m.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want m2 with %s accepted at version %d", r, r.Err, err, fp, i)
			}
		}},
	}, uint64(len(steps)+len(since)+1))
	if kinds := eventKinds(t, e); len(kinds) < 2 || !cmp.Equal(kinds[len(kinds)-2:], []string{"bmc.certificate_refused", "bmc.certificate_accepted"}) {
		t.Errorf("events %q, want the BMC certificate's last", kinds)
	}

	// A rotation of the site's CA begins.
	run([]cmdStep{
		{SetCAGeneration, CARotation{Step: CABegin, Generation: 2, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			c, err := DecodeValue[store.CA](r)
			if r.Err != nil || err != nil || c.Generation != 2 || c.Previous != 1 || c.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want generation 2 after 1 at version %d", r, r.Err, err, i)
			}
		}},
	}, uint64(len(steps)+len(since)+3))

	// An operator's next boot to the network; the leader's report of the
	// link to central.
	run([]cmdStep{
		{QueueBootPXE, BootPXE{Job: "boot-pxe-1", Machine: "m2", Time: ts0, By: "alice"}, func(t *testing.T, r Result, i uint64) {
			j, err := DecodeValue[store.Job](r)
			if r.Err != nil || err != nil || j.ID != "boot-pxe-1" || j.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want job boot-pxe-1 at version %d", r, r.Err, err, i)
			}
		}},
		{RecordLink, LinkReport{Node: "n1", Connected: true, Since: ts0, Central: "wss://central.example/v1/sync", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			l, err := DecodeValue[store.Link](r)
			if r.Err != nil || err != nil || !l.Connected || l.Node != "n1" || l.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want n1's connected link at version %d", r, r.Err, err, i)
			}
		}},
	}, uint64(len(steps)+len(since)+4))

	// This release's image put: the artifact records follow the images
	// (the V1 put above kept none).
	run([]cmdStep{
		{PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxImage("debian"), i)
			if err := e.db.View(func(tx *store.Tx) error {
				_, err := store.Get[store.Artifact](tx, fxImage("debian").SHA256)
				return err
			}); err != nil {
				t.Fatalf("no artifact record of debian's image after PutImage: %v", err)
			}
		}},
	}, uint64(len(steps)+len(since)+6))

	// The nodes' artifacts: the leader's pull of the image debian points
	// at, a node holding it, another, one removing it.
	sum := fxImage("debian").SHA256
	run([]cmdStep{
		{ReportArtifact, ArtifactReport{Node: "n1", SHA256: sum, Kind: ArtifactPulling, Source: "central", Held: 1 << 20, Size: 4 << 20, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			a, err := DecodeValue[store.Artifact](r)
			if r.Err != nil || err != nil || a.Pull == nil || a.Pull.Percent() != 25 || a.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want the pull at 25 %% at version %d", r, r.Err, err, i)
			}
		}},
		{RecordArtifact, ArtifactHeld{Node: "n1", SHA256: sum, Size: 4 << 20, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			a, err := DecodeValue[store.Artifact](r)
			if r.Err != nil || err != nil || !a.HeldBy("n1") || a.Pull != nil || a.Size != 4<<20 || a.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want held by n1 at version %d", r, r.Err, err, i)
			}
		}},
		{ForgetArtifact, ArtifactHeld{Node: "n1", SHA256: sum, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			a, err := DecodeValue[store.Artifact](r)
			if r.Err != nil || err != nil || len(a.Nodes) != 0 || a.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want held by none at version %d", r, r.Err, err, i)
			}
		}},
	}, uint64(len(steps)+len(since)+7))
	if kinds := eventKinds(t, e); len(kinds) < 3 || !cmp.Equal(kinds[len(kinds)-3:], []string{"artifact.pulling", "artifact.present", "artifact.removed"}) {
		t.Errorf("events %q, want the artifact's last", kinds)
	}

	// This release's image delete, order and revision.
	run([]cmdStep{
		{DeleteImage, Delete{Key: "debian", Time: ts0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil {
				t.Fatalf("result = %+v (err %v)", r, r.Err)
			}
			var a *store.Artifact
			if err := e.db.View(func(tx *store.Tx) (err error) {
				a, err = store.Get[store.Artifact](tx, fxImage("debian").SHA256)
				return err
			}); err != nil || slices.Contains(a.Names, "debian") {
				t.Fatalf("debian's artifact record after DeleteImage: %+v (err %v), want one no longer naming debian", a, err)
			}
		}},
		{PlaceOrder, Put[store.Order]{Object: &store.Order{ID: "o4", Action: store.OrderPowerOn, MachineID: "m2"}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			o, err := DecodeValue[store.Order](r)
			if r.Err != nil || err != nil || o.State != store.OrderRunning || len(o.Jobs) != 1 || o.Jobs[0] != "o4-power" {
				t.Fatalf("result = %+v (err %v, decode %v), want a running order with job o4-power", r, r.Err, err)
			}
		}},
		{ApplyDesiredV3, DesiredPayload{Desired: Desired{Revision: 4, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "sync2", Object: mustJSON(t, fxImage("sync2"))}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 4, true, 0)
		}},
		{ApplyDesired, DesiredPayload{Desired: Desired{Revision: 5, Changes: []DesiredChange{
			{Kind: DesiredImage, Key: "sync3", Object: mustJSON(t, fxImage("sync3"))}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 5, true, 0)
		}},
		{DiscoverV2, DiscoverPayload{Hardware: Hardware{MAC: "02:00:00:00:00:98", CPUs: 2, MemoryBytes: 1 << 30,
			Vendor: "QEMU", Product: "Standard PC", NICs: []NIC{{Name: "eth0", MAC: "02:00:00:00:00:98"}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[DiscoverResult](r)
			if r.Err != nil || err != nil || got.MachineID != "m-020000000098" || !got.Created {
				t.Fatalf("result = %+v (err %v, decode %v), want machine m-020000000098 created", r, r.Err, err)
			}
			checkMachineState(t, e, "m-020000000098", store.StateDiscovered, "")
			if ev := lastEvent(t, e); ev.Kind != "machine.discovered" || ev.Fields["state"] != "discovered" || ev.Fields["macs"] != `["02:00:00:00:00:98"]` ||
				ev.Fields["vendor"] != "" {
				t.Errorf("event %+v, want machine.discovered with the machine's record and no vendor", ev)
			}
		}},
		{Discover, DiscoverPayload{Hardware: Hardware{MAC: "02:00:00:00:00:97", CPUs: 2, MemoryBytes: 1 << 30,
			Vendor: "QEMU", Product: "Standard PC", NICs: []NIC{{Name: "eth0", MAC: "02:00:00:00:00:97"}}}, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[DiscoverResult](r)
			if r.Err != nil || err != nil || got.MachineID != "m-020000000097" || !got.Created {
				t.Fatalf("result = %+v (err %v, decode %v), want machine m-020000000097 created", r, r.Err, err)
			}
			if ev := lastEvent(t, e); ev.Kind != "machine.discovered" || ev.Fields["macs"] != `["02:00:00:00:00:97"]` ||
				ev.Fields["vendor"] != "QEMU" || ev.Fields["product"] != "Standard PC" {
				t.Errorf("event %+v, want machine.discovered with the machine's record, vendor and product", ev)
			}
		}},
		{PutMachineV2, Put[store.Machine]{Object: fxMachine("m7", "02:00:00:00:00:77"), Time: ts0, By: "ops"}, func(t *testing.T, r Result, i uint64) {
			m, err := DecodeValue[store.Machine](r)
			if r.Err != nil || err != nil || m.ID != "m7" || m.Version != i {
				t.Fatalf("result = %+v (err %v, decode %v), want m7 at version %d", r, r.Err, err, i)
			}
			want := store.Event{Seq: lastEvent(t, e).Seq, Index: i, Time: ts0, MachineID: "m7", Kind: "machine.created",
				Message: "machine m7 created (ready)", Fields: RecordFields(m), By: "ops"}
			if diff := cmp.Diff(want, lastEvent(t, e)); diff != "" {
				t.Errorf("the put's event, recorded at apply (-want +got):\n%s", diff)
			}
		}},
		{PutMachineV2, Put[store.Machine]{Object: fxMachine("m7", "02:00:00:00:00:78"), Time: ts1, Events: []store.Event{{Kind: "note"}}}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil {
				t.Fatalf("result = %+v", r)
			}
			if kinds := eventKinds(t, e); !cmp.Equal(kinds[len(kinds)-2:], []string{"note", "machine.updated"}) {
				t.Errorf("events %q, want the command's then machine.updated last", kinds)
			}
			if ev := lastEvent(t, e); ev.Fields["macs"] != `["02:00:00:00:00:78"]` {
				t.Errorf("event %+v, want the stored machine's MACs", ev)
			}
		}},
		{QuarantineAddress, AddressConflict{IP: "198.18.0.160", Subnet: "lab", MAC: "02:00:00:00:00:aa", Time: ts1, Until: ts1.Add(time.Hour), By: ActorDHCP}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil {
				t.Fatalf("result = %+v", r)
			}
			if ev := lastEvent(t, e); ev.Kind != EventAddressConflict || ev.Fields["ip"] != "198.18.0.160" {
				t.Errorf("event %+v, want %s of 198.18.0.160", ev, EventAddressConflict)
			}
		}},
		{PutSubnet, Put[store.Subnet]{Object: fxSubnet("s58"), Time: ts0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSubnet("s58"), i)
		}},
		{LoseAttempt, Advance{Workflow: "wf1", Kind: AdvanceReport, Time: ts1,
			Report: &Report{Action: "wipe", Attempt: 1, Kind: ReportLost}}, func(t *testing.T, r Result, i uint64) {
			if errCode(r) != errs.CodeNotFound {
				t.Fatalf("a lost report to wf1, deleted: %v, want not found (TestLoseAttempt applies one)", resultErr(r))
			}
		}},
		{TakeOverJob, JobStart{Job: "o1-power", Attempt: 2, Deadline: ts1, Time: ts0}, func(t *testing.T, r Result, i uint64) {
			if errCode(r) != errs.CodeNotFound {
				t.Fatalf("taking o1-power over, deleted: %v, want not found (TestTakeOverJob takes one over)", resultErr(r))
			}
		}},
	}, uint64(len(steps)+len(since)+10))

	for typ := range table {
		if !covered[typ] {
			t.Errorf("command type %d is in the apply table but not tested here", typ)
		}
	}
}

// probeTemplate is a template of one exec action.
func probeTemplate() *store.Template {
	return &store.Template{Name: "probe", Actions: []store.Action{{Name: "probe", Type: "exec", Args: map[string]string{"command": "true"}}}}
}

// TestApplyUpdateKeepsCreated: a second put of an object keeps its
// creation time, takes the new index as its version and moves its MACs.
func TestApplyUpdateKeepsCreated(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	r := e.applyOK(2, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:09"), Expect: 1, Time: ts1})
	got, err := DecodeValue[store.Machine](r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !got.CreatedAt.Equal(ts0) || !got.UpdatedAt.Equal(ts1) {
		t.Errorf("meta after update = %+v, want version 2, created %v, updated %v", got.Meta, ts0, ts1)
	}
	s := readState(t, e.db)
	if diff := cmp.Diff(map[string]string{"02:00:00:00:00:09": "m1"}, s.MACs); diff != "" {
		t.Errorf("MAC index (-want +got):\n%s", diff)
	}
	e.view(func(tx *store.Tx) error {
		if _, err := tx.MachineByMAC("02:00:00:00:00:01"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("old MAC still indexed: %v", err)
		}
		return nil
	})
}

// baseSite is the state the domain error cases start from: indexes 1-4.
func baseSite(t *testing.T) *env {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	e.applyOK(2, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0})
	e.applyOK(3, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	e.applyOK(4, PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0, Events: []store.Event{{Kind: "image.added"}}})
	return e
}

func TestApplyDomainErrors(t *testing.T) {
	badTemplate := fxTemplate("loop")
	badTemplate.Actions[0].Needs = []string{"write"}
	badSubnet := fxSubnet("bad")
	badSubnet.CIDR = "198.18.0.0/33"

	tests := map[string]struct {
		typ     Type
		payload any
		code    string
		field   string
	}{
		"put with wrong expect": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: fxSubnet("lab"), Expect: 2, Time: ts1},
			code: errs.CodeConflict,
		},
		"put of a new object with expect": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: fxSubnet("new"), Expect: 1, Time: ts1},
			code: errs.CodeConflict,
		},
		"machine with wrong expect and events": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:07"), Expect: 1, Time: ts1, Events: []store.Event{{Kind: "machine.updated"}}},
			code: errs.CodeConflict,
		},
		"MAC owned by another machine": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:05", "02:00:00:00:00:01"), Time: ts1},
			code: errs.CodeConflict,
		},
		"MAC owned by another machine, its event recorded at apply": {
			typ: PutMachineV2, payload: Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:05", "02:00:00:00:00:01"), Time: ts1},
			code: errs.CodeConflict,
		},
		"machine with wrong expect, its event recorded at apply": {
			typ: PutMachineV2, payload: Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:07"), Expect: 1, Time: ts1},
			code: errs.CodeConflict,
		},
		"machine without object, its event recorded at apply": {
			typ: PutMachineV2, payload: Put[store.Machine]{Time: ts1},
			code: errs.CodeInvalid, field: "object",
		},
		"workflow on a missing machine": {
			typ: PutWorkflow, payload: Put[store.Workflow]{Object: fxWorkflow("wf1", "ghost"), Time: ts1},
			code: errs.CodeInvalid, field: "machine_id",
		},
		"workflow with a missing template": {
			typ: PutWorkflow, payload: Put[store.Workflow]{Object: &store.Workflow{ID: "wf1", MachineID: "m1", Template: "nope", Purpose: store.PurposeProvision}, Time: ts1},
			code: errs.CodeInvalid, field: "template",
		},
		"invalid subnet": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: badSubnet, Time: ts1},
			code: errs.CodeInvalid, field: "cidr",
		},
		"template with a cycle": {
			typ: PutTemplate, payload: Put[store.Template]{Object: badTemplate, Time: ts1},
			code: errs.CodeInvalid, field: "actions[1].needs[0]",
		},
		"invalid machine": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m9", "not-a-mac"), Time: ts1},
			code: errs.CodeInvalid, field: "interfaces[0].mac",
		},
		"invalid lease": {
			typ: PutLease, payload: Put[store.Lease]{Object: fxLease("198.18.0"), Time: ts1},
			code: errs.CodeInvalid, field: "ip",
		},
		"invalid settings": {
			typ: PutSettings, payload: Put[store.Settings]{Object: &store.Settings{SiteName: "s", UnknownMachines: "boot"}, Time: ts1},
			code: errs.CodeInvalid, field: "unknown_machines",
		},
		"invalid member": {
			typ: PutMember, payload: Put[store.Member]{Object: &store.Member{ID: "n2", APIAddr: "x"}, Time: ts1},
			code: errs.CodeInvalid, field: "raft_addr",
		},
		"invalid token": {
			typ: CreateToken, payload: Put[store.Token]{Object: &store.Token{ID: "t", Hash: "plain"}, Time: ts1},
			code: errs.CodeInvalid, field: "hash",
		},
		"invalid image": {
			typ: PutImage, payload: Put[store.Image]{Object: &store.Image{Name: "x", Type: store.ImageOS, Format: "raw"}, Time: ts1},
			code: errs.CodeInvalid, field: "sha256",
		},
		"put without object": {
			typ: PutImage, payload: Put[store.Image]{Time: ts1},
			code: errs.CodeInvalid, field: "object",
		},
		"valid put with an invalid event": {
			typ: PutImage, payload: Put[store.Image]{Object: fxImage("ubuntu"), Time: ts1, Events: []store.Event{{Kind: "ok"}, {Message: "no kind"}}},
			code: errs.CodeInvalid, field: "events[1].kind",
		},
		"append with an invalid second event": {
			typ: AppendEvents, payload: Events{Time: ts1, Events: []store.Event{{Kind: "ok"}, {Kind: ""}}},
			code: errs.CodeInvalid, field: "events[1].kind",
		},
		"append with an overlong message": {
			typ: AppendEvents, payload: Events{Time: ts1, Events: []store.Event{{Kind: "k", Message: strings.Repeat("x", 5000)}}},
			code: errs.CodeInvalid, field: "events[0].message",
		},
		"append nothing": {
			typ: AppendEvents, payload: Events{Time: ts1},
			code: errs.CodeInvalid, field: "events",
		},
		"delete a missing object": {
			typ: DeleteImage, payload: Delete{Key: "nope", Time: ts1},
			code: errs.CodeNotFound,
		},
		"delete with wrong expect": {
			typ: DeleteSubnet, payload: Delete{Key: "lab", Expect: 3, Time: ts1},
			code: errs.CodeConflict,
		},
		"delete machine with wrong expect": {
			typ: DeleteMachine, payload: Delete{Key: "m1", Expect: 1, Time: ts1, Events: []store.Event{{Kind: "machine.deleted"}}},
			code: errs.CodeConflict,
		},
		"delete with an invalid event": {
			typ: DeleteImage, payload: Delete{Key: "debian", Time: ts1, Events: []store.Event{{}}},
			code: errs.CodeInvalid, field: "events[0].kind",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := baseSite(t)
			before := rawDump(t, e.db)
			r := e.apply(entry(5, encodeCmd(t, tc.typ, tc.payload)))
			if r.Err == nil {
				t.Fatalf("result = %+v, want a refusal", r)
			}
			got := struct {
				Index       uint64
				Code, Field string
			}{r.Index, r.Err.Code, r.Err.Field}
			want := struct {
				Index       uint64
				Code, Field string
			}{5, tc.code, tc.field}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("refusal (-want +got):\n%s\n(message %q)", diff, r.Err.Message)
			}
			if r.Value != nil || r.Object != nil {
				t.Errorf("refused command returned a value: %+v", r)
			}
			if err := resultErr(r); !errors.Is(err, sentinel(tc.code)) {
				t.Errorf("refusal %v does not match %v", err, sentinel(tc.code))
			}
			if diff := cmp.Diff(withApplied(before, 5), rawDump(t, e.db)); diff != "" {
				t.Errorf("refused command changed the store beyond the applied index (-want +got):\n%s", diff)
			}
			if got := e.db.AppliedIndex(); got != 5 {
				t.Errorf("AppliedIndex = %d, want 5", got)
			}
		})
	}
}

func sentinel(code string) error {
	switch code {
	case errs.CodeConflict:
		return errs.ErrConflict
	case errs.CodeNotFound:
		return errs.ErrNotFound
	}
	return errs.ErrInvalid
}

// TestApplyBatchMixed: refusals inside a group of entries change nothing,
// the other commands of the group commit, and results keep their order.
func TestApplyBatchMixed(t *testing.T) {
	e := baseSite(t)
	entries := []command.Entry{
		cmdEntry(t, 5, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab2"), Time: ts0}),
		cmdEntry(t, 6, PutMachine, Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:01"), Time: ts0}), // m1's MAC
		cmdEntry(t, 7, PutMachine, Put[store.Machine]{Object: fxMachine("m3", "02:00:00:00:00:03"), Time: ts0}),
		cmdEntry(t, 8, DeleteSubnet, Delete{Key: "lab", Expect: 99, Time: ts0}),
		cmdEntry(t, 9, DeleteSubnet, Delete{Key: "lab", Expect: 1, Time: ts0}),
		cmdEntry(t, 10, DeleteSubnet, Delete{Key: "lab", Time: ts0}), // already gone
	}
	results := e.applyAll(entries...)
	wantCodes := []string{"", errs.CodeConflict, "", errs.CodeConflict, "", errs.CodeNotFound}
	for i, r := range results {
		if code := errCode(r); r.Index != entries[i].Index || code != wantCodes[i] {
			t.Errorf("result %d = index %d code %q, want index %d code %q", i, r.Index, code, entries[i].Index, wantCodes[i])
		}
	}
	s := readState(t, e.db)
	if s.Applied != 10 {
		t.Errorf("AppliedIndex = %d, want 10", s.Applied)
	}
	var ids, subnets []string
	for _, m := range s.Machines {
		ids = append(ids, m.ID)
	}
	for _, sn := range s.Subnets {
		subnets = append(subnets, sn.Name)
	}
	if diff := cmp.Diff([]string{"m1", "m3"}, ids); diff != "" {
		t.Errorf("machines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lab2"}, subnets); diff != "" {
		t.Errorf("subnets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"02:00:00:00:00:01": "m1", "02:00:00:00:00:03": "m3"}, s.MACs); diff != "" {
		t.Errorf("MAC index (-want +got):\n%s", diff)
	}
}

func putMachineCmd(t *testing.T, id, mac string, expect uint64) []byte {
	t.Helper()
	m := &store.Machine{ID: id, Arch: "x86_64", State: store.StateReady, Interfaces: []store.Interface{{MAC: mac}}}
	return encodeCmd(t, PutMachine, Put[store.Machine]{Object: m, Expect: expect, Time: time.Unix(1700000000, 0).UTC()})
}

// TestApplyBatchEntry applies a Batch log entry as the Raft node hands it
// over: each command gets its own result, a refused one changes nothing
// and does not stop the others, and all share the entry's index.
func TestApplyBatchEntry(t *testing.T) {
	e := newEnv(t)
	batch := command.EncodeBatch([][]byte{
		putMachineCmd(t, "m1", "02:00:00:00:00:01", 0),
		putMachineCmd(t, "m2", "02:00:00:00:00:01", 0), // m1's MAC: refused
		putMachineCmd(t, "m3", "02:00:00:00:00:03", 0),
	})
	res := e.applyAll(unpackBatch(t, 7, batch)...)
	if len(res) != 3 {
		t.Fatalf("batch results: %d, want 3", len(res))
	}
	if res[0].Err != nil || res[2].Err != nil {
		t.Fatalf("unexpected refusals: %+v %+v", res[0].Err, res[2].Err)
	}
	if res[1].Err == nil || res[1].Err.Code != errs.CodeConflict {
		t.Fatalf("duplicate MAC not refused: %+v", res[1])
	}
	m3, err := DecodeValue[store.Machine](res[2])
	if err != nil || m3.Version != 7 {
		t.Fatalf("m3 = %+v, %v; want version 7", m3, err)
	}
	e.view(func(tx *store.Tx) error {
		if _, err := store.Get[store.Machine](tx, "m2"); err == nil {
			t.Error("refused m2 was stored")
		}
		if n := store.Count[store.Machine](tx); n != 2 {
			t.Errorf("%d machines, want 2", n)
		}
		if tx.AppliedIndex() != 7 {
			t.Errorf("applied index %d, want 7", tx.AppliedIndex())
		}
		return nil
	})
}

func TestApplyReplay(t *testing.T) {
	e := newEnv(t)
	var entries []command.Entry
	for i := range 7 {
		id := fmt.Sprintf("m%d", i+1)
		entries = append(entries, cmdEntry(t, uint64(i+1), PutMachine, Put[store.Machine]{
			Object: fxMachine(id, fmt.Sprintf("02:00:00:00:01:%02x", i+1)), Time: ts0,
			Events: []store.Event{{Kind: "machine.created", MachineID: id}},
		}))
	}
	for _, en := range entries[:5] {
		e.apply(en)
	}
	state := readState(t, e.db)
	dump := rawDump(t, e.db)
	if state.Applied != 5 || len(state.Machines) != 5 || len(state.Events) != 5 {
		t.Fatalf("after 5 entries: applied %d, %d machines, %d events", state.Applied, len(state.Machines), len(state.Events))
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if diff := cmp.Diff(dump, rawDump(t, e.db)); diff != "" {
			t.Errorf("replay changed the store (-want +got):\n%s", diff)
		}
		if got := e.db.AppliedIndex(); got != 5 {
			t.Errorf("AppliedIndex = %d after replay, want 5", got)
		}
	}

	t.Run("one entry", func(t *testing.T) {
		for _, en := range []command.Entry{entries[2], entries[4], entries[0]} {
			r := e.apply(en)
			if diff := cmp.Diff(Result{Index: en.Index}, r); diff != "" {
				t.Errorf("replayed result (-want +got):\n%s", diff)
			}
		}
		unchanged(t)
	})

	t.Run("different data at an applied index", func(t *testing.T) {
		// Skipping goes by index, not by content: the store already holds
		// whatever index 4 was.
		other := cmdEntry(t, 4, PutSubnet, Put[store.Subnet]{Object: fxSubnet("sneaky"), Time: ts0})
		if r := e.apply(other); r.Err != nil || r.Value != nil || r.Object != nil {
			t.Errorf("result = %+v", r)
		}
		bad := entry(3, []byte{99, '{'}) // would panic if applied
		e.apply(bad)
		unchanged(t)
	})

	t.Run("whole group", func(t *testing.T) {
		for i, r := range e.applyAll(entries[:5]...) {
			if diff := cmp.Diff(Result{Index: entries[i].Index}, r); diff != "" {
				t.Errorf("replayed result %d (-want +got):\n%s", i, diff)
			}
		}
		unchanged(t)
	})

	t.Run("overlapping group", func(t *testing.T) {
		for i, r := range e.applyAll(entries[3:]...) {
			idx := entries[3+i].Index
			applied := idx > 5
			if r.Index != idx || r.Err != nil || (r.Object != nil || r.Value != nil) != applied {
				t.Errorf("result for index %d = %+v, applied=%v", idx, r, applied)
			}
		}
		s := readState(t, e.db)
		if s.Applied != 7 || len(s.Machines) != 7 || len(s.Events) != 7 {
			t.Errorf("after overlap: applied %d, %d machines, %d events; want 7, 7, 7", s.Applied, len(s.Machines), len(s.Events))
		}
		for i, ev := range s.Events {
			if ev.Seq != uint64(i+1) || ev.Index != uint64(i+1) {
				t.Errorf("event %d: seq %d index %d", i, ev.Seq, ev.Index)
			}
		}
	})
}

// TestApplyEntriesWithoutCommand: entries that carry no command (the Raft
// node hands over configuration changes and Raft's own no-ops and
// barriers this way) advance the applied index and change nothing else.
func TestApplyEntriesWithoutCommand(t *testing.T) {
	e := newEnv(t)
	before := rawDump(t, e.db)
	entries := []command.Entry{{Index: 1}, {Index: 2}, {Index: 3}}
	for i, r := range e.applyAll(entries...) {
		if diff := cmp.Diff(Result{Index: entries[i].Index}, r); diff != "" {
			t.Errorf("result %d (-want +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(withApplied(before, 3), rawDump(t, e.db)); diff != "" {
		t.Errorf("store (-want +got):\n%s", diff)
	}
}

// TestApplyBatchMany: a large group commits every command, numbers events
// in log order and leaves the applied index at the last entry.
func TestApplyBatchMany(t *testing.T) {
	e := newEnv(t)
	const n = 500
	var entries []command.Entry
	index := uint64(10)
	for i := range n {
		if i%5 == 4 {
			entries = append(entries, cmdEntry(t, index, AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "tick", Message: fmt.Sprint(i)}}}))
		} else {
			id := fmt.Sprintf("m%03d", i)
			entries = append(entries, cmdEntry(t, index, PutMachine, Put[store.Machine]{Object: fxMachine(id, fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)), Time: ts0}))
		}
		index += 1 + uint64(i%3) // gaps: the entries between are not commands
	}
	for i, r := range e.applyAll(entries...) {
		if r.Index != entries[i].Index || r.Err != nil {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	s := readState(t, e.db)
	if want := entries[n-1].Index; s.Applied != want {
		t.Errorf("AppliedIndex = %d, want %d", s.Applied, want)
	}
	if len(s.Machines) != n*4/5 || len(s.MACs) != n*4/5 {
		t.Errorf("%d machines, %d MACs; want %d", len(s.Machines), len(s.MACs), n*4/5)
	}
	if len(s.Events) != n/5 {
		t.Fatalf("%d events, want %d", len(s.Events), n/5)
	}
	for i, ev := range s.Events {
		want := entries[i*5+4]
		if ev.Seq != uint64(i+1) || ev.Index != want.Index || ev.Message != fmt.Sprint(i*5+4) {
			t.Errorf("event %d = seq %d index %d %q; want seq %d index %d", i, ev.Seq, ev.Index, ev.Message, i+1, want.Index)
		}
	}
	for _, m := range s.Machines {
		var i int
		fmt.Sscanf(m.ID, "m%d", &i)
		if m.Version != entries[i].Index {
			t.Errorf("machine %s version %d, want %d", m.ID, m.Version, entries[i].Index)
		}
	}
}

// TestApplyUnknownCommand: a command this node does not understand stops
// it, changing nothing; one marked ignorable (bit 128) is skipped and
// still advances the applied index.
func TestApplyUnknownCommand(t *testing.T) {
	e := baseSite(t)
	good := func(index uint64) command.Entry {
		return cmdEntry(t, index, PutSubnet, Put[store.Subnet]{Object: fxSubnet(fmt.Sprintf("s%d", index)), Time: ts0})
	}

	panics := map[string][]command.Entry{
		"unknown type":                 {entry(5, []byte{99, '{', '}'})},
		"highest type without bit":     {entry(5, []byte{127})},
		"empty command":                {entry(5, []byte{})},
		"unknown type after good":      {good(5), good(6), entry(7, []byte{100, '{', '}'})},
		"unknown type before good":     {entry(5, []byte{101}), good(6)},
		"ignorable then unknown":       {entry(5, []byte{byte(command.IgnoreUnknown | 99)}), entry(6, []byte{102})},
		"batch handed over whole":      {entry(5, command.EncodeBatch([][]byte{encodeCmd(t, PutSubnet, Put[store.Subnet]{Object: fxSubnet("s5"), Time: ts0})}))},
		"undecodable known command":    {entry(5, []byte{byte(PutSubnet), '{', '"'})},
		"known command of wrong shape": {entry(5, []byte(string(rune(PutMachine))+`{"object":"a string"}`))},
	}
	for name, entries := range panics {
		t.Run(name, func(t *testing.T) {
			before := rawDump(t, e.db)
			v := mustPanic(t, func() { e.sm.Apply(entries) })
			msg := panicText(v)
			if strings.HasPrefix(name, "undecodable") || strings.HasPrefix(name, "known command") {
				if !strings.Contains(msg, "decode command at index 5") {
					t.Errorf("panic %q does not say the command did not decode", msg)
				}
			} else {
				if !strings.Contains(msg, "unknown command type") {
					t.Errorf("panic %q does not mention %q", msg, "unknown command type")
				}
				if err, ok := v.(error); !ok || !errors.Is(err, command.ErrUnknown) {
					t.Errorf("panic value %#v is not command.ErrUnknown", v)
				}
			}
			if diff := cmp.Diff(before, rawDump(t, e.db)); diff != "" {
				t.Errorf("a group that panicked changed the store (-want +got):\n%s", diff)
			}
			if got := e.db.AppliedIndex(); got != 4 {
				t.Errorf("AppliedIndex = %d, want 4", got)
			}
		})
	}

	t.Run("ignorable", func(t *testing.T) {
		before := rawDump(t, e.db)
		r := e.apply(entry(5, []byte{byte(command.IgnoreUnknown | 99), '{', '}'}))
		if diff := cmp.Diff(Result{Index: 5}, r); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(withApplied(before, 5), rawDump(t, e.db)); diff != "" {
			t.Errorf("skipped command changed the store (-want +got):\n%s", diff)
		}
		// Ignorable commands mixed with real ones in a group.
		res := e.applyAll(good(6), entry(7, []byte{255}), good(8))
		if r := res[1]; r.Index != 7 || r.Err != nil || r.Object != nil || r.Value != nil {
			t.Errorf("ignorable result = %+v", r)
		}
		s := readState(t, e.db)
		if s.Applied != 8 || len(s.Subnets) != 3 {
			t.Errorf("applied %d, %d subnets; want 8 and 3", s.Applied, len(s.Subnets))
		}
	})

	t.Run("usable after a panic", func(t *testing.T) {
		r := e.apply(good(9))
		if r.Err != nil || r.Index != 9 || e.db.AppliedIndex() != 9 {
			t.Errorf("apply after panics: %+v, applied %d", r, e.db.AppliedIndex())
		}
	})
}

package site

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// A site upgraded node by node: while a member's record does not report
// knowing a command type newer than LastUnreported (a node of an older
// release), the proposer does not propose it — a subnet is put as
// PutSubnetV2, which every release applies, and a quarantine is refused
// naming the node — and once every member reports it, it does.
func TestProposerWaitsForEveryMemberToKnowACommand(t *testing.T) {
	e := newEnv(t)
	now := uint8(HighestCommand())
	e.applyOK(1, PutMember, Put[store.Member]{Object: &store.Member{ID: "n1", RaftAddr: "198.18.0.11:7001", APIAddr: "https://198.18.0.11:7000", Commands: now}, Time: ts0})
	e.applyOK(2, PutMember, Put[store.Member]{Object: &store.Member{ID: "n2", RaftAddr: "198.18.0.12:7001", APIAddr: "https://198.18.0.12:7000"}, Time: ts0})
	log := &appliedCommits{Log: NewLocalLog(e.db, nil)}
	p := NewProposer(ProposerConfig{Log: log, Store: e.db})
	proposed := func() Type {
		t.Helper()
		if len(log.cmds) == 0 {
			t.Fatal("nothing proposed")
		}
		typ, _ := command.Split(log.cmds[len(log.cmds)-1])
		return typ
	}
	if _, err := p.PutSubnet(t.Context(), fxSubnet("lab"), 0); err != nil {
		t.Fatalf("PutSubnet with an old member: %v", err)
	}
	if got := proposed(); got != PutSubnetV2 {
		t.Errorf("with n2 old, a subnet is proposed as type %d, want PutSubnetV2 (%d)", got, PutSubnetV2)
	}
	n := len(log.cmds)
	err := p.QuarantineAddress(t.Context(), "lab", "198.18.0.9", "02:00:00:00:00:09", time.Minute)
	if !errors.Is(err, ErrUnknownToMember) || len(log.cmds) != n {
		t.Errorf("QuarantineAddress with n2 old: %v, %d commands proposed; want ErrUnknownToMember and none", err, len(log.cmds)-n)
	}
	if err := p.PutMember(t.Context(), &store.Member{ID: "n2", RaftAddr: "198.18.0.12:7001", APIAddr: "https://198.18.0.12:7000", Commands: now}); err != nil {
		t.Fatalf("PutMember: %v", err)
	}
	if _, err := p.PutSubnet(t.Context(), fxSubnet("lab"), 0); err != nil {
		t.Fatalf("PutSubnet: %v", err)
	}
	if got := proposed(); got != PutSubnet {
		t.Errorf("with every member new, a subnet is proposed as type %d, want PutSubnet (%d)", got, PutSubnet)
	}
	if err := p.QuarantineAddress(t.Context(), "lab", "198.18.0.9", "02:00:00:00:00:09", time.Minute); err != nil {
		t.Errorf("QuarantineAddress with every member new: %v", err)
	}
	if got := proposed(); got != QuarantineAddress {
		t.Errorf("a quarantine is proposed as type %d, want %d", got, QuarantineAddress)
	}
}

// HighestCommand is a type the state machine applies, above every
// type a release before command reporting knew.
func TestHighestCommand(t *testing.T) {
	h := HighestCommand()
	if _, ok := table[h]; !ok || h <= LastUnreported {
		t.Errorf("HighestCommand() = %d: in the table %v, want above %d", h, ok, LastUnreported)
	}
}

// appliedCommits records what a proposer commits, and applies it.
type appliedCommits struct {
	Log
	cmds [][]byte
}

func (c *appliedCommits) Commit(ctx context.Context, cmd []byte) (Result, error) {
	c.cmds = append(c.cmds, cmd)
	return c.Log.Commit(ctx, cmd)
}

// An agent's lost report is proposed as LoseAttempt, and as the failed
// finish an older release knows while one of its nodes remains.
func TestLostReportWithAnOldMember(t *testing.T) {
	e := workflowSite(t)
	putWorkflow(t, e, 10, sampleWorkflow("wf1"))
	if _, err := advance(t, e, 11, start("wipe", 1, t0)); err != nil {
		t.Fatal(err)
	}
	e.applyOK(12, PutMember, Put[store.Member]{Object: &store.Member{ID: "n1", RaftAddr: "198.18.0.11:7001", APIAddr: "https://198.18.0.11:7000", Commands: uint8(HighestCommand())}, Time: ts0})
	e.applyOK(13, PutMember, Put[store.Member]{Object: &store.Member{ID: "n2", RaftAddr: "198.18.0.12:7001", APIAddr: "https://198.18.0.12:7000"}, Time: ts0})
	log := &appliedCommits{Log: NewLocalLog(e.db, nil)}
	p := NewProposer(ProposerConfig{Log: log, Store: e.db})
	lost := Report{Action: "wipe", Attempt: 1, Kind: ReportLost, Message: "the agent restarted during attempt 1"}
	if _, err := p.Report(t.Context(), "wf1", lost); err != nil {
		t.Fatalf("a lost report with n2 old: %v", err)
	}
	if len(log.cmds) != 1 {
		t.Fatalf("%d commands proposed, want 1", len(log.cmds))
	}
	typ, payload := command.Split(log.cmds[0])
	if typ != AdvanceWorkflow || !strings.Contains(string(payload), `"kind":"finish"`) {
		t.Errorf("proposed type %d %s, want AdvanceWorkflow (%d) with a finish", typ, payload, AdvanceWorkflow)
	}
}

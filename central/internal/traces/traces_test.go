package traces

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

const traceID = "0af7651916cd43dd8448eb211c80319c"

func openStore(t *testing.T) *store.DB {
	db, err := store.Open(filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Each provision's phases are observed once, when its trace first holds
// its first boot's metadata request: not before, and not again when
// more of its spans (or the same ones) arrive.
func TestKeeperObservesPhasesOnce(t *testing.T) {
	db := openStore(t)
	reg := prometheus.NewRegistry()
	k := New(db, reg, nil)
	spans := centraltest.ProvisionTrace(traceID, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	last := len(spans) - 1
	count := func() int { return testutil.CollectAndCount(reg, "outpost_provision_phase_seconds") }
	if err := k.Add(spans[:last]); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d phases observed before the metadata request, want none", n)
	}
	if err := k.Send(t.Context(), spans[last:]); err != nil {
		t.Fatal(err)
	}
	if err := k.Add(spans); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != len(tracing.PhaseNames) {
		t.Fatalf("%d phases observed, want each of the %d once", n, len(tracing.PhaseNames))
	}
	want := `
# HELP outpost_provision_phase_seconds How long each phase of a provision took, from its trace (observed once a provision, when its trace first holds its first boot's metadata request).
# TYPE outpost_provision_phase_seconds histogram
`
	got, err := testutil.CollectAndFormat(k.phases, expfmt.TypeTextPlain, "outpost_provision_phase_seconds")
	if err != nil || !strings.HasPrefix(string(got), strings.TrimPrefix(want, "\n")) ||
		!strings.Contains(string(got), `outpost_provision_phase_seconds_sum{phase="image write"} 60`) ||
		!strings.Contains(string(got), `outpost_provision_phase_seconds_count{phase="image write"} 1`) {
		t.Fatalf("histogram:\n%s (%v)", got, err)
	}
	tr, err := Read(db, traceID)
	if err != nil || !tr.Completeness.Complete || len(tr.Phases) != len(tracing.PhaseNames) {
		t.Fatalf("read: %+v, %v", tr, err)
	}
	if _, err := Read(db, strings.Repeat("1", 32)); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), strings.Repeat("1", 32)) {
		t.Fatalf("an unknown trace: %v, want not found naming it", err)
	}
}

// notLeader is the proposer of a follower: it writes nothing.
type notLeader struct{}

func (notLeader) Propose(context.Context, []byte) (uint64, any, error) {
	return 0, nil, errors.New("raftnode: not the leader")
}

// On a node that does not lead, central's own spans are counted as
// dropped rather than failing each batch; a site's are an error (the
// hub's session, which only the leader holds, ends).
func TestKeeperFollower(t *testing.T) {
	db := openStore(t)
	db.SetProposer(notLeader{})
	reg := prometheus.NewRegistry()
	k := New(db, reg, nil)
	spans := centraltest.ProvisionTrace(traceID, time.Now())
	if err := k.Send(t.Context(), spans); err != nil {
		t.Fatalf("send on a follower: %v, want the spans dropped", err)
	}
	if got := testutil.ToFloat64(k.dropped); got != float64(len(spans)) {
		t.Fatalf("dropped %v, want %d", got, len(spans))
	}
	if err := k.Add(spans); !errors.Is(err, store.ErrNotApplied) {
		t.Fatalf("add on a follower: %v, want not applied", err)
	}
}

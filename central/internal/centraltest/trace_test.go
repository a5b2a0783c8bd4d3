package centraltest

import (
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/tracing"
)

// The fixture is what it says: a complete provision trace.
func TestProvisionTraceComplete(t *testing.T) {
	c := tracing.Check(ProvisionTrace("0af7651916cd43dd8448eb211c80319c", time.Now()))
	if !c.Complete {
		t.Fatalf("the fixture is not a complete trace: %+v", c)
	}
}

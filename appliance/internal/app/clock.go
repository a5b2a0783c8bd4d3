package app

import (
	"fmt"
	"log/slog"

	"github.com/outposthq/outpost/internal/clock"
)

// labClock is the node's wall clock: the host's, or in the lab, where
// clock.OffsetEnv names a file, the host's plus that file's offset (a
// test hook that steps this node's clock without the host's). It is
// said loudly, since a production appliance never has it.
func labClock(log *slog.Logger) (*clock.Clock, error) {
	clk, err := clock.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("lab clock (%s): %w", clock.OffsetEnv, err)
	}
	if clk != clock.System {
		log.Warn("lab clock hook on: this node's wall clock is offset by a test file", "env", clock.OffsetEnv, "offset", clk.Offset())
	}
	return clk, nil
}

// Command applianced is the Outpost appliance daemon: one per site node.
package main

import (
	"os"
	"runtime/debug"

	"github.com/outposthq/outpost/appliance/internal/app"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/internal/conf"
)

// gcPercent is applianced's garbage collection target unless GOGC sets
// one. Its live heap is small (a few MB for thousands of machines), so
// at Go's default of 100 the collector runs every hundred or so store
// commits and is the largest single cost of one (count a one-node
// machine put's instructions with valgrind --tool=callgrind over
// `go test -bench Commit ./appliance/internal/cluster/`, GOGC=100 and
// 400); with 400 the heap stays within a few times the live one.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	conf.Main("applianced", config.Load, app.Run)
}

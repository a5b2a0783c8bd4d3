// Command outpost is the operator's command line for an Outpost site: it
// applies object files, reads and deletes objects, follows events and
// manages the cluster and API tokens through the appliance API. Run
// "outpost help" for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/outposthq/outpost/appliance/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

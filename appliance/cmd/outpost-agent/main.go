// Command outpost-agent is the provisioning agent of Outpost's in-memory
// installer: the installer's /init runs it, as root, once the network is
// up, and respawns it if it ever ends. It reads its credential from the
// kernel command line, runs the machine's workflow, traced under the
// workflow's trace (its spans sent to the appliance; OUTPOST_TRACING=off
// records none), and never exits on its own. See package agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/outposthq/outpost/appliance/internal/agent"
)

func main() {
	cmdline := flag.String("cmdline", agent.DefaultCmdlinePath, "the file holding the kernel command line")
	root := flag.String("root", "/", "the directory holding proc and sys")
	debug := flag.Bool("debug", false, "log at debug level")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := agent.New(agent.Config{CmdlinePath: *cmdline, Root: *root}, log)
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-agent:", err)
		os.Exit(1)
	}
}

package conf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Config is a daemon's loaded configuration: it makes the daemon's logger
// (an embedded Logging does).
type Config interface {
	Logger(w io.Writer) *slog.Logger
}

// LoadFunc loads a daemon's configuration from its arguments.
type LoadFunc[C Config] func(args []string) (C, error)

// RunFunc runs a daemon until ctx ends; out is for what it prints for an
// operator (addresses, a first token).
type RunFunc[C Config] func(ctx context.Context, cfg C, log *slog.Logger, out io.Writer) error

// Main is a daemon's main function: it runs Run with the process's
// arguments and streams, and a context canceled at SIGINT or SIGTERM,
// then exits with Run's code.
func Main[C Config](name string, load LoadFunc[C], run RunFunc[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, name, os.Args[1:], os.Stdout, os.Stderr, load, run)
	stop()
	os.Exit(code)
}

// Run loads the configuration from args, makes its logger on stderr, and
// runs run with ctx and stdout until it returns. Its result is the exit
// code: 0, 2 when the configuration is refused (the error on stderr,
// after name), 1 when run fails (the error logged and on stderr).
func Run[C Config](ctx context.Context, name string, args []string, stdout, stderr io.Writer, load LoadFunc[C], run RunFunc[C]) int {
	cfg, err := load(args)
	if err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return 2
	}
	log := cfg.Logger(stderr)
	if err := run(ctx, cfg, log, stdout); err != nil {
		log.Error(name+" stopped", "err", err)
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
	return 0
}

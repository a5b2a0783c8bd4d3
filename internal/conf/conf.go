// Package conf is what the two daemons, applianced and centrald, share in
// loading their configuration and starting: the Duration type of their
// YAML files and flags, the loading sequence (defaults, then the YAML
// file named by -config, then the flags, which win), the log settings
// with the logger they make, Main, which runs a daemon until SIGINT or
// SIGTERM, and SaveAdminToken, which writes the first admin token's file
// and never overwrites one.
//
// Each daemon's own config package keeps its fields, defaults, flags and
// Validate; conf holds only what is the same on both sides.
package conf

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Duration is a time.Duration written as "90s" in YAML and on the
// command line.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag's value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a string, "90s".
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a string such as "90s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if err := d.Set(strings.Trim(string(b), `"`)); err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	return nil
}

// Load completes the flag set fs with -config, then fills cfg, which
// holds the defaults and whose fields fs's flags are bound to: it parses
// args once to find -config, strictly decodes that YAML file into cfg,
// then parses args again so that the flags win over the file. Arguments
// left after the flags are an error. Load does not validate cfg.
func Load(fs *flag.FlagSet, args []string, cfg any) error {
	file := fs.String("config", "", "YAML configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file != "" {
		raw, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := yaml.UnmarshalStrict(raw, cfg); err != nil {
			return fmt.Errorf("config: %s: %w", *file, err)
		}
		if err := fs.Parse(args); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// Logging is the log settings of a daemon, embedded in its Config: its
// fields appear there as log_level and log_format.
type Logging struct {
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is text or json.
	LogFormat string `json:"log_format"`
}

// AddFlags binds -log-level and -log-format to l, with l's values as
// their defaults.
func (l *Logging) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.LogLevel, "log-level", l.LogLevel, "debug, info, warn or error")
	fs.StringVar(&l.LogFormat, "log-format", l.LogFormat, "text or json")
}

// Validate names each setting at fault, in the words of a config file.
func (l Logging) Validate() []error {
	var errs []error
	switch l.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", l.LogLevel))
	}
	switch l.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", l.LogFormat))
	}
	return errs
}

// Logger returns a logger writing to w at l's level, as JSON or text.
// A level Validate refuses logs at info.
func (l Logging) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if l.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

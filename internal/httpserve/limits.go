package httpserve

import (
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/conf"
)

// Limits are a server's deadlines and connection caps: the part of a
// daemon's configuration that says how much of it one client may hold.
// Both daemons embed it in their configuration files (api_limits,
// boot_limits, limits), starting from DefaultLimits. A zero deadline is
// its default; a zero cap is no cap.
type Limits struct {
	// HeaderTimeout bounds the reading of a request's line and headers.
	HeaderTimeout conf.Duration `json:"header_timeout,omitempty"`
	// BodyTimeout is how long a request body may take to arrive, from
	// the end of its headers: a client that trickles a body is cut
	// after it. An upload (a route of Shape Upload) may take up to
	// UploadTimeout instead, as long as every BodyTimeout brings at
	// least MinProgress bytes of it.
	BodyTimeout conf.Duration `json:"body_timeout,omitempty"`
	// UploadTimeout bounds an upload as a whole.
	UploadTimeout conf.Duration `json:"upload_timeout,omitempty"`
	// WriteTimeout is how long the client has to take each piece (at
	// most WriteChunk bytes) of a response: long responses and streams
	// renew it as they go, and a client that stops reading is cut after
	// it.
	WriteTimeout conf.Duration `json:"write_timeout,omitempty"`
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request.
	IdleTimeout conf.Duration `json:"idle_timeout,omitempty"`
	// MaxConns caps the connections open at once; one more is closed as
	// soon as it is accepted. 0 is no cap. Keep the sum of every server's caps (and
	// twice the TFTP transfer cap) below the process's open-file limit
	// (ulimit -n), with room for the store, the Raft log and peers.
	MaxConns int `json:"max_conns,omitempty"`
	// MaxConnsPerSource caps the connections open at once from one
	// source address, so that one client cannot take them all. 0 is no
	// cap.
	MaxConnsPerSource int `json:"max_conns_per_source,omitempty"`
}

// Deadlines every server shares unless configured otherwise.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 30 * time.Second
	DefaultUploadTimeout = time.Hour
	DefaultWriteTimeout  = 30 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
)

// MinProgress is what an upload must bring in every BodyTimeout to keep
// going.
const MinProgress = 64 << 10

// DefaultLimits are the deadlines above with the caps given.
func DefaultLimits(maxConns, maxConnsPerSource int) Limits {
	return Limits{
		HeaderTimeout:     conf.Duration(DefaultHeaderTimeout),
		BodyTimeout:       conf.Duration(DefaultBodyTimeout),
		UploadTimeout:     conf.Duration(DefaultUploadTimeout),
		WriteTimeout:      conf.Duration(DefaultWriteTimeout),
		IdleTimeout:       conf.Duration(DefaultIdleTimeout),
		MaxConns:          maxConns,
		MaxConnsPerSource: maxConnsPerSource,
	}
}

// withDefaults returns l with each zero deadline set to its default.
func (l Limits) withDefaults() Limits {
	for _, f := range []struct {
		v *conf.Duration
		d time.Duration
	}{
		{&l.HeaderTimeout, DefaultHeaderTimeout}, {&l.BodyTimeout, DefaultBodyTimeout},
		{&l.UploadTimeout, DefaultUploadTimeout}, {&l.WriteTimeout, DefaultWriteTimeout},
		{&l.IdleTimeout, DefaultIdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = conf.Duration(f.d)
		}
	}
	return l
}

// Validate checks l, naming each field at fault under prefix (the
// configuration key that holds it).
func (l Limits) Validate(prefix string) []error {
	var errs []error
	for name, d := range map[string]conf.Duration{
		"header_timeout": l.HeaderTimeout, "body_timeout": l.BodyTimeout, "upload_timeout": l.UploadTimeout,
		"write_timeout": l.WriteTimeout, "idle_timeout": l.IdleTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s.%s %v: must be positive", prefix, name, d))
		}
	}
	if l.MaxConns < 0 || l.MaxConnsPerSource < 0 {
		errs = append(errs, fmt.Errorf("%s: max_conns and max_conns_per_source must not be negative", prefix))
	}
	if l.MaxConns > 0 && l.MaxConnsPerSource > l.MaxConns {
		errs = append(errs, fmt.Errorf("%s.max_conns_per_source %d: more than max_conns %d", prefix, l.MaxConnsPerSource, l.MaxConns))
	}
	if l.UploadTimeout > 0 && l.UploadTimeout < l.BodyTimeout {
		errs = append(errs, errors.New(prefix+".upload_timeout: shorter than body_timeout"))
	}
	return errs
}

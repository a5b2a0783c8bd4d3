package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/jobs"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
)

// newJobRunner is the leader's BMC job runner over a bmc.Pool configured
// by cfg.BMC.
func newJobRunner(cfg *config.Config, n *cluster.Site, key *seal.Key, log *slog.Logger) (*jobs.Runner, error) {
	roots, err := cfg.BMCRoots()
	if err != nil {
		return nil, err
	}
	pool := bmc.New(bmc.Config{
		Timeout:     time.Duration(cfg.BMC.CallTimeout),
		Attempts:    cfg.BMC.Attempts,
		Concurrency: cfg.BMC.Concurrency,
		RootCAs:     roots,
		Log:         log.With("component", "bmc"),
	})
	return jobs.New(jobs.Config{
		Site: n, Store: n.DB(), Key: key, BMC: poolBMC{pool},
		JobTimeout:   time.Duration(cfg.BMC.JobTimeout),
		PollInterval: time.Duration(cfg.BMC.PollInterval),
		Log:          log.With("component", "jobs"),
	}), nil
}

// poolBMC runs jobs' actions on a bmc.Pool.
type poolBMC struct{ pool *bmc.Pool }

func credentials(t jobs.Target) bmc.Credentials {
	return bmc.Credentials{Address: t.Address, Username: t.Username, Password: t.Password, Driver: t.Driver, Fingerprint: t.Fingerprint}
}

// jobsError is err as the runner reads it: a refused boot device wraps
// jobs.ErrBootDeviceRefused, a refused certificate is a
// *jobs.CertificateError.
func jobsError(err error) error {
	var e *bmc.Error
	switch {
	case errors.Is(err, bmc.ErrBootDeviceRefused):
		return fmt.Errorf("%w: %v", jobs.ErrBootDeviceRefused, err)
	case errors.Is(err, bmc.ErrCertificate) && errors.As(err, &e):
		return &jobs.CertificateError{Fingerprint: e.Certificate, Err: err}
	}
	return err
}

func (p poolBMC) Do(ctx context.Context, t jobs.Target, j *store.Job) (string, error) {
	c := credentials(t)
	var err error
	power := "on"
	switch j.Action {
	case store.JobPowerOn:
		err = p.pool.PowerOn(ctx, c)
	case store.JobPowerOff:
		err, power = p.pool.PowerOff(ctx, c), "off"
	case store.JobPowerCycle:
		err = p.pool.PowerCycle(ctx, c)
	case store.JobBootPXE:
		power = ""
		err = p.pool.SetBootPXE(ctx, c, bmc.BootOptions{Persistent: j.Persistent, EFI: j.EFI})
	default:
		return "", fmt.Errorf("unknown BMC action %q", j.Action)
	}
	return power, jobsError(err)
}

func (p poolBMC) PowerState(ctx context.Context, t jobs.Target) (string, error) {
	s, err := p.pool.PowerState(ctx, credentials(t))
	return string(s), jobsError(err)
}

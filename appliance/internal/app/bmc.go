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
// by cfg.BMC, with media (nil: none) for virtual media jobs.
func newJobRunner(cfg *config.Config, n *cluster.Site, key *seal.Key, media *mediaServer, log *slog.Logger) (*jobs.Runner, error) {
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
		Site: n, Store: n.DB(), Key: key, BMC: poolBMC{pool: pool, media: media},
		JobTimeout:   time.Duration(cfg.BMC.JobTimeout),
		PollInterval: time.Duration(cfg.BMC.PollInterval),
		Log:          log.With("component", "jobs"),
	}), nil
}

// poolBMC runs jobs' actions on a bmc.Pool, virtual media from media.
type poolBMC struct {
	pool  *bmc.Pool
	media *mediaServer
}

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
	case store.JobInsertMedia:
		return "", p.insertMedia(ctx, c, j)
	case store.JobBootCD:
		// A machine told to boot a CD it will not boot would boot
		// something else: a refusal fails the job, unlike boot_pxe's.
		if err := p.pool.SetBootCD(ctx, c, bmc.BootOptions{Persistent: j.Persistent, EFI: j.EFI}); errors.Is(err, bmc.ErrBootDeviceRefused) {
			return "", fmt.Errorf("boot from CD: %v", err)
		} else if err != nil {
			return "", jobsError(err)
		}
		return "", nil
	default:
		return "", fmt.Errorf("unknown BMC action %q", j.Action)
	}
	return power, jobsError(err)
}

// insertMedia has t's BMC fetch the boot ISO of j's order. The media's
// URL is a secret: neither it nor bmc.Pool's errors hold it.
func (p poolBMC) insertMedia(ctx context.Context, c bmc.Credentials, j *store.Job) error {
	u, err := p.media.URL(ctx, j)
	if err != nil {
		return err
	}
	return jobsError(p.pool.InsertMedia(ctx, c, u))
}

func (p poolBMC) PowerState(ctx context.Context, t jobs.Target) (string, error) {
	s, err := p.pool.PowerState(ctx, credentials(t))
	return string(s), jobsError(err)
}

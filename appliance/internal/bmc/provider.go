package bmc

import (
	"context"
	"fmt"
	"strings"
)

// PowerState is a chassis's power: On or Off.
type PowerState string

// Power states.
const (
	On  PowerState = "on"
	Off PowerState = "off"
)

// Power actions for Provider.SetPower.
const (
	ActionOn    = "on"    // power on; nothing if on
	ActionOff   = "off"   // hard power off; nothing if off
	ActionCycle = "cycle" // off then on; the Pool sends it only to a machine that is on
)

// BootOptions say how the machine boots from the network next.
type BootOptions struct {
	// Persistent sets PXE for every boot, not only the next one.
	Persistent bool
	// EFI asks for a UEFI boot rather than a legacy BIOS one.
	EFI bool
}

// Provider is one way to one BMC: a protocol and the code that speaks it.
// Each call is a single attempt bounded by ctx; the Pool adds retries,
// driver fallback, the per-BMC lock and the site-wide limit. Errors wrap
// ErrAuth, ErrUnreachable, ErrTimeout or ErrBootDeviceRefused when the
// provider can tell, and should not hold the password (the Pool scrubs it
// anyway).
type Provider interface {
	// PowerState reads the chassis's power.
	PowerState(ctx context.Context) (PowerState, error)
	// SetPower does action: ActionOn, ActionOff or ActionCycle.
	SetPower(ctx context.Context, action string) error
	// SetBootPXE sets the next boot (or every boot) to PXE.
	SetBootPXE(ctx context.Context, opts BootOptions) error
	// SetBootCD sets the next boot (or every boot) to the CD drive, the
	// virtual one InsertMedia fills.
	SetBootCD(ctx context.Context, opts BootOptions) error
	// InsertMedia puts the image at url (http or https: the BMC fetches
	// it) in the BMC's virtual CD drive, ejecting what was there; ""
	// only ejects. Its errors do not hold the URL, which may be a
	// secret.
	InsertMedia(ctx context.Context, url string) error
}

// NewProvider makes a driver's Provider for c. It does no I/O; an error
// means c cannot work with this driver (a bad address, a missing program).
type NewProvider func(c Credentials) (Provider, error)

// parsePowerState reads the states bmclib's providers report: ipmitool's
// "Chassis Power is on", Redfish's "On", "PoweringOn" and the like.
func parsePowerState(s string) (PowerState, error) {
	t := strings.ToLower(oneLine(s))
	switch {
	case t == "on" || t == "poweringon" || strings.HasSuffix(t, " is on"):
		return On, nil
	case t == "off" || t == "poweringoff" || strings.HasSuffix(t, " is off"):
		return Off, nil
	}
	return "", fmt.Errorf("unknown power state %q", oneLine(s))
}

package store

import "github.com/outposthq/outpost/internal/errs"

// Settings are the site-wide knobs, kept as one object.
type Settings struct {
	Meta
	// SiteName names the site in the console and toward central.
	SiteName string `json:"site_name"`
	// UnknownMachines says what a machine the site does not know boots:
	// "discover" (the installer in discovery mode) or "exit" (iPXE exits
	// and the firmware tries its next boot device).
	UnknownMachines string `json:"unknown_machines"`
}

// settingsKey is the one key in the settings bucket.
const settingsKey = "site"

func (*Settings) Kind() string   { return "settings" }
func (*Settings) Key() string    { return settingsKey }
func (*Settings) bucket() []byte { return bucketSettings }

// DefaultSettings are in force until an operator changes them.
func DefaultSettings() *Settings {
	return &Settings{SiteName: "site", UnknownMachines: "discover"}
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	if err := validName("site_name", s.SiteName); err != nil {
		return err
	}
	return validOneOf("unknown_machines", s.UnknownMachines, "discover", "exit")
}

// Settings returns the site settings, or the defaults if none are stored.
func (tx *Tx) Settings() (*Settings, error) {
	s, err := Get[Settings](tx, settingsKey)
	if err != nil {
		if e, ok := errs.AsError(err); ok && e.Code == errs.CodeNotFound {
			return DefaultSettings(), nil
		}
		return nil, err
	}
	return s, nil
}

package api

import (
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// prepareMachine normalizes a machine and seals its BMC password. What
// the appliance owns or keeps up to date survives a put that does not name
// it (store.Machine.KeepApplianceFields), the stored password included, so
// re-applying a file that omits it does not erase it.
func prepareMachine(s *Server, m, old *store.Machine) error {
	if m.BMC != nil && len(m.BMC.SealedPassword) > 0 {
		return errs.Invalid("bmc.sealed_password", "is set by the appliance, not by clients")
	}
	m.KeepApplianceFields(old)
	m.Normalize()
	if m.BMC == nil {
		return nil
	}
	m.BMC.PasswordSet = false
	if m.BMC.Password != "" {
		m.BMC.SealedPassword = s.key.Seal([]byte(m.BMC.Password), store.BMCPasswordAD(m.ID))
		m.BMC.Password = ""
	}
	return nil
}

package api

import (
	"github.com/outposthq/outpost/appliance/internal/store"
)

// prepareMachine normalizes a machine and seals its BMC password. A put
// that names no password keeps the stored one, so re-applying a file that
// omits it does not erase it. Likewise what the appliance keeps up to
// date survives a put that does not name it: the state (with its reason)
// and the discovered hardware. The current workflow is the appliance's
// alone: a client cannot set it.
func prepareMachine(s *Server, m, old *store.Machine) error {
	m.Workflow = ""
	if old != nil {
		m.Workflow = old.Workflow
		if m.State == "" {
			m.State, m.Reason = old.State, old.Reason
		}
		if m.Hardware == nil {
			m.Hardware = old.Hardware
		}
	}
	m.Normalize()
	if m.BMC == nil {
		return nil
	}
	m.BMC.PasswordSet = false
	if len(m.BMC.SealedPassword) > 0 {
		return store.Invalid("bmc.sealed_password", "is set by the appliance, not by clients")
	}
	switch {
	case m.BMC.Password != "":
		m.BMC.SealedPassword = s.key.Seal([]byte(m.BMC.Password), store.BMCPasswordAD(m.ID))
		m.BMC.Password = ""
	case old != nil && old.BMC != nil:
		m.BMC.SealedPassword = old.BMC.SealedPassword
	}
	return nil
}

package provision

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Refusals a client can act on.
var (
	errExpired = errors.New("the discovery credential has expired: reboot the machine for a new one")
	errAddress = errors.New("the credential is valid, but not from this address: " +
		"it is only accepted from the address of the machine it was issued to")
	errSuperseded = errors.New("the credential is of an earlier workflow of its machine, which a newer one replaced")
)

// caller is a request whose credential is verified and, for a discovery
// credential, unexpired and used from the address it was given to.
type caller struct {
	addr netip.Addr
	tok  token
	disc *discovery // nil for a workflow credential
}

// authenticate verifies the request's credential, before anything else of
// the request is read: a discovery credential's signature, expiry and
// address, or that a workflow credential opens its machine's current
// workflow (whose address authorize checks).
func (s *Server) authenticate(r *http.Request) (caller, error) {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, unauthorized()
	}
	t, err := parseToken(strings.TrimSpace(v))
	if err != nil {
		return caller{}, unauthorized()
	}
	addr, err := SourceAddr(r)
	if err != nil {
		return caller{}, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, msg: err.Error()}
	}
	c := caller{addr: addr, tok: t}
	if t.kind != kindDiscovery {
		err := s.db.View(func(tx *store.Tx) error { _, err := s.workflowOf(tx, c); return err })
		return c, err
	}
	d, err := s.creds.verifyDiscovery(t)
	switch {
	case errors.Is(err, errOldDiscovery):
		return caller{}, refusal(reasonOutdated, err)
	case err != nil:
		return caller{}, unauthorized()
	case !s.now().Before(d.expires):
		return caller{}, refusal(reasonExpired, errExpired)
	case d.addr != addr:
		return caller{}, refusal(reasonAddress, errAddress)
	}
	c.disc = &d
	return c, nil
}

// authorize returns the workflow c's credential opens, if the workflow
// admits c's address (Admits), claiming it for that address first under
// BindFirstClaim if no address has. It returns nil and no error when a
// discovery credential is good but its machine has no workflow yet.
func (s *Server) authorize(ctx context.Context, c caller) (*store.Workflow, error) {
	var w *store.Workflow
	var admitted bool
	err := s.db.View(func(tx *store.Tx) (err error) {
		if w, err = s.workflowOf(tx, c); w == nil || err != nil {
			return err
		}
		admitted, err = Admits(tx, w, c.addr, s.now())
		return err
	})
	switch {
	case err != nil || w == nil || admitted:
		return w, err
	case s.binding != BindFirstClaim || !Claimable(w):
		return nil, refusal(reasonAddress, errAddress)
	}
	bound, err := s.site.BindWorkflow(ctx, w.ID, c.addr)
	switch {
	case err != nil:
		return nil, err
	case bound.BootAddr != c.addr.String():
		return nil, refusal(reasonAddress, errAddress)
	}
	s.log.Info("workflow claimed", "workflow", w.ID, "machine", w.MachineID, "remote", c.addr)
	return bound, nil
}

// workflowOf finds the workflow c's credential opens: the workflow a
// workflow credential names, if it is still its machine's current one, or
// the current workflow of the machine with a discovery credential's MAC
// (nil if it has none).
func (s *Server) workflowOf(tx *store.Tx, c caller) (*store.Workflow, error) {
	id := c.tok.subject
	if c.disc != nil {
		m, err := tx.MachineByMAC(c.disc.mac)
		if errors.Is(err, errs.ErrNotFound) || (err == nil && m.Workflow == "") {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		id = m.Workflow
	}
	w, err := store.Get[store.Workflow](tx, id)
	switch {
	case errors.Is(err, errs.ErrNotFound) && c.disc != nil:
		return nil, nil
	case errors.Is(err, errs.ErrNotFound):
		return nil, unauthorized() // do not tell which workflows exist
	case err != nil:
		return nil, err
	case c.disc != nil:
		return w, nil
	case !s.creds.verifyWorkflow(c.tok, w):
		return nil, unauthorized()
	}
	m, err := store.Get[store.Machine](tx, w.MachineID)
	switch {
	case errors.Is(err, errs.ErrNotFound) || (err == nil && m.Workflow != w.ID):
		return nil, refusal(reasonSuperseded, errSuperseded)
	case err != nil:
		return nil, err
	}
	return w, nil
}

package site

import (
	"errors"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// API tokens. A token is created once, with its name, role and expiry,
// under an id no token has (with the event of its creation, when an API
// caller made it: Proposer.CreateToken); it is never changed, only
// deleted. Tokens of release b482c18 came by PutTokenV1 (apply_legacy.go)
// and are admins.

func applyCreateToken(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[store.Token]
	command.MustDecode(payload, &req, index)
	t := req.Object
	if t == nil {
		return nil, errs.Invalid("object", "is required")
	}
	if err := t.ValidateNew(); err != nil {
		return nil, err
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	if _, err := store.Get[store.Token](tx, t.ID); err == nil {
		return nil, errs.Conflict("token %q exists", t.ID)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return nil, err
	}
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePut(t, w); err != nil {
		return nil, err
	}
	return t, appendEvents(tx, req.Events, w)
}

// tokenEvent records a new token: its id, name, role and expiry, never
// its hash.
func tokenEvent(t *store.Token) store.Event {
	f := map[string]string{"token": t.ID, "name": t.Name, "role": string(t.Role)}
	msg := fmt.Sprintf("token %s (%q) created with the %s role", t.ID, t.Name, t.Role)
	if !t.ExpiresAt.IsZero() {
		f["expires_at"] = t.ExpiresAt.UTC().Format(time.RFC3339)
		msg += ", until " + f["expires_at"]
	}
	return store.Event{Kind: "token.created", Message: msg, Fields: f}
}

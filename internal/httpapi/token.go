package httpapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
)

// Tokens have the same shape on both APIs, so that one client (the CLI)
// manages them on either: POST /v1/tokens takes a TokenRequest and
// answers a TokenCreated (the only time the secret is shown); GET
// /v1/tokens answers {"items": [TokenView...]}.

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Name names the token, and the changes made with it.
	Name string `json:"name"`
	// Role is what the token may do; required.
	Role access.Role `json:"role"`
	// ExpiresAt, or ExpiresIn from now ("720h", "30d"), is when the
	// token stops working; neither: never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	ExpiresIn string    `json:"expires_in,omitempty"`
}

// Grant checks the request at now and returns the grant it asks for. An
// expiry must be in the future.
func (q *TokenRequest) Grant(now time.Time) (access.Grant, error) {
	if err := access.CheckName("name", q.Name); err != nil {
		return access.Grant{}, err
	}
	role, err := access.ParseRole("role", string(q.Role))
	if err != nil {
		return access.Grant{}, err
	}
	g := access.Grant{Role: role, ExpiresAt: q.ExpiresAt.UTC()}
	switch {
	case q.ExpiresIn != "" && !q.ExpiresAt.IsZero():
		return access.Grant{}, errs.Invalid("expires_in", "and expires_at both set: give one")
	case q.ExpiresIn != "":
		d, err := ParseLifetime(q.ExpiresIn)
		if err != nil {
			return access.Grant{}, errs.Invalid("expires_in", "%v", err)
		}
		g.ExpiresAt = now.Add(d).UTC()
	case !q.ExpiresAt.IsZero() && !q.ExpiresAt.After(now):
		return access.Grant{}, errs.Invalid("expires_at", "%s is not in the future", q.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return g, nil
}

// ParseLifetime reads a token's lifetime: a Go duration ("720h", "90m")
// or a number of days ("30d"); it must be positive.
func ParseLifetime(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if n > 100*365 {
			return 0, fmt.Errorf("%q is more than a hundred years", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration such as 720h or 30d", s)
	case d <= 0:
		return 0, fmt.Errorf("%q is not positive", s)
	}
	return d, nil
}

// TokenView is what the APIs show of a token: never its secret, nor the
// hash of it.
type TokenView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Role is the token's role (a token of a release before roles is an
	// admin).
	Role      access.Role `json:"role"`
	ExpiresAt time.Time   `json:"expires_at,omitzero"`
	CreatedAt time.Time   `json:"created_at,omitzero"`
	// Version is the appliance's version of the record; none on central.
	Version uint64 `json:"version,omitempty"`
}

// NewTokenView is the view of a token record.
func NewTokenView(id, name string, g access.Grant, created time.Time) TokenView {
	return TokenView{ID: id, Name: name, Role: g.Effective(), ExpiresAt: g.ExpiresAt, CreatedAt: created}
}

// TokenCreated answers POST /v1/tokens.
type TokenCreated struct {
	TokenView
	// Token is the secret, "<id>.<secret>": shown in this answer only.
	Token string `json:"token"`
}

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
)

// tokenServer is what the token commands need of a server. Both APIs
// serve tokens in the same shape (httpapi.TokenRequest), so these
// commands work against any client that has these methods: the
// appliance's (package client), and central's (central/client).
type tokenServer interface {
	CreateToken(ctx context.Context, req httpapi.TokenRequest) (httpapi.TokenCreated, error)
	Tokens(ctx context.Context) ([]httpapi.TokenView, error)
	DeleteToken(ctx context.Context, id string) error
}

// runTokenCreate makes an API token with a role and an optional expiry.
// Its secret is printed on stdout, alone on its line so that a script can
// capture it; the API never shows it again.
func runTokenCreate(e *env, args []string) error {
	fs := e.flagSet("token create")
	role := fs.String("role", "", "")
	expires := fs.String("expires", "", "")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	req, err := tokenRequest(pos[0], *role, *expires)
	if err != nil {
		return err
	}
	c, err := e.tokens()
	if err != nil {
		return err
	}
	return createToken(e, c, req)
}

// tokenRequest reads the token create command line: --role is required;
// --expires is a lifetime ("720h", "30d") or a time (RFC 3339, or a date,
// which is its midnight UTC).
func tokenRequest(name, role, expires string) (httpapi.TokenRequest, error) {
	req := httpapi.TokenRequest{Name: name}
	if role == "" {
		return req, usagef("token create: --role is required: viewer, operator or admin")
	}
	req.Role = access.Role(role)
	if expires == "" {
		return req, nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, expires); err == nil {
			req.ExpiresAt = t.UTC()
			return req, nil
		}
	}
	if _, err := httpapi.ParseLifetime(expires); err != nil {
		return req, usagef("token create: --expires: %v, nor a time such as 2027-01-31", err)
	}
	req.ExpiresIn = expires
	return req, nil
}

// createToken creates the token req asks for on c and shows it.
func createToken(e *env, c tokenServer, req httpapi.TokenRequest) error {
	out, err := c.CreateToken(e.ctx, req)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(out)
	}
	until := ", never expiring"
	if !out.ExpiresAt.IsZero() {
		until = ", until " + timeCell(out.ExpiresAt)
	}
	fmt.Fprintf(e.stderr, "created token %s for %q with the %s role%s; keep it now: it cannot be shown again\n",
		out.ID, out.Name, out.Role, until)
	fmt.Fprintln(e.stdout, out.Token)
	return nil
}

// runTokenList lists the API tokens (never their secrets).
func runTokenList(e *env, args []string) error {
	if _, err := e.parse(e.flagSet("token list"), args, 0, 0); err != nil {
		return err
	}
	c, err := e.tokens()
	if err != nil {
		return err
	}
	return listTokens(e, c)
}

// listTokens shows the tokens of c.
func listTokens(e *env, c tokenServer) error {
	views, err := c.Tokens(e.ctx)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		if views == nil {
			views = []httpapi.TokenView{}
		}
		return e.printValue(views)
	}
	rows := make([][]string, len(views))
	for i := range views {
		rows[i] = tokenRow(&views[i])
	}
	return writeTable(e.stdout, tokenHeader, rows)
}

// tokenHeader and tokenRow make the table of tokens.
var tokenHeader = []string{"ID", "NAME", "ROLE", "EXPIRES", "CREATED"}

func tokenRow(t *httpapi.TokenView) []string {
	return []string{t.ID, t.Name, string(t.Role), timeCell(t.ExpiresAt), timeCell(t.CreatedAt)}
}

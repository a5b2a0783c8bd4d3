package cli

import (
	"fmt"
	"net/http"
)

// runTokenCreate makes an API token. Its secret is printed on stdout, alone
// on its line so that a script can capture it; the API never shows it
// again.
func runTokenCreate(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("token create"), args, 1, 1)
	if err != nil {
		return err
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	var out struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Token string `json:"token"`
	}
	if err := c.Do(e.ctx, http.MethodPost, "/v1/tokens", map[string]string{"name": pos[0]}, &out); err != nil {
		return err
	}
	if e.opts.output != "table" {
		return e.printValue(out)
	}
	fmt.Fprintf(e.stderr, "created token %s for %q; keep it now: it cannot be shown again\n", out.ID, out.Name)
	fmt.Fprintln(e.stdout, out.Token)
	return nil
}

// runTokenList lists the API tokens (never their secrets).
func runTokenList(e *env, args []string) error {
	if _, err := e.parse(e.flagSet("token list"), args, 0, 0); err != nil {
		return err
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	items, err := list(e, c, "/v1/tokens")
	if err != nil {
		return err
	}
	k, _ := findKind("token")
	return e.show(k, items, false)
}

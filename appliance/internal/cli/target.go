package cli

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Where the CLI goes, and as whom. Each is settled once per run, first
// match wins:
//
//   - the server: a flag (--server URL, --central URL or --context NAME),
//     then the environment (OUTPOST_SERVER, OUTPOST_CENTRAL or
//     OUTPOST_CONTEXT), then the config file's current context, then a
//     site at DefaultServer. Two of one rank (--server with --context) are
//     a usage error.
//   - the token: --token, --token-file, then OUTPOST_TOKEN,
//     OUTPOST_TOKEN_FILE, then the context's (if the server came from a
//     context), then DefaultTokenFile if it exists (a site's server that
//     came from no context: never sent to central).
//   - the CA: --ca-fingerprint and --ca-file, then the context's.

// target is the server a run speaks to.
type target struct {
	central bool
	url     string
	// from names where the choice came from, for errors: "--central",
	// "OUTPOST_SERVER", "context hq", "the default".
	from string
	// context is the context the server came from, if any.
	context *Context
}

// side names the target's side.
func (t *target) side() string {
	if t.central {
		return "central"
	}
	return "site"
}

// choice is one way of naming the server: a flag or a variable, and its
// value.
type choice struct{ name, value string }

// pick returns the one choice set among cs, nil if none; two set is an
// error.
func pick(cs ...choice) (*choice, error) {
	var set []choice
	for _, c := range cs {
		if c.value != "" {
			set = append(set, c)
		}
	}
	switch len(set) {
	case 0:
		return nil, nil
	case 1:
		return &set[0], nil
	}
	return nil, usagef("%s and %s both name a server: give one", set[0].name, set[1].name)
}

// resolveTarget settles the server of this run, once.
func (e *env) resolveTarget() (*target, error) {
	if e.opts.target != nil {
		return e.opts.target, nil
	}
	o := e.opts
	c, err := pick(choice{"--server", o.server}, choice{"--central", o.central}, choice{"--context", o.context})
	if err == nil && c == nil {
		c, err = pick(choice{"OUTPOST_SERVER", os.Getenv("OUTPOST_SERVER")}, choice{"OUTPOST_CENTRAL", os.Getenv("OUTPOST_CENTRAL")},
			choice{"OUTPOST_CONTEXT", os.Getenv("OUTPOST_CONTEXT")})
	}
	if err != nil {
		return nil, err
	}
	var t *target
	switch {
	case c == nil:
		t, err = currentTarget()
	case strings.HasSuffix(c.name, "context") || strings.HasSuffix(c.name, "CONTEXT"):
		t, err = contextTarget(c.value, c.name)
	default:
		central := strings.HasSuffix(c.name, "central") || strings.HasSuffix(c.name, "CENTRAL")
		t = &target{central: central, url: c.value, from: c.name}
		err = validURL(c.name, c.value)
	}
	if err != nil {
		return nil, err
	}
	o.target = t
	if !t.central {
		o.server = t.url
	}
	// The CA pin: the flags, else the environment, else the context's.
	o.caFingerprint = cmp.Or(o.caFingerprint, os.Getenv("OUTPOST_CA_FINGERPRINT"))
	o.caFile = cmp.Or(o.caFile, os.Getenv("OUTPOST_CA_FILE"))
	if t.context != nil && o.caFingerprint == "" && o.caFile == "" {
		o.caFingerprint, o.caFile = t.context.CAFingerprint, t.context.CAFile
	}
	return t, nil
}

// currentTarget is the config file's current context, or the default
// site.
func currentTarget() (*target, error) {
	path, err := configPath()
	if err != nil {
		return &target{url: DefaultServer, from: "the default"}, nil
	}
	f, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if f.CurrentContext == "" {
		return &target{url: DefaultServer, from: "the default"}, nil
	}
	return contextOf(f, f.CurrentContext, "current_context of "+path)
}

// contextTarget is the context named name by what (--context, or
// OUTPOST_CONTEXT).
func contextTarget(name, what string) (*target, error) {
	path, err := configPath()
	if err != nil {
		return nil, err
	}
	f, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	return contextOf(f, name, what+" "+name+" ("+path+")")
}

func contextOf(f *configFile, name, what string) (*target, error) {
	c := f.find(name)
	if c == nil {
		return nil, fmt.Errorf("%s: no context %q (outpost context list shows them)", what, name)
	}
	url, central := c.server()
	return &target{central: central, url: url, from: "context " + name, context: c}, nil
}

// contextToken is the token of the context the target came from: "" if
// none (the default token file may then serve).
func (t *target) contextToken() (string, bool, error) {
	switch {
	case t == nil || t.context == nil:
		return "", false, nil
	case t.context.Token != "":
		return t.context.Token, true, nil
	case t.context.TokenFile != "":
		tok, err := readToken(t.context.TokenFile)
		return tok, true, err
	}
	return "", true, nil
}

// defaultTokenFile is DefaultTokenFile if the target may use it: a site's
// server that came from no context.
func (t *target) defaultTokenFile() string {
	if t != nil && (t.central || t.context != nil) {
		return ""
	}
	if _, err := os.Stat(DefaultTokenFile); err != nil {
		return ""
	}
	return DefaultTokenFile
}

// absPath makes a path given on the command line absolute, so that a
// context keeps naming the same file from any directory.
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// Package cli is the operator's command line, outpost: it applies object
// files to an appliance, reads and deletes objects, follows events and
// manages the cluster and API tokens, all through the appliance API
// (package client); with a central target, the same through central's
// API (central/client), central's artifacts (artifact.go), its image
// catalogue and site labels (image.go), its fleet and audit (fleet.go,
// watch.go); apply at central is declarative (centralapply.go).
//
// Run is the whole program, so that tests drive it with arguments and
// buffers against a real appliance. It writes results to stdout and
// errors to stderr prefixed "outpost: ", and returns the exit status: 0
// on success, 1 on an error, 2 on a usage error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/client"
)

// Defaults of the global options.
const (
	DefaultServer    = "http://127.0.0.1:7080"
	DefaultTokenFile = "var/node1/admin.token"
)

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	opts   *options
	cmd    string // the command's name, "token create"
}

// command is one entry of the command table.
type command struct {
	name  string
	args  string // synopsis after the name
	help  string
	run   func(e *env, args []string) error
	group bool // name takes a subcommand (cluster, token)
}

// commands lists every command, in the order usage shows them.
var commands = []command{
	{name: "apply", args: "-f FILE [-f FILE]...", help: "create or replace the objects in FILE (YAML or JSON; - is stdin; a directory); at central, only those that differ from central's, each said created, updated or unchanged", run: runApply},
	{name: "get", args: "KIND [NAME] [-q QUERY] [--consistent]", help: "list objects of KIND, or show one; -q searches machines (at central, the fleet: site:, label:, order:, order-status: too); at central, get machine SITE/ID [--limit N] shows one with its timeline, get audit [--by B] [--action A] [--target T] [--since 24h] [--until T] [--format jsonl|csv] the audit", run: runGet},
	{name: "delete", args: "KIND NAME", help: "delete an object", run: runDelete},
	{name: "events", args: "[--since N] [--limit N]", help: "list events (the newest ones without --since)", run: runEvents},
	{name: "watch", args: "[--since N] | machines [-q QUERY]", help: "follow events as they happen, until interrupted; at central, watch machines prints each machine whose state, order or step changes", run: runWatch},
	{name: "cluster status", help: "show the cluster as the server sees it", run: runClusterStatus},
	{name: "cluster join", args: "ID RAFT_ADDR API_URL [--site-key-out FILE]", help: "add a node to the cluster", run: runClusterJoin},
	{name: "cluster remove", args: "ID", help: "remove a node from the cluster", run: runClusterRemove},
	{name: "cluster rotate-ca", args: "begin|finish", help: "rotate the CA of the site (or central's): begin, then finish once every member has renewed", run: runClusterRotateCA},
	{name: "token create", args: "NAME --role viewer|operator|admin [--expires 30d|720h|2027-01-31]", help: "create an API token and print it (only this once)", run: runTokenCreate},
	{name: "token list", help: "list API tokens: names, roles, expiries (never secrets)", run: runTokenList},
	{name: "token delete", args: "ID", help: "delete an API token: it opens nothing from then on", run: runTokenDelete},
	{name: "artifact push", args: "FILE [--name N] [--type os|kernel|initrd|file] [--description D]", help: "at central: upload FILE as an artifact (its sha256 computed first, then checked by central), with progress; prints its digest", run: runArtifactPush},
	{name: "artifact register", args: "URL --sha256 X --size N [--name N] [--type T]", help: "at central: register an upstream URL, which central fetches once and checks", run: runArtifactRegister},
	{name: "artifact list", help: "at central: list the artifacts, the nodes that hold them, the sites that use them", run: runArtifactList},
	{name: "artifact get", args: "DIGEST", help: "at central: show one artifact", run: runArtifactGet},
	{name: "artifact delete", args: "DIGEST", help: "at central: delete an artifact (refused while a site's image names it)", run: runArtifactDelete},
	{name: "image put", args: "NAME --sha256 D [--format raw.gz] [--type os|installer --kernel sha256:.. --initrd sha256:.. --cmdline .. --arch x86_64|aarch64] [--site S]... [--label k=v]...", help: "at central: point the catalogue's image NAME at an image and place it on the sites listed and those with every label", run: runImagePut},
	{name: "image list", help: "at central: list the catalogue's images, their placement and the sites they are on", run: runImageList},
	{name: "image get", args: "NAME", help: "at central: show one image of the catalogue", run: runImageGet},
	{name: "image delete", args: "NAME", help: "at central: delete an image of the catalogue, and from every site it was placed on", run: runImageDelete},
	{name: "site labels", args: "SITE [k=v]...", help: "at central: replace a site's labels (none: remove them); the catalogue's images follow", run: runSiteLabels},
	{name: "annotate", args: "KIND [TEXT...] [--site S] [--start T|10m] [--end T | --for 5m]", help: "at central: record an incident or a fault (the fleet's, or --site's) from --start (now without) to --end, or for a while (an instant without); the portal's charts mark it with what it cost", run: runAnnotate},
	{name: "annotation list", args: "[--site S] [--since 24h] [--until T] [--limit N]", help: "at central: list the annotations of --site and the fleet-wide ones (every one without --site), newest first", run: runAnnotationList},
	{name: "bmc accept-certificate", args: "MACHINE [FINGERPRINT]", help: "trust MACHINE's Redfish BMC certificate: FINGERPRINT, or the one it presented (get machine shows it)", run: runBMCAccept},
	{name: "context list", help: "list the contexts of the config file, the current one marked", run: runContextList},
	{name: "context use", args: "NAME", help: "make NAME the current context", run: runContextUse},
	{name: "context set", args: "NAME --site URL|--central URL [--token-file FILE] [--ca-fingerprint SHA256] [--ca-file PEM]", help: "create or change a context (fields not given are kept)", run: runContextSet},
	{name: "context delete", args: "NAME", help: "delete a context", run: runContextDelete},
	{name: "help", help: "show this help", run: nil},
}

// usageError is a mistake in the command line: Run answers it with the
// usage on stderr and exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Run runs the outpost command line args (without the program name) and
// returns its exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, opts: newOptions()}
	err := e.dispatch(args)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "outpost: %s\n", ue.msg)
		usage(stderr)
		return 2
	}
	fmt.Fprintf(stderr, "outpost: %v\n", err)
	return 1
}

// dispatch parses the global options before the command and runs it.
func (e *env) dispatch(args []string) error {
	fs := e.flagSet("outpost")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("no command given")
	}
	if rest[0] == "help" {
		return flag.ErrHelp
	}
	cmd, args, err := lookup(rest)
	if err != nil {
		return err
	}
	e.cmd = cmd.name
	return cmd.run(e, args)
}

// lookup finds the command named by the first one or two words of args
// and returns it with the words after its name.
func lookup(args []string) (command, []string, error) {
	var group bool
	for _, c := range commands {
		word, sub, isGroup := strings.Cut(c.name, " ")
		if word != args[0] {
			continue
		}
		if !isGroup {
			return c, args[1:], nil
		}
		group = true
		if len(args) > 1 && args[1] == sub {
			return c, args[2:], nil
		}
	}
	if group {
		if len(args) < 2 {
			return command{}, nil, usagef("%s needs a subcommand", args[0])
		}
		return command{}, nil, usagef("unknown command %q", args[0]+" "+args[1])
	}
	return command{}, nil, usagef("unknown command %q", args[0])
}

// usage writes the list of commands and global options.
func usage(w io.Writer) {
	fmt.Fprint(w, "usage: outpost [global options] COMMAND [arguments]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprintf(w, `
kinds: machine(s) subnet(s) lease(s) image(s) template(s) workflow(s) token(s) settings
  at central: site(s) order(s) machine(s) image(s) template(s) token(s) audit
  (get machines and sites read the fleet; get images without --site the
  catalogue; an image document without site: is the catalogue's)

global options (before or after the command):
  --server URL        a site's API (env OUTPOST_SERVER; default %s)
  --central URL       central's API (env OUTPOST_CENTRAL)
  --context NAME      a context of the config file (env OUTPOST_CONTEXT;
                      default its current_context)
  --site SITE         at central: the site whose objects to read or change
                      (get machines, watch machines: the fleet's, site:SITE)
  --token TOKEN       API token (env OUTPOST_TOKEN)
  --token-file FILE   file holding the API token (env OUTPOST_TOKEN_FILE;
                      default the context's, or ./%s if it exists when
                      talking to a site that no context names)
  --ca-fingerprint FP pin the API's CA by its fingerprint, sha256:... (env
                      OUTPOST_CA_FINGERPRINT; every node prints it at start)
  --ca-file FILE      pin the API's CA by its PEM (env OUTPOST_CA_FILE; a
                      node writes it to <data-dir>/api-ca.pem)
                      (with either, the server must present that CA, not
                      one the system trusts)
  -o FORMAT           output: table, wide (more columns), json or yaml
                      (default table)

The server comes from a flag, else the environment, else the current
context, else the default; the config file is $%s, else
outpost/config.yaml in $XDG_CONFIG_HOME (or ~/.config).
`, DefaultServer, DefaultTokenFile, ConfigEnv)
}

// options are the global options.
type options struct {
	// server, central and context are the flags naming the server (a
	// site's URL, central's, or a context); see target.go for the order
	// the environment and the config file come in.
	server    string
	central   string
	context   string
	site      string // --site: at central, the site of the objects
	token     optString
	tokenFile optString
	// caFingerprint and caFile pin the CA of the server's certificate
	// (--ca-fingerprint, --ca-file, else the context's).
	caFingerprint string
	caFile        string
	output        string
	// target is the server, once resolved (resolveTarget).
	target *target
}

// optString is a string flag that remembers whether it was given, so that
// a flag beats an environment variable of another option.
type optString struct {
	val string
	set bool
}

func (o *optString) String() string     { return o.val }
func (o *optString) Set(v string) error { o.val, o.set = v, true; return nil }

// tabular reports whether -o asks for a table: table, or wide (more
// columns, where a table has more to show).
func (o *options) tabular() bool { return o.output == "table" || o.output == "wide" }

func newOptions() *options {
	return &options{output: "table"}
}

// flagSet returns a flag set for a command that also accepts the global
// options, so that they may come before or after the command.
func (e *env) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&e.opts.server, "server", e.opts.server, "")
	fs.StringVar(&e.opts.central, "central", e.opts.central, "")
	fs.StringVar(&e.opts.context, "context", e.opts.context, "")
	fs.StringVar(&e.opts.site, "site", e.opts.site, "")
	fs.StringVar(&e.opts.caFingerprint, "ca-fingerprint", e.opts.caFingerprint, "")
	fs.StringVar(&e.opts.caFile, "ca-file", e.opts.caFile, "")
	fs.Var(&e.opts.token, "token", "")
	fs.Var(&e.opts.tokenFile, "token-file", "")
	fs.StringVar(&e.opts.output, "o", e.opts.output, "")
	return fs
}

// parseFlags parses args with fs; a bad flag is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	return nil
}

// parse parses a command's flags, which may be mixed with its positional
// arguments, and returns the positional arguments; there must be between
// min and max of them (max < 0: no limit).
func (e *env) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < min:
		return nil, usagef("%s: missing arguments", fs.Name())
	case max >= 0 && len(pos) > max:
		return nil, usagef("%s: unexpected argument %q", fs.Name(), pos[max])
	}
	switch e.opts.output {
	case "table", "wide", "json", "yaml":
	default:
		return nil, usagef("-o %q: want table, wide, json or yaml", e.opts.output)
	}
	return pos, nil
}

// resolveToken finds the API token: --token, then --token-file, then
// OUTPOST_TOKEN, then OUTPOST_TOKEN_FILE, then the context's, then the
// default token file if it exists and the target may use it (a site that
// no context names). No token at all is not an error here: the API will
// say so.
func (o *options) resolveToken() (string, error) {
	switch {
	case o.token.set:
		return o.token.val, nil
	case o.tokenFile.set:
		return readToken(o.tokenFile.val)
	case os.Getenv("OUTPOST_TOKEN") != "":
		return os.Getenv("OUTPOST_TOKEN"), nil
	case os.Getenv("OUTPOST_TOKEN_FILE") != "":
		return readToken(os.Getenv("OUTPOST_TOKEN_FILE"))
	}
	if tok, ok, err := o.target.contextToken(); ok {
		return tok, err
	}
	if f := o.target.defaultTokenFile(); f != "" {
		return readToken(f)
	}
	return "", nil
}

func readToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// client returns an API client for the global options, and the token it
// uses.
func (e *env) client() (*client.Client, string, error) {
	if err := e.siteOnly(); err != nil {
		return nil, "", err
	}
	token, err := e.opts.resolveToken()
	if err != nil {
		return nil, "", err
	}
	c, err := client.NewPinned(e.opts.server, token, client.Pin{Fingerprint: e.opts.caFingerprint, CAFile: e.opts.caFile})
	if err != nil {
		return nil, "", err
	}
	return c, token, nil
}

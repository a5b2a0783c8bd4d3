package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/internal/errs"
)

// Contexts. A context names a server (a site's API or central's), who to
// be there (a token or a token file) and the CA its certificate must
// chain to (ca_fingerprint, ca_file). They are kept in one YAML file,
// $OUTPOST_CONFIG or else outpost/config.yaml under the user's config
// directory ($XDG_CONFIG_HOME, or ~/.config), written 0600 since it may
// hold tokens:
//
//	current_context: lab
//	contexts:
//	- name: lab
//	  site: https://198.18.0.1:7080
//	  token_file: /home/me/lab.token
//	  ca_fingerprint: sha256:...
//	- name: hq
//	  central: https://central.example.com:7443
//	  token_file: /home/me/hq.token

// ConfigEnv names the config file in the environment.
const ConfigEnv = "OUTPOST_CONFIG"

// configFile is the file's contents.
type configFile struct {
	// CurrentContext is the context used when neither a flag nor the
	// environment says where to go.
	CurrentContext string `json:"current_context,omitempty"`
	// Contexts are the named contexts.
	Contexts []*Context `json:"contexts,omitempty"`
}

// Context is one named context.
type Context struct {
	// Name names the context (--context NAME).
	Name string `json:"name"`
	// Site is the URL of a site's API; Central the URL of central's.
	// Exactly one is set.
	Site    string `json:"site,omitempty"`
	Central string `json:"central,omitempty"`
	// Token is the API token; TokenFile a file holding it (a relative
	// path is relative to the config file's directory). At most one.
	Token     string `json:"token,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	// CAFingerprint ("sha256:...") and CAFile (PEM) name the CA the
	// server's certificate must chain to.
	CAFingerprint string `json:"ca_fingerprint,omitempty"`
	CAFile        string `json:"ca_file,omitempty"`
}

// server is the context's URL and whether it is central's.
func (c *Context) server() (string, bool) {
	if c.Central != "" {
		return c.Central, true
	}
	return c.Site, false
}

// configPath is where the config file is.
func configPath() (string, error) {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("config file: %w (set %s)", err, ConfigEnv)
	}
	return filepath.Join(dir, "outpost", "config.yaml"), nil
}

// loadConfig reads the config file at path; a missing file is an empty
// one. A malformed file is an error naming the file and the line.
func loadConfig(path string) (*configFile, error) {
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &configFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cfg, err := parseConfig(text)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for _, c := range cfg.Contexts {
		if c.TokenFile != "" && !filepath.IsAbs(c.TokenFile) {
			c.TokenFile = filepath.Join(filepath.Dir(path), c.TokenFile)
		}
	}
	return cfg, nil
}

// yamlLineRE reads the line of a YAML syntax error.
var yamlLineRE = regexp.MustCompile(`yaml: line (\d+): (.*)`)

// parseConfig reads and checks a config file's text; an error names the
// line at fault ("line 4: contexts[0].site: ...").
func parseConfig(text []byte) (*configFile, error) {
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("line %s: not valid YAML: %s", m[1], m[2])
		}
		return nil, fmt.Errorf("line 1: not valid YAML: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	cfg := &configFile{}
	if string(j) == "null" {
		return cfg, nil
	}
	loc := newLocator(objectNodes(text, 1)[0], j)
	if err := decodeStrict(j, cfg); err != nil {
		return nil, fmt.Errorf("line %d: %w", loc.errLine(err, 1), err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("line %d: %w", loc.errLine(err, 1), err)
	}
	return cfg, nil
}

// validate checks the contexts; an error names the field at fault.
func (f *configFile) validate() error {
	seen := map[string]bool{}
	for i, c := range f.Contexts {
		field := func(name string) string { return fmt.Sprintf("contexts[%d].%s", i, name) }
		if c == nil {
			return errs.Invalid(fmt.Sprintf("contexts[%d]", i), "is empty")
		}
		if err := validContextName(field("name"), c.Name); err != nil {
			return err
		}
		if seen[c.Name] {
			return errs.Invalid(field("name"), "%q names two contexts", c.Name)
		}
		seen[c.Name] = true
		if err := c.validate(field); err != nil {
			return err
		}
	}
	if f.CurrentContext != "" && f.find(f.CurrentContext) == nil {
		return errs.Invalid("current_context", "%q is not one of the contexts", f.CurrentContext)
	}
	return nil
}

// validate checks one context; field names its fields.
func (c *Context) validate(field func(string) string) error {
	switch {
	case c.Site == "" && c.Central == "":
		return errs.Invalid(field("name"), "context %q needs site or central: the URL of a site's API or central's", c.Name)
	case c.Site != "" && c.Central != "":
		return errs.Invalid(field("central"), "context %q has both site and central: a context names one server", c.Name)
	case c.Token != "" && c.TokenFile != "":
		return errs.Invalid(field("token_file"), "context %q has both token and token_file: give one", c.Name)
	}
	u, central := c.server()
	name := map[bool]string{false: "site", true: "central"}[central]
	return validURL(field(name), u)
}

// validURL checks a server URL: http or https, a host, nothing after
// the path.
func validURL(field, s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errs.Invalid(field, "%q is not a URL: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return errs.Invalid(field, "%q: want an http:// or https:// URL", s)
	case u.Host == "":
		return errs.Invalid(field, "%q has no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errs.Invalid(field, "%q: want scheme, host and port only", s)
	}
	return nil
}

// contextNameRE is what a context may be named.
var contextNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func validContextName(field, name string) error {
	if !contextNameRE.MatchString(name) {
		return errs.Invalid(field, "%q: a context's name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// find returns the context named name, or nil.
func (f *configFile) find(name string) *Context {
	for _, c := range f.Contexts {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// save writes the file at path, mode 0600 (it may hold tokens), through
// a temporary file renamed over it, so that a reader sees the old file or
// the new one, whole.
func (f *configFile) save(path string) error {
	raw, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config file: %w", err)
	}
	_, err = tmp.Write(raw)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// editConfig loads the config file, lets change edit it and saves it.
func editConfig(change func(f *configFile) error) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	f, err := loadConfig(path)
	if err != nil {
		return "", err
	}
	if err := change(f); err != nil {
		return "", err
	}
	return path, f.save(path)
}

// runContextList lists the contexts, the current one marked.
func runContextList(e *env, args []string) error {
	if _, err := e.parse(e.flagSet("context list"), args, 0, 0); err != nil {
		return err
	}
	path, err := configPath()
	if err != nil {
		return err
	}
	f, err := loadConfig(path)
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(contextViews(f))
	}
	rows := make([][]string, len(f.Contexts))
	for i, c := range f.Contexts {
		url, central := c.server()
		rows[i] = []string{map[bool]string{true: "*"}[c.Name == f.CurrentContext], c.Name,
			map[bool]string{false: "site", true: "central"}[central], url, credentialCell(c), caCell(c)}
	}
	return writeTable(e.stdout, []string{"CURRENT", "NAME", "SIDE", "SERVER", "TOKEN", "CA"}, rows)
}

// contextViews is the file as -o json|yaml shows it: tokens hidden.
func contextViews(f *configFile) *configFile {
	out := &configFile{CurrentContext: f.CurrentContext, Contexts: []*Context{}}
	for _, c := range f.Contexts {
		v := *c
		if v.Token != "" {
			v.Token = "(hidden)"
		}
		out.Contexts = append(out.Contexts, &v)
	}
	return out
}

// credentialCell says where a context's token is, never what it is.
func credentialCell(c *Context) string {
	switch {
	case c.TokenFile != "":
		return c.TokenFile
	case c.Token != "":
		return "(in the config file)"
	}
	return ""
}

func caCell(c *Context) string {
	return strings.TrimSpace(c.CAFingerprint + " " + c.CAFile)
}

// runContextUse makes a context the current one.
func runContextUse(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("context use"), args, 1, 1)
	if err != nil {
		return err
	}
	path, err := editConfig(func(f *configFile) error {
		if f.find(pos[0]) == nil {
			return fmt.Errorf("no context %q (outpost context list shows them)", pos[0])
		}
		f.CurrentContext = pos[0]
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "using context %s (%s)\n", pos[0], path)
	return nil
}

// runContextDelete removes a context; if it was the current one, there
// is none after.
func runContextDelete(e *env, args []string) error {
	pos, err := e.parse(e.flagSet("context delete"), args, 1, 1)
	if err != nil {
		return err
	}
	_, err = editConfig(func(f *configFile) error {
		i := slices.IndexFunc(f.Contexts, func(c *Context) bool { return c.Name == pos[0] })
		if i < 0 {
			return fmt.Errorf("no context %q (outpost context list shows them)", pos[0])
		}
		f.Contexts = slices.Delete(f.Contexts, i, i+1)
		if f.CurrentContext == pos[0] {
			f.CurrentContext = ""
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "context %s deleted\n", pos[0])
	return nil
}

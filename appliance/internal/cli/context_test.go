package cli_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cli"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestPrecedence: the server comes from a flag, else the environment,
// else the current context, else the default; the token likewise, and
// the default token file is never sent to central. Which side answered
// is told by a token named after it.
func TestPrecedence(t *testing.T) {
	n := apptest.Start(t)
	cen := testcentral.Start(t)
	mustOK(t, runCLI(t, "", "--server", n.URL, "--token", n.Token, "token", "create", "at-site", "--role", "viewer"))
	mustOK(t, centralRun(t, cen, "", "token", "create", "at-central", "--role", "viewer"))
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("OUTPOST_CONFIG", filepath.Join(dir, "config.yaml"))
	mustOK(t, runCLI(t, "", "context", "set", "hq", "--central", cen.URL, "--token-file", writeTokenFile(t, dir, "hq.token", cen.Token)))
	mustOK(t, runCLI(t, "", "context", "set", "lab", "--site", n.URL, "--token-file", writeTokenFile(t, dir, "lab.token", n.Token)))
	mustOK(t, runCLI(t, "", "context", "use", "hq"))
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(cli.DefaultTokenFile)), 0o700); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string // the token name seen, or the error
	}{
		"current context":                {nil, nil, "at-central"},
		"OUTPOST_CONTEXT":                {map[string]string{"OUTPOST_CONTEXT": "lab"}, nil, "at-site"},
		"OUTPOST_SERVER":                 {map[string]string{"OUTPOST_SERVER": n.URL, "OUTPOST_TOKEN": n.Token}, nil, "at-site"},
		"--context over env":             {map[string]string{"OUTPOST_SERVER": n.URL}, []string{"--context", "hq"}, "at-central"},
		"--central over env":             {map[string]string{"OUTPOST_CONTEXT": "lab", "OUTPOST_TOKEN": cen.Token}, []string{"--central", cen.URL}, "at-central"},
		"--token over context":           {nil, []string{"--token", "wrong"}, "HTTP 401"},
		"OUTPOST_TOKEN over ctx":         {map[string]string{"OUTPOST_TOKEN": "wrong"}, nil, "HTTP 401"},
		"two flags":                      {nil, []string{"--server", n.URL, "--context", "lab"}, "--server and --context both name a server"},
		"two variables":                  {map[string]string{"OUTPOST_SERVER": n.URL, "OUTPOST_CENTRAL": cen.URL}, nil, "OUTPOST_SERVER and OUTPOST_CENTRAL both"},
		"no such context":                {nil, []string{"--context", "nope"}, `no context "nope"`},
		"default token, not sent":        {map[string]string{"OUTPOST_CENTRAL": cen.URL}, nil, "HTTP 401"},
		"default token to a site":        {map[string]string{"OUTPOST_SERVER": n.URL}, nil, "at-site"},
		"--context over OUTPOST_CENTRAL": {map[string]string{"OUTPOST_CENTRAL": cen.URL}, []string{"--context", "lab"}, "at-site"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// The default token file holds central's admin token, which
			// central must not be sent (it would answer), but for the case
			// that shows a site gets it.
			def := cen.Token
			if name == "default token to a site" {
				def = n.Token
			}
			writeFile(t, dir, cli.DefaultTokenFile, def+"\n")
			r := runCLI(t, "", append(tc.args, "token", "list")...)
			if got := r.stdout + r.stderr; !strings.Contains(got, tc.want) {
				t.Errorf("token list: exit %d, %q; want %q", r.code, got, tc.want)
			}
		})
	}
}

// TestMalformedConfig: a config file that is not what the CLI writes is
// an error naming the file and the line at fault, and is left as it is.
func TestMalformedConfig(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"syntax":        {"contexts:\n- name: a\n  site: [http://x\n", "line 3: not valid YAML"},
		"unknown field": {"contexts:\n- name: a\n  site: http://127.0.0.1:1\n  tokn: x\n", "line 4: tokn: unknown field"},
		"wrong type":    {"contexts:\n- name: a\n  site: 7\n", "line 3: contexts.site: wrong type"},
		"no server":     {"contexts:\n- {name: a, site: \"http://127.0.0.1:1\"}\n- name: b\n  token: x\n", `line 3: contexts[1].name: context "b" needs site or central`},
		"both sides":    {"contexts:\n- name: a\n  site: http://127.0.0.1:1\n  central: http://127.0.0.1:2\n", "line 4: contexts[0].central: context \"a\" has both"},
		"bad URL":       {"contexts:\n- name: a\n  central: ftp://x\n", "line 3: contexts[0].central: \"ftp://x\": want an http:// or https:// URL"},
		"same name":     {"contexts:\n- {name: a, site: \"http://127.0.0.1:1\"}\n- {name: a, site: \"http://127.0.0.1:1\"}\n", "line 3: contexts[1].name: \"a\" names two contexts"},
		"no current":    {"current_context: b\ncontexts:\n- {name: a, site: \"http://127.0.0.1:1\"}\n", `line 1: current_context: "b" is not one of`},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, filepath.Dir(path), "config.yaml", tc.text)
			t.Setenv("OUTPOST_CONFIG", path)
			for _, args := range [][]string{{"get", "machines"}, {"context", "use", "a"}, {"context", "set", "c", "--site", "http://127.0.0.1:1"}} {
				r := runCLI(t, "", args...)
				if want := "config file " + path + ": " + tc.want; r.code != 1 || !strings.Contains(r.stderr, want) {
					t.Errorf("%q: exit %d, %q; want %q", args, r.code, r.stderr, want)
				}
			}
			if raw, _ := os.ReadFile(path); string(raw) != tc.text {
				t.Errorf("the file changed:\n%s", raw)
			}
		})
	}
}

// TestCentralPinnedCA: a central serving TLS from its own CA is reached
// with the CA pinned by file or by fingerprint, from flags or from a
// context; an unpinned or wrongly pinned CLI sends nothing.
func TestCentralPinnedCA(t *testing.T) {
	ca := lab.NewCA(t, "central CA")
	certFile, keyFile := lab.WriteKeyPair(t, ca.Issue("127.0.0.1"))
	chain, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	cen := testcentral.Start(t, testcentral.TLS(certFile, keyFile))
	sum := sha256.Sum256(ca.Cert.Raw)
	fp := "sha256:" + hex.EncodeToString(sum[:])
	wrong := "sha256:" + strings.Repeat("ab", 32)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"ca file":       {[]string{"--ca-file", ca.WriteCert()}, "ID  NAME"},
		"fingerprint":   {[]string{"--ca-fingerprint", fp}, "ID  NAME"},
		"openssl form":  {[]string{"--ca-fingerprint", strings.ToUpper(strings.TrimPrefix(fp, "sha256:"))}, "ID  NAME"},
		"unpinned":      {nil, "certificate signed by unknown authority"},
		"wrong pin":     {[]string{"--ca-fingerprint", wrong}, "expected CA " + wrong + ", the server presented sha256:"},
		"pin over http": {[]string{"--ca-fingerprint", fp, "--central", strings.Replace(cen.URL, "https", "http", 1)}, "a CA pin needs an https:// URL"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--token", cen.Token}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--central") {
				args = append(args, "--central", cen.URL)
			}
			r := runCLI(t, "", append(args, "get", "sites")...)
			if got := r.stdout + r.stderr; !strings.Contains(got, tc.want) {
				t.Errorf("exit %d, %q; want %q", r.code, got, tc.want)
			}
		})
	}
	t.Setenv("OUTPOST_CONFIG", filepath.Join(t.TempDir(), "config.yaml"))
	mustOK(t, runCLI(t, "", "context", "set", "hq", "--central", cen.URL, "--token", cen.Token, "--ca-fingerprint", fp))
	mustOK(t, runCLI(t, "", "--context", "hq", "get", "sites"))
}

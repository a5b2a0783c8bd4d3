package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/pki"
)

// TestAPIHTTPSOnTheNetwork: a two-node site on 198.18.0.11 and .12, each
// in its own namespace, the second joined over HTTPS by the first's API
// CA fingerprint. Each node prints the fingerprint of the site's API CA
// and writes its PEM; the APIs serve HTTPS whose chain curl and openssl
// verify with that PEM, and plain HTTP there is refused; the CLI pinning
// the right fingerprint works, pinning another fails naming both, and
// pinning nothing fails (the system's roots do not know the site's CA);
// the follower proxies a console request to the leader over TLS it
// verifies; the admin token is in no log.
func TestAPIHTTPSOnTheNetwork(t *testing.T) {
	s := startNetSite(t, 2)
	lab.Require(t, "curl", "openssl")
	n1 := s.node("n1")
	printed := printedFingerprint(t, n1)
	if printed != s.caFingerprint {
		t.Fatalf("n1 printed the API CA %s, its api-ca.pem is %s", printed, s.caFingerprint)
	}
	if fi, err := os.Stat(filepath.Join(n1.dataDir, "api-ca.pem")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("api-ca.pem: %v, mode %v, want 0644", err, fi.Mode().Perm())
	}
	if got := printedFingerprint(t, s.node("n2")); got != printed {
		t.Errorf("n2 derived the API CA %s, n1 %s: every node must derive the same", got, printed)
	}
	caFile := filepath.Join(n1.dataDir, "api-ca.pem")

	t.Run("curl and openssl verify the chain", func(t *testing.T) {
		for _, n := range s.nodes {
			host := s.addr[n.id].String()
			out, err := s.client.Run(t.Context(), "curl", "-sS", "--fail", "--cacert", caFile,
				"-H", "Authorization: Bearer "+s.token, n.apiURL+"/v1/cluster")
			if err != nil || !strings.Contains(out, `"leader_id"`) {
				t.Errorf("curl --cacert api-ca.pem %s: %v\n%s", n.apiURL, err, out)
			}
			out, err = s.client.Run(t.Context(), "sh", "-c", "openssl s_client -connect "+host+":7000 -CAfile "+caFile+
				" -verify_return_error -verify_ip "+host+" </dev/null")
			if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Errorf("openssl s_client -verify_return_error %s: %v\n%s", host, err, out)
			}
		}
		other := otherCA(t)
		if out, err := s.client.Run(t.Context(), "sh", "-c", "openssl s_client -connect "+s.addr["n1"].String()+":7000 -CAfile "+
			other+" -verify_return_error </dev/null"); err == nil {
			t.Errorf("openssl verified n1 against another CA:\n%s", out)
		}
	})

	t.Run("GET /v1/ca serves the PEM to anyone", func(t *testing.T) {
		resp, err := s.client.HTTPSClient(s.pinned(t)).Get(n1.apiURL + httpapi.CAPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, s.caPEM) || resp.Header.Get(httpapi.CAFingerprintHeader) != s.caFingerprint {
			t.Errorf("GET /v1/ca: %d, fingerprint %q, PEM equal to api-ca.pem: %v", resp.StatusCode,
				resp.Header.Get(httpapi.CAFingerprintHeader), bytes.Equal(body, s.caPEM))
		}
	})

	t.Run("plain HTTP is refused", func(t *testing.T) {
		plain := strings.Replace(n1.apiURL, "https://", "http://", 1)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", plain+"/v1/machines", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := s.client.HTTPClient().Do(req)
		if err != nil {
			return // refused outright
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
			t.Errorf("plain HTTP to the API: %d %s, want 400 (an HTTP request to an HTTPS server)", resp.StatusCode, body)
		}
	})

	t.Run("the CLI pins the CA", func(t *testing.T) {
		other, _ := pki.DeriveAPICA(randomSecret(t), "site", pki.Generation)
		for name, tc := range map[string]struct {
			args, env []string
			want      []string // in the output
			fail      bool
		}{
			"right fingerprint": {args: []string{"--ca-fingerprint", s.caFingerprint}, want: []string{"n1", "n2"}},
			"environment":       {env: []string{"OUTPOST_CA_FINGERPRINT=" + s.caFingerprint}, want: []string{"n1", "n2"}},
			"CA file":           {args: []string{"--ca-file", caFile}, want: []string{"n1", "n2"}},
			"wrong fingerprint": {args: []string{"--ca-fingerprint", other.Fingerprint()}, fail: true,
				want: []string{"expected CA " + other.Fingerprint(), "presented " + s.caFingerprint}},
			"no pin": {fail: true, want: []string{"certificate signed by unknown authority"}},
		} {
			t.Run(name, func(t *testing.T) {
				args := append([]string{"--server", n1.apiURL, "--token", s.token, "cluster", "status"}, tc.args...)
				cmd := s.client.CommandContext(t.Context(), outpostCLI(t), args...)
				cmd.Env = append(os.Environ(), tc.env...)
				out, err := cmd.CombinedOutput()
				if (err != nil) != tc.fail {
					t.Fatalf("outpost %s: %v, want failure %v\n%s", strings.Join(tc.args, " "), err, tc.fail, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(out), w) {
						t.Errorf("outpost output lacks %q:\n%s", w, out)
					}
				}
			})
		}
	})

	t.Run("a follower proxies the console over verified TLS", func(t *testing.T) {
		leader := s.waitFormed(s.nodes...)
		follower := "n1"
		if leader == "n1" {
			follower = "n2"
		}
		// No such machine: the leader answers 404 naming it, which the
		// follower relays; a follower that could not verify the leader
		// would answer 503.
		url := strings.Replace(s.node(follower).apiURL, "https://", "wss://", 1) + "/v1/machines/no-such-vm/console"
		_, resp, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPClient: s.client.HTTPSClient(s.pinned(t)),
			HTTPHeader: http.Header{"Authorization": {"Bearer " + s.token}}})
		if err == nil || resp == nil {
			t.Fatalf("console of no machine: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "no-such-vm") {
			t.Fatalf("console through follower %s: %d %s, want the leader's 404", follower, resp.StatusCode, body)
		}
	})

	t.Run("a join pinning another CA is refused", func(t *testing.T) {
		other, _ := pki.DeriveAPICA(randomSecret(t), "site", pki.Generation)
		ns := attachToSwitch(t, s.sw, "n8", "198.18.0.29/24")
		dir := filepath.Join(s.dir, "n8")
		cmd := ns.CommandContext(t.Context(), applianced(t), "-id", "n8", "-data-dir", dir,
			"-api-addr", "198.18.0.29:7000", "-raft-addr", "198.18.0.29:7001",
			"-join", n1.apiURL, "-join-ca-fingerprint", other.Fingerprint())
		cmd.Env = append(os.Environ(), "OUTPOST_JOIN_TOKEN="+s.token)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("n8 joined pinning another CA:\n%s", out)
		}
		for _, want := range []string{"expected CA " + other.Fingerprint(), "presented " + s.caFingerprint} {
			if !strings.Contains(string(out), want) {
				t.Errorf("n8's refusal does not say %q:\n%s", want, out)
			}
		}
		if bytes.Contains(out, []byte(s.token)) {
			t.Error("n8's output holds the token")
		}
		if _, err := os.Stat(filepath.Join(dir, "site.key")); err == nil {
			t.Error("n8 has a site key: it was handed one")
		}
	})

	// Last: the node it adds is not a member of the site.
	t.Run("-insecure-http serves plain HTTP, with a warning", func(t *testing.T) {
		ns := attachToSwitch(t, s.sw, "n9", "198.18.0.30/24")
		n := &node{id: "n9", dataDir: filepath.Join(s.dir, "n9"), apiURL: "http://198.18.0.30:7000", args: []string{
			"netns", "exec", ns.Name, applianced(t), "-id", "n9", "-data-dir", filepath.Join(s.dir, "n9"),
			"-api-addr", "198.18.0.30:7000", "-raft-addr", "198.18.0.30:7001", "-insecure-http", "-log-level", "debug"}}
		s.nodes = append(s.nodes, n)
		s.start(n)
		token := s.waitAdminToken(n)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", n.apiURL+"/v1/machines", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.client.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("plain HTTP with -insecure-http: %d, want 200", resp.StatusCode)
		}
		logs, _ := os.ReadFile(n.proc.stderr)
		if !bytes.Contains(logs, []byte("serving plain HTTP on a network address: tokens and secrets cross the network in the clear")) {
			t.Errorf("n9 did not warn that it serves plain HTTP:\n%s", logs)
		}
	})

	files, _ := filepath.Glob(filepath.Join(s.logDir, "n[12].*.stderr"))
	if len(files) < 2 {
		t.Fatalf("logs %v: want one per node", files)
	}
	for _, f := range files {
		logs, _ := os.ReadFile(f)
		if !bytes.Contains(logs, []byte("serving HTTPS with a certificate from the cluster's API CA")) {
			t.Errorf("%s does not say the API serves HTTPS: the check below may read the wrong file", f)
		}
		if bytes.Contains(logs, []byte(s.token)) {
			t.Errorf("%s holds the admin token", f)
		}
	}
}

// printedFingerprint is the API CA fingerprint n printed at its last
// start.
func printedFingerprint(t *testing.T, n *node) string {
	t.Helper()
	out, err := os.ReadFile(n.proc.stdout)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`site API CA (sha256:[0-9a-f]{64}) \(PEM in (\S+)\)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no API CA fingerprint:\n%s", n.id, out)
	}
	if want := filepath.Join(n.dataDir, "api-ca.pem"); string(m[2]) != want {
		t.Errorf("%s printed the PEM's path %s, want %s", n.id, m[2], want)
	}
	return string(m[1])
}

// otherCA writes another site's API CA to a file and returns its path.
func otherCA(t *testing.T) string {
	t.Helper()
	ca, err := pki.DeriveAPICA(randomSecret(t), "site", pki.Generation)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := ca.WritePEM(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomSecret(t *testing.T) []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

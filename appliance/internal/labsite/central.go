package labsite

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
)

// Central is a centrald process on the host, for tests, the demo and
// benchmarks: its API and the site credentials it hands out.
type Central struct {
	Addr    string // host:port of its API and sync websocket
	URL     string // http://Addr, or https://Addr (StartCentralTLS)
	Token   string // the admin token
	DataDir string
	Proc    *lab.Process
	// CAFile holds the certificate (PEM) of the CA that issued central's
	// certificate, for a site's -central-ca-file (StartCentralTLS, and
	// StartCentralIn: central's own API CA).
	CAFile string
	// CAFingerprint is central's API CA fingerprint, for a site's
	// -central-ca-fingerprint (StartCentralIn only).
	CAFingerprint string

	t      lab.T
	args   []string
	client *http.Client // verifies central's certificate
	ns     *lab.Netns   // where centrald runs (StartCentralIn); nil: the host
	// joined: a node that joined another's cluster, with its token.
	joined bool
}

// StartCentral starts centrald (the binary bin) on addr with more flags
// args, serving plain HTTP, and returns once it answers with its admin
// token written.
func StartCentral(t lab.T, bin, addr string, args ...string) *Central {
	t.Helper()
	c := newCentral(t, bin, addr, args)
	c.start()
	return c
}

// StartCentralTLS starts centrald as StartCentral does, serving HTTPS and
// the sync websocket over TLS with a certificate ca issues for addr's
// host.
func StartCentralTLS(t lab.T, bin, addr string, ca *lab.CA, args ...string) *Central {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("labsite: central address %q: %v", addr, err)
	}
	certFile, keyFile := lab.WriteKeyPair(t, ca.Issue(host))
	c := newCentral(t, bin, addr, append([]string{"-tls-cert", certFile, "-tls-key", keyFile}, args...))
	c.URL, c.CAFile = "https://"+addr, ca.WriteCert()
	c.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	c.start()
	return c
}

// StartCentralIn starts centrald as StartCentral does, in network
// namespace ns on addr, a network address there: it serves HTTPS and
// wss:// with a certificate from its own API CA, which the returned
// Central pins (CAFingerprint, from the api-ca.pem centrald writes).
func StartCentralIn(t lab.T, bin string, ns *lab.Netns, addr string, args ...string) *Central {
	t.Helper()
	c := newCentral(t, bin, addr, args)
	c.ns, c.URL, c.CAFile = ns, "https://"+addr, filepath.Join(c.DataDir, "api-ca.pem")
	c.start()
	return c
}

// pinAPICA makes c's client pin central's API CA, once centrald has
// written it.
func (c *Central) pinAPICA() error {
	pemBytes, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	fp, err := pki.PEMFingerprint(pemBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", c.CAFile, err)
	}
	tc, err := pki.PinnedTLS(fp, nil)
	if err != nil {
		return err
	}
	c.CAFingerprint, c.client = fp, c.ns.HTTPSClient(tc)
	return nil
}

func newCentral(t lab.T, bin, addr string, args []string) *Central {
	c := &Central{Addr: addr, URL: "http://" + addr, DataDir: filepath.Join(t.TempDir(), "central"), t: t, client: http.DefaultClient,
		args: append([]string{bin, "-data-dir", "", "-addr", addr}, args...)}
	c.args[2] = c.DataDir
	return c
}

// SyncArgs are applianced's flags to sync as site with central at url
// (its URL, several nodes' separated by commas, or a proxy's in front of
// it) with the credential in credFile. A plain http:// or ws:// URL adds
// -insecure-central, which the lab may set and a site must not; a central
// with a CA of its own adds -central-ca-file.
func (c *Central) SyncArgs(url, site, credFile string) []string {
	args := []string{"-central-url", url, "-site-id", site, "-site-credential-file", credFile}
	if strings.Contains(url, "http://") || strings.Contains(url, "ws://") {
		args = append(args, "-insecure-central")
	}
	if c.CAFile != "" {
		args = append(args, "-central-ca-file", c.CAFile)
	}
	if c.CAFingerprint != "" {
		args = append(args, "-central-ca-fingerprint", c.CAFingerprint)
	}
	return args
}

// Join starts another centrald node (the binary bin) on addr, with
// Raft on raftAddr and id as its node id, which joins c's cluster (c runs
// with -raft-addr) using c's admin token, and returns once it answers.
// A node of a central in a namespace (StartCentralIn) runs there too,
// joining c's https:// URL by c's API CA fingerprint.
func (c *Central) Join(bin, addr, raftAddr, id string, args ...string) *Central {
	c.t.Helper()
	tokenFile := filepath.Join(c.t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(c.Token+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	n := &Central{Addr: addr, URL: "http://" + addr, DataDir: filepath.Join(c.t.TempDir(), "central-"+id), Token: c.Token, t: c.t, joined: true, client: http.DefaultClient,
		args: append([]string{bin, "-data-dir", "", "-addr", addr, "-raft-addr", raftAddr, "-node-id", id, "-join", c.URL, "-join-token-file", tokenFile}, args...)}
	n.args[2] = n.DataDir
	if c.ns != nil {
		// In a namespace, over HTTPS: the new node pins c's API CA (the
		// same key, so the same CA) to join, and its client then pins the
		// CA it writes.
		n.ns, n.URL, n.CAFile = c.ns, "https://"+addr, filepath.Join(n.DataDir, "api-ca.pem")
		n.args = append(n.args, "-join-ca-fingerprint", c.CAFingerprint)
	}
	n.start()
	return n
}

// Restart kills centrald and starts it again on the same data.
func (c *Central) Restart() {
	c.t.Helper()
	c.Proc.Kill()
	c.start()
}

func (c *Central) start() {
	c.t.Helper()
	c.Proc = lab.StartProcess(c.t, lab.ProcessConfig{Name: "centrald", Netns: c.ns, Args: c.args})
	err := Poll(c.t.Context(), time.Minute, func() error {
		if c.ns != nil && c.CAFingerprint == "" {
			if err := c.pinAPICA(); err != nil {
				return err
			}
		}
		if !c.joined {
			raw, err := os.ReadFile(filepath.Join(c.DataDir, "admin.token"))
			if err != nil || !strings.HasSuffix(string(raw), "\n") {
				return fmt.Errorf("no admin token yet (%v)", err)
			}
			c.Token = strings.TrimSpace(string(raw))
		}
		res, err := c.client.Get(c.URL + "/healthz")
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
	if err != nil {
		c.t.Fatalf("labsite: centrald: %v", err)
	}
}

// Do calls central's API and decodes a 2xx answer into out.
func (c *Central) Do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(c.t.Context(), method, c.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// NewSite creates a site at central and returns the file (mode 0600)
// holding its credential, for applianced's -site-credential-file.
func (c *Central) NewSite(id string) string {
	c.t.Helper()
	var created struct {
		Credential string `json:"credential"`
	}
	if err := c.Do("POST", "/v1/sites", map[string]string{"id": id, "name": id}, &created); err != nil {
		c.t.Fatal(err)
	}
	credFile := filepath.Join(c.t.TempDir(), "site.credential")
	if err := os.WriteFile(credFile, []byte(created.Credential+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return credFile
}

// StoredSeq is the last event sequence central has stored for site.
func (c *Central) StoredSeq(site string) (uint64, error) {
	var s struct {
		Sync struct {
			StoredSeq uint64 `json:"stored_seq"`
		} `json:"sync"`
	}
	err := c.Do("GET", "/v1/sites/"+site, nil, &s)
	return s.Sync.StoredSeq, err
}

// WaitStored waits until central has stored site's events up to last.
func (c *Central) WaitStored(ctx context.Context, site string, last uint64, timeout time.Duration) {
	c.t.Helper()
	err := Poll(ctx, timeout, func() error {
		stored, err := c.StoredSeq(site)
		if err != nil {
			return err
		}
		if stored < last {
			return fmt.Errorf("central stored %d of %d", stored, last)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// CentralEvent is an event as central stores it.
type CentralEvent struct {
	Seq  uint64      `json:"seq"`
	Data store.Event `json:"data"`
}

// Events returns every event central stored for site, in order.
func (c *Central) Events(site string) []CentralEvent {
	c.t.Helper()
	var all []CentralEvent
	var since uint64
	for {
		var page struct {
			Events []CentralEvent `json:"events"`
		}
		if err := c.Do("GET", fmt.Sprintf("/v1/sites/%s/events?since=%d&limit=1000", site, since), nil, &page); err != nil {
			c.t.Fatal(err)
		}
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		since = page.Events[len(page.Events)-1].Seq
	}
}

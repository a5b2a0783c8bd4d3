package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// runCLI runs the outpost CLI against n as the admin and returns its
// output; it fails the test unless the CLI succeeds.
func (c *cluster) runCLI(n *node, args ...string) string {
	c.t.Helper()
	cmd := exec.CommandContext(c.t.Context(), outpostCLI(c.t), append([]string{"-server", n.apiURL, "-token", c.token}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("outpost %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	c.t.Logf("outpost %s:\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String()
}

// waitOrderDone waits until order id at n has ended and returns it.
func (c *cluster) waitOrderDone(n *node, id string) store.Order {
	c.t.Helper()
	var o store.Order
	c.waitFor(time.Minute, "order "+id+" to end", func() error {
		if err := c.get(n, "/v1/orders/"+id, &o); err != nil {
			return err
		}
		if !o.Done() {
			return fmt.Errorf("order %s is %s", id, o.State)
		}
		return nil
	})
	return o
}

// TestRedfishCertificateTrust: applianced drives a Redfish BMC (the lab's,
// on loopback, with a self-signed certificate) only once an operator has
// accepted its certificate. Before, the power-on order fails naming the
// certificate and how to accept it, the machine shows it, and the BMC
// receives no request at all, so never the password; after `outpost bmc
// accept-certificate`, the same BMC is powered on; when its certificate
// changes, it is refused again, naming the new one.
func TestRedfishCertificateTrust(t *testing.T) {
	c := newCluster(t)
	n := c.addNode("n1", "")
	c.start(n)
	c.token = c.waitAdminToken(n)
	c.waitFormed(n)
	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{})
	first := bmc.Fingerprint(rf.Certificate().Certificate[0])
	m := newMachine("r1", "02:00:00:00:0a:01")
	m.BMC = &store.BMC{Address: rf.Addr, Driver: "redfish", Username: rf.Username, Password: rf.Password}
	c.send(n, "PUT", "/v1/machines/r1", m)

	c.send(n, "PUT", "/v1/orders/on-1", store.Order{ID: "on-1", Action: store.OrderPowerOn, MachineID: "r1"})
	o := c.waitOrderDone(n, "on-1")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, "outpost bmc accept-certificate r1 "+first) {
		t.Fatalf("order on-1: %s %q, want failed naming %s and how to accept it", o.State, o.Reason, first)
	}
	if rf.Handshakes() == 0 {
		t.Fatal("the appliance never reached the BMC: the test proves nothing")
	}
	if reqs := rf.Requests(); len(reqs) > 0 {
		t.Fatalf("the BMC got requests before its certificate was accepted: %+v", reqs)
	}
	if out := c.runCLI(n, "get", "machine", "r1"); !strings.Contains(out, "BMC certificate presented: "+first) {
		t.Errorf("outpost get machine r1 does not show the presented certificate:\n%s", out)
	}

	if out := c.runCLI(n, "bmc", "accept-certificate", "r1"); !strings.Contains(out, first+" accepted") {
		t.Errorf("outpost bmc accept-certificate r1: %q", out)
	}
	c.send(n, "PUT", "/v1/orders/on-2", store.Order{ID: "on-2", Action: store.OrderPowerOn, MachineID: "r1"})
	if o := c.waitOrderDone(n, "on-2"); o.State != store.OrderSucceeded || rf.Power() != "On" {
		t.Fatalf("order on-2 after accepting: %s %q, BMC power %s", o.State, o.Reason, rf.Power())
	}
	if len(rf.PasswordSeen()) == 0 {
		t.Fatal("the accepted BMC never got the password: its session request is what the refusal withholds")
	}

	// The certificate changes (renewed, or an impostor at the address).
	rf.SetCertificate(lab.SelfSigned(t, "127.0.0.1"))
	second := bmc.Fingerprint(rf.Certificate().Certificate[0])
	before := len(rf.Requests())
	c.send(n, "PUT", "/v1/orders/off-1", store.Order{ID: "off-1", Action: store.OrderPowerOff, MachineID: "r1"})
	o = c.waitOrderDone(n, "off-1")
	if o.State != store.OrderFailed || !strings.Contains(o.Reason, second) || !strings.Contains(o.Reason, "changed") {
		t.Errorf("order off-1 after the change: %s %q, want failed naming %s", o.State, o.Reason, second)
	}
	if reqs := rf.Requests()[before:]; len(reqs) > 0 {
		t.Errorf("the changed certificate got requests: %+v", reqs)
	}
	if rf.Power() != "On" {
		t.Error("the power changed through a refused certificate")
	}
	if out := c.runCLI(n, "get", "machines"); !strings.Contains(out, "CHANGED "+second[:19]) {
		t.Errorf("outpost get machines does not show the change:\n%s", out)
	}
	for _, f := range []string{n.proc.stdout, n.proc.stderr} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(rf.Password)) {
			t.Errorf("the BMC password is in %s", f)
		}
	}
	events := string(c.send(n, "GET", "/v1/events?limit=1000", nil))
	if strings.Contains(events, rf.Password) || !strings.Contains(events, "bmc.certificate_accepted") {
		t.Errorf("events: want bmc.certificate_accepted and no password:\n%s", events)
	}
}

// TestSyncCentralTLS: a site syncs with a central that serves TLS with a
// certificate of its own CA when it is given that CA (-central-ca-file);
// without it, the site never gets past the handshake, and central never
// hears from it; and a ws:// central is refused at start without
// -insecure-central.
func TestSyncCentralTLS(t *testing.T) {
	cen := labsite.StartCentralTLS(t, centrald(t), fmt.Sprintf("127.0.0.1:%d", freePort(t)), lab.NewCA(t, "central CA"),
		"-heartbeat", "1s", "-log-level", "debug")
	if !strings.HasPrefix(cen.URL, "https://") {
		t.Fatalf("central at %s, want https", cen.URL)
	}

	good := newCluster(t)
	n := good.addNode("n1", "")
	n.args = append(n.args, cen.SyncArgs(cen.URL, "tls", cen.NewSite("tls"))...)
	good.start(n)
	good.token = good.waitAdminToken(n)
	good.waitFormed(n)
	waitConnected(t, cen, "tls", true)
	good.send(n, "POST", "/v1/events", store.Event{Kind: "test.tls", Message: "over verified TLS"})
	var page struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if err := good.get(n, "/v1/events?limit=1", &page); err != nil {
		t.Fatal(err)
	}
	cen.WaitStored(t.Context(), "tls", page.LastSeq, time.Minute)

	// Without the CA: the system's roots do not know central's.
	bad := newCluster(t)
	b := bad.addNode("n1", "")
	b.args = append(b.args, "-central-url", cen.URL, "-site-id", "untrusted", "-site-credential-file", cen.NewSite("untrusted"))
	bad.start(b)
	bad.token = bad.waitAdminToken(b)
	bad.waitFormed(b)
	bad.waitFor(time.Minute, "the site to say central's certificate is not trusted", func() error {
		out, _ := os.ReadFile(b.proc.stderr)
		if !bytes.Contains(out, []byte("certificate signed by unknown authority")) {
			return fmt.Errorf("not yet in %s", b.proc.stderr)
		}
		return nil
	})
	var site struct {
		Sync struct {
			Connected bool   `json:"connected"`
			StoredSeq uint64 `json:"stored_seq"`
		} `json:"sync"`
	}
	if err := cen.Do("GET", "/v1/sites/untrusted", nil, &site); err != nil || site.Sync.Connected || site.Sync.StoredSeq != 0 {
		t.Errorf("central heard from the site that does not trust it: %+v (%v)", site.Sync, err)
	}

	// ws:// without the flag: refused at start, naming why.
	plain := newCluster(t)
	p := plain.addNode("n1", "")
	p.args = append(p.args, "-central-url", "ws://"+cen.Addr, "-site-id", "plain", "-site-credential-file", cen.NewSite("plain"))
	plain.start(p)
	select {
	case <-p.proc.done:
	case <-time.After(30 * time.Second):
		t.Fatal("applianced still runs 30s after starting with a ws:// central")
	}
	stderr, _ := os.ReadFile(p.proc.stderr)
	if code := p.proc.exitCode(); code <= 0 || !bytes.Contains(stderr, []byte("insecure_central")) || !bytes.Contains(stderr, []byte("ws://"+cen.Addr)) {
		t.Errorf("exit %d, stderr %s; want a refusal naming the URL and insecure_central", code, stderr)
	}
}

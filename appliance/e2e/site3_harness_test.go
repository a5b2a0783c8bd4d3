package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// syncedNetSite is a netSite of three nodes that syncs with central over
// a WAN the test can cut, and provisions machines on its network: each
// node has an artifact directory of its own, and a machine is a QEMU VM
// behind an ipmi_sim BMC, on a host of its own cabled to the switch,
// which network-boots from whichever node leads.
//
//	central (127.0.0.1 in the test's namespace)
//	   │  the WAN: a fault proxy on each node's loopback
//	n1 .11   n2 .12   n3 .13   client .2   machine hosts .31, .32, ...
//	   └───────┴────────┴─────────┴────────────┘  the switch (br0)
//
// Every node serves boot HTTP, the agent API and metadata on port 80 of
// its address, and DHCP on siteIface; only the leader answers DHCP, and
// it names its own boot URL.
type syncedNetSite struct {
	*netSite
	cen    *labsite.Central
	siteID string
	wan    *siteWAN
	imgs   lab.Images
	// artifactDir is each node's -artifact-dir, by node ID.
	artifactDir map[string]string

	cfg           syncedNetSiteConfig
	appliancedBin string
	credFile      string
	hosts         int // machine hosts started so far
}

// siteWAN is the site's link to central: one fault proxy per node, in
// the node's namespace. Cutting it cuts every node's.
type siteWAN struct {
	proxies map[string]*lab.FaultProxy // by node ID
}

// Cut takes the WAN down: open connections are cut, new ones refused.
func (w *siteWAN) Cut() {
	for _, p := range w.proxies {
		p.SetMode(lab.Refuse)
	}
}

// Heal brings the WAN back up.
func (w *siteWAN) Heal() {
	for _, p := range w.proxies {
		p.SetMode(lab.Pass)
	}
}

// syncedNetSiteConfig is what startSyncedNetSite may be told.
type syncedNetSiteConfig struct {
	// artifacts are the files each node's artifact directory starts
	// with (and their .sha256 sidecars), by base name in the image
	// build's directory.
	artifacts []string
	// args are more applianced flags, for every node.
	args []string
}

// syncedNetSiteOption changes a syncedNetSiteConfig.
type syncedNetSiteOption func(*syncedNetSiteConfig)

// withoutTestOSFile leaves the test OS image out of the nodes' artifact
// directories: a test whose site gets it another way (from central)
// starts with the boot files alone.
func withoutTestOSFile() syncedNetSiteOption {
	return func(c *syncedNetSiteConfig) { c.artifacts = bootArtifacts }
}

// withNodeArgs gives every node more applianced flags.
func withNodeArgs(args ...string) syncedNetSiteOption {
	return func(c *syncedNetSiteConfig) { c.args = append(c.args, args...) }
}

// bootArtifacts are what a node needs to network-boot the installer on
// BIOS and UEFI machines.
var bootArtifacts = []string{"vmlinuz", "installer.initrd", "undionly.kpxe", "ipxe.efi", "snponly.efi"}

// testOSFile is the test OS image the site's image (labsite.TestOSName)
// names.
const testOSFile = "testos.raw.gz"

// startSyncedNetSite creates site siteID at cen and starts its three
// nodes, each syncing with cen through its own WAN proxy, and returns
// once they have formed and central sees the site connected. cen may
// serve plain HTTP (startCentral: a proxy can then corrupt the bodies
// crossing it) or HTTPS (startCentralTLS: the nodes verify central's
// certificate through their proxies, which listen on central's host,
// 127.0.0.1).
func startSyncedNetSite(t *testing.T, cen *labsite.Central, siteID string, opts ...syncedNetSiteOption) *syncedNetSite {
	t.Helper()
	cfg := syncedNetSiteConfig{artifacts: append(append([]string(nil), bootArtifacts...), testOSFile)}
	for _, o := range opts {
		o(&cfg)
	}
	c := newCluster(t) // builds applianced, or skips under -short
	lab.Require(t, "root", "ip", "qemu-system-x86_64", "ipmi_sim", "ipmitool")
	s := &syncedNetSite{
		cen:           cen,
		siteID:        siteID,
		wan:           &siteWAN{proxies: map[string]*lab.FaultProxy{}},
		imgs:          lab.BuildImages(t),
		artifactDir:   map[string]string{},
		cfg:           cfg,
		appliancedBin: c.bin,
		credFile:      cen.NewSite(siteID),
	}
	s.netSite = newSwitchedSite(t, c)
	for i := 1; i <= 3; i++ {
		s.startSyncedNode(t, fmt.Sprintf("n%d", i), netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}))
	}
	s.waitFormed(s.nodes...)
	waitConnected(t, cen, siteID, true)
	return s
}

// newSwitchedSite makes the switch and the client host of a netSite
// whose nodes the caller adds: c then runs them through iproute2's ip,
// each in its namespace ("netns exec <ns> applianced ...").
func newSwitchedSite(t *testing.T, c *cluster) *netSite {
	t.Helper()
	ip, err := lookIPRoute2()
	if err != nil {
		t.Fatal(err)
	}
	sw := lab.NewNetns(t, "switch")
	sw.Bridge("br0", "")
	s := &netSite{cluster: c, sw: sw, ns: map[string]*lab.Netns{}, addr: map[string]netip.Addr{}}
	s.client = attachToSwitch(t, sw, "client", "198.18.0.2/24")
	c.bin = ip
	c.http = s.client.HTTPClient()
	return s
}

// startSyncedNode cables node id to the switch at addr, gives it its
// artifact directory and its WAN proxy, and starts it: the first node
// bootstraps the site, the others join it.
func (s *syncedNetSite) startSyncedNode(t *testing.T, id string, addr netip.Addr) {
	t.Helper()
	ns := attachToSwitch(t, s.sw, id, addr.String()+"/24")
	s.ns[id], s.addr[id] = ns, addr
	s.artifactDir[id] = s.copyArtifacts(t, id)
	proxy := lab.StartFaultProxyIn(t, ns, "127.0.0.1:0", s.cen.Addr)
	s.wan.proxies[id] = proxy
	scheme, _, _ := strings.Cut(s.cen.URL, "://")
	n := &node{
		id:      id,
		dataDir: filepath.Join(s.dir, id),
		apiURL:  "https://" + addr.String() + ":7000",
		args: append([]string{
			"netns", "exec", ns.Name, s.appliancedBin,
			"-id", id,
			"-data-dir", filepath.Join(s.dir, id),
			"-api-addr", addr.String() + ":7000",
			"-raft-addr", addr.String() + ":7001",
			"-dhcp-interface", siteIface,
			// Port 80: the test OS asks http://<its DHCP server>/ for its
			// metadata (see anyLeaderTemplate).
			"-boot-addr", addr.String() + ":80",
			"-artifact-dir", s.artifactDir[id],
			"-bmc-job-timeout", "40s", "-bmc-call-timeout", "10s", "-bmc-poll-interval", "5s",
			"-log-level", "debug",
		}, s.cen.SyncArgs(scheme+"://"+proxy.Addr, s.siteID, s.credFile)...),
	}
	n.args = append(n.args, s.cfg.args...)
	first := len(s.nodes) == 0
	if !first {
		n.args = append(n.args, "-join", s.nodes[0].apiURL, "-join-ca-fingerprint", s.caFingerprint)
		n.env = []string{"OUTPOST_JOIN_TOKEN=" + s.token}
	}
	s.nodes = append(s.nodes, n)
	s.start(n)
	if first {
		s.token = s.waitAdminToken(n)
		s.pinCA(t, n)
	}
}

// copyArtifacts copies the configured files of the image build, with
// their sidecars, into a directory of node id's own and returns it.
func (s *syncedNetSite) copyArtifacts(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(s.dir, id+"-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range s.cfg.artifacts {
		for _, f := range []string{name, name + ".sha256"} {
			if err := copyRegular(filepath.Join(s.imgs.Dir, f), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// copyRegular copies the regular file src to dst.
func copyRegular(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// anyLeaderTemplate is the name of the template provisioning stores: the
// labsite's install template, but the test OS it writes asks the DHCP
// server that configured it for its metadata (http://<server>/, port 80)
// rather than the metadata_url of the workflow.
//
// Why: a workflow's metadata_url is the boot URL of the node that
// proposed it (site.Proposer fills it in), the leader when the order came
// from central. A test OS pointed at it could never read its metadata
// once that node is dead; asking its DHCP server, it reaches whichever
// node leads when it boots.
const anyLeaderTemplate = "install-testos-any-leader"

// provisioning is what the site needs to provision VMs with the test OS
// (labsite.Provisioning's installer, test OS image and templates, with
// anyLeaderTemplate): the subnet of the switch's network, a pool from
// .100, no gateway. Without the test OS file (withoutTestOSFile) it has
// no test OS image either.
func (s *syncedNetSite) provisioning(t *testing.T) []store.Object {
	t.Helper()
	objs := []store.Object{&store.Subnet{
		Name: labsite.SubnetName, CIDR: "198.18.0.0/24",
		Pools:     []store.Range{{Start: "198.18.0.100", End: "198.18.0.250"}},
		Discovery: true,
	}}
	for _, o := range labsite.Provisioning(t, s.imgs) {
		switch o := o.(type) {
		case *store.Subnet:
			continue
		case *store.Image:
			if o.File == testOSFile && !slices.Contains(s.cfg.artifacts, testOSFile) {
				continue // the test brings it another way
			}
		}
		objs = append(objs, o)
	}
	tpl := labsite.InstallTemplate()
	tpl.Name = anyLeaderTemplate
	tpl.Description = "as " + labsite.TemplateName + ", the test OS asking its DHCP server for metadata"
	const param = " outpost.metadata={{ .metadata_url }}"
	for _, a := range tpl.Actions {
		arg := map[string]string{"configure": "content", "kexec": "cmdline"}[a.Name]
		if arg == "" {
			continue
		}
		if !strings.Contains(a.Args[arg], param) {
			t.Fatalf("labsite's install template's %s no longer has %q: update anyLeaderTemplate", a.Name, param)
		}
		a.Args[arg] = strings.Replace(a.Args[arg], param, "", 1)
	}
	return append(objs, tpl)
}

// put stores objects through node n1's API (a follower forwards to the
// leader), in order.
func (s *syncedNetSite) put(t *testing.T, objs ...store.Object) {
	t.Helper()
	for _, o := range objs {
		s.send(s.nodes[0], "PUT", "/v1/"+o.Kind()+"s/"+o.Key(), o)
	}
}

// leader waits until the running nodes agree on a leader, and returns it.
func (s *syncedNetSite) leader(t *testing.T) *node {
	t.Helper()
	var running []*node
	for _, n := range s.nodes {
		if n.running() {
			running = append(running, n)
		}
	}
	var id string
	s.waitFor(time.Minute, "the running nodes to agree on a leader", func() error {
		id = ""
		for _, n := range running {
			st, err := s.status(n)
			if err != nil {
				return err
			}
			if st.LeaderID == "" || (id != "" && st.LeaderID != id) {
				return fmt.Errorf("%s sees leader %q, another node %q", n.id, st.LeaderID, id)
			}
			id = st.LeaderID
		}
		return nil
	})
	return s.node(id)
}

// others returns the nodes other than n.
func (s *syncedNetSite) others(n *node) []*node {
	var out []*node
	for _, m := range s.nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// siteVM is a machine of a syncedNetSite: a QEMU VM behind its ipmi_sim
// BMC. Its firmware can be held at power on, as a server's POST holds it
// for minutes, until the test releases it.
type siteVM struct {
	*bmcVM
	// gate is a file: a powered-on VM starts its firmware only once it
	// exists.
	gate string
}

// holdFirmware makes the VM, when next powered on, wait before its
// firmware runs until releaseFirmware.
func (v *siteVM) holdFirmware(t *testing.T) {
	t.Helper()
	if err := os.Remove(v.gate); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

// releaseFirmware lets a held VM's firmware run.
func (v *siteVM) releaseFirmware(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(v.gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitHeld waits until the VM's BMC says it is powered on, and checks
// that its firmware has not run: its serial console is empty.
func (v *siteVM) waitHeld(ctx context.Context, t *testing.T) {
	t.Helper()
	err := labsite.Poll(ctx, time.Minute, func() error {
		st, err := v.BMC.PowerState(ctx)
		if err == nil && st != "on" {
			err = fmt.Errorf("the BMC says power %s", st)
		}
		return err
	})
	if err != nil {
		t.Fatalf("the VM is not powered on: %v", err)
	}
	if b, err := os.ReadFile(v.Serial); err == nil && len(b) > 0 {
		t.Fatalf("the VM's firmware runs while held: its serial console has %d bytes", len(b))
	}
}

// firmwareGate is the program the BMC powers a siteVM on with: it waits
// for the gate file, then becomes QEMU (its arguments).
const firmwareGate = `#!/bin/sh
while [ ! -e %q ]; do sleep 0.1; done
exec "$@"
`

// startBMCVM starts a machine on a host of its own cabled to the switch:
// a QEMU VM (BIOS, network boot first, then an empty disk) whose NIC is
// mac, behind an ipmi_sim BMC that shares the host's link (as a BMC on a
// shared LOM does) at 198.18.0.31, .32, ... Powering it on over IPMI
// starts QEMU (its firmware at once, unless held); it then
// network-boots from whichever node leads.
func (s *syncedNetSite) startBMCVM(t *testing.T, name, mac string) *siteVM {
	t.Helper()
	host, bmcIP := s.newMachineHost(t, name)
	host.Tap("tap0", "br0")
	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: "tap0", MAC: mac, MemoryMB: 1024,
		Disks: []string{labsite.NewDisk(t, 256<<20)}})
	vmName := ""
	for i, a := range args {
		if a == "-name" && i+1 < len(args) {
			vmName = args[i+1]
		}
	}
	dir := t.TempDir()
	vm := &siteVM{gate: filepath.Join(dir, "firmware-released")}
	vm.releaseFirmware(t)
	prog := filepath.Join(dir, "firmware-gate")
	if err := os.WriteFile(prog, fmt.Appendf(nil, firmwareGate, vm.gate), 0o755); err != nil {
		t.Fatal(err)
	}
	sim := lab.StartIPMISim(t, lab.IPMISimConfig{Name: "bmc-" + name, Netns: host, Addr: bmcIP,
		StartArgs: append([]string{prog}, args...)})
	vm.bmcVM = &bmcVM{BMC: sim, Serial: serial, name: vmName}
	return vm
}

// newMachineHost creates a namespace cabled to the switch whose port is
// a bridge (br0) holding the next BMC address (198.18.0.31, .32, ...):
// the BMC and the machine's taps share the link. It answers IPv6 router
// solicitations there: iPXE waits ~15 s for a router unless one answers.
func (s *syncedNetSite) newMachineHost(t *testing.T, name string) (host *lab.Netns, bmcIP string) {
	t.Helper()
	s.hosts++
	bmcIP = fmt.Sprintf("198.18.0.%d", 30+s.hosts)
	host = attachToSwitch(t, s.sw, name, "")
	host.Bridge("br0", bmcIP+"/24")
	if out, err := host.Run(t.Context(), "ip", "link", "set", siteIface, "master", "br0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Answers leave from the bridge's link-local address, once it has one.
	waitLinkLocal(t, host, "br0")
	host.AnswerRouterSolicitations(t, "br0")
	return host, bmcIP
}

// waitLinkLocal waits until dev in ns has an IPv6 link-local address
// past duplicate address detection.
func waitLinkLocal(t *testing.T, ns *lab.Netns, dev string) {
	t.Helper()
	err := labsite.Poll(t.Context(), 30*time.Second, func() error {
		out, err := ns.Run(t.Context(), "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "inet6 fe80:") || strings.Contains(out, "tentative") {
			return fmt.Errorf("%s: no usable link-local address yet: %q", dev, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// centralMachine is the JSON central takes for a machine booting from
// mac behind vm's BMC.
func centralMachine(id, mac string, vm *siteVM) map[string]any {
	return map[string]any{"id": id, "hostname": id, "arch": "x86_64",
		"interfaces": []map[string]any{{"name": siteIface, "mac": mac, "boot": true}},
		"bmc": map[string]any{"address": vm.BMC.Addr, "driver": "ipmi",
			"username": vm.BMC.Username, "password": vm.BMC.Password}}
}

// startCentralTLS starts centrald on a free loopback port, serving HTTPS
// with a certificate of a CA of the test's, which sites are given
// (labsite.Central.SyncArgs adds -central-ca-file).
func startCentralTLS(t *testing.T) *labsite.Central {
	t.Helper()
	return labsite.StartCentralTLS(t, centrald(t), fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		lab.NewCA(t, "central CA"), "-heartbeat", "1s", "-log-level", "debug")
}

// siteEvents reads every event of the site from n, linearizably.
func (s *syncedNetSite) siteEvents(t *testing.T, n *node) []store.Event {
	t.Helper()
	var all []store.Event
	for since := uint64(0); ; {
		var page struct {
			Events []store.Event `json:"events"`
		}
		if err := s.get(n, fmt.Sprintf("/v1/events?since=%d&limit=1000&consistent=true", since), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		since = page.Events[len(page.Events)-1].Seq
	}
}

// waitJob waits until job id, read on n, is in state want.
func (s *syncedNetSite) waitJob(ctx context.Context, t *testing.T, n *node, id, want string) store.Job {
	t.Helper()
	var j store.Job
	err := labsite.Poll(ctx, 5*time.Minute, func() error {
		if err := s.get(n, "/v1/jobs/"+id, &j); err != nil {
			return err
		}
		if j.State != want {
			return fmt.Errorf("job %s is %s (attempt %d): %s", id, j.State, j.Attempt, j.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for job %s to be %s: %v", id, want, err)
	}
	return j
}

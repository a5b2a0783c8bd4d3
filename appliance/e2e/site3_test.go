package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestSiteOf3ProvisionsThroughLeaderLoss: a machine registered and an
// order placed at central reach a 3-node site; the WAN is cut; once the
// order's BMC jobs have run (the VM is powered on, its firmware held as
// a server's POST holds it) the site's leader is SIGKILLed; the VM then
// network-boots the installer from the new leader, installs the test OS,
// boots it from disk and reads its metadata from whichever survivor
// leads then (under load the leadership may move again, and the site
// must carry on), never from the dead node; the order succeeds at the
// site; when the WAN heals, central holds every event of the site
// exactly once and in order, the machine's timeline whole.
//
// Why the leader dies then: a BMC job killed with its leader is run
// again by the next one only after its deadline (package jobs), so a
// kill in the middle of one makes the order wait that long, by design.
// With the jobs done, all that is left is served by whichever node leads,
// from the Raft state every node holds: DHCP, the iPXE script, the
// installer, the agent API and metadata. Holding the firmware until the
// new leader is elected makes that moment exact: a kill after the VM had
// fetched its iPXE script from the old leader would leave it retrying
// that dead node's URLs (httpboot's scripts re-chain their own URL).
func TestSiteOf3ProvisionsThroughLeaderLoss(t *testing.T) {
	began := time.Now()
	elapsed := func() string { return fmt.Sprintf("%6.1fs", time.Since(began).Seconds()) }
	const (
		siteID = "site3"
		mac    = "52:54:00:5e:03:01"
	)
	cen := startCentralTLS(t)
	s := startSyncedNetSite(t, cen, siteID)
	s.put(t, s.provisioning(t)...)
	vm := s.startBMCVM(t, "srv1", mac)
	vm.holdFirmware(t)
	t.Logf("%s the site runs, synced with central over HTTPS", elapsed())

	if err := cen.Do("PUT", "/v1/sites/"+siteID+"/machines/srv1", centralMachine("srv1", mac, vm), nil); err != nil {
		t.Fatal(err)
	}
	order := map[string]any{"action": "provision", "machine_id": "srv1", "template": anyLeaderTemplate,
		"image": labsite.TestOSName, "values": map[string]string{"hostname": "site3-host-1"}}
	if err := cen.Do("PUT", "/v1/sites/"+siteID+"/orders/prov1", order, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	s.waitFor(2*time.Minute, "the order at the site", func() error {
		var o store.Order
		return s.get(s.nodes[0], "/v1/orders/prov1", &o)
	})
	s.wan.Cut()
	t.Logf("%s the order is at the site: the WAN is cut", elapsed())

	s.waitJob(ctx, t, s.nodes[0], "prov1-cycle", store.JobSucceeded)
	vm.waitHeld(ctx, t)
	old := s.leader(t)
	s.kill(old)
	t.Logf("%s the order's power cycle ran: SIGKILLed the leader %s", elapsed(), old.id)
	newLeader := s.node(s.waitNewLeader(s.others(old), old.id))
	vm.releaseFirmware(t)
	t.Logf("%s %s leads: the VM's firmware runs", elapsed(), newLeader.id)

	line, _, err := vm.waitSerial(ctx, testOSLine, 0)
	if err != nil {
		t.Fatalf("the machine did not provision with the leader dead and the WAN down: %v", err)
	}
	t.Logf("%s serial: %s", elapsed(), line)
	if m := testOSLine.FindStringSubmatch(line); m[1] != "site3-host-1" || m[2] != "srv1" {
		t.Errorf("the test OS says hostname=%s instance-id=%s, want site3-host-1 and srv1", m[1], m[2])
	}
	var alive []string
	for _, n := range s.others(old) {
		alive = append(alive, s.addr[n.id].String())
	}
	checkServedBy(t, vm, s.addr[old.id].String(), alive...)
	if o := s.waitOrderDone(newLeader, "prov1"); o.State != store.OrderSucceeded {
		t.Fatalf("order prov1 at the site: %s %q", o.State, o.Reason)
	}
	waitConnected(t, cen, siteID, false) // the WAN was down all along

	s.wan.Heal()
	t.Logf("%s the order succeeded: the WAN heals", elapsed())
	checkCentralHasEventsOnce(ctx, t, s, newLeader)
	checkCentralTimeline(t, cen, siteID, "srv1")
	t.Logf("%s central holds every event of the site once", elapsed())
}

// installerURL is the appliance the installer's kernel was pointed at,
// as the kernel prints its command line on the serial console; metadataURL
// is where the test OS read its metadata.
var (
	installerURL = regexp.MustCompile(`Command line:.*outpost\.url=http://([0-9.]+):`)
	metadataURL  = regexp.MustCompile(`metadata service http://([0-9.]+)`)
)

// checkServedBy checks on vm's serial console that the installer it ran
// and the metadata its test OS read came from the nodes at alive (from
// whichever of them led: under load the leadership may move again), and
// nothing from the node at dead.
func checkServedBy(t *testing.T, vm *siteVM, dead string, alive ...string) {
	t.Helper()
	serial, err := os.ReadFile(vm.Serial)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []*regexp.Regexp{installerURL, metadataURL} {
		all := re.FindAllSubmatch(serial, -1)
		if len(all) == 0 {
			t.Errorf("no line matching %q on the serial console (%s)", re, vm.Serial)
		}
		for _, m := range all {
			if !slices.Contains(alive, string(m[1])) {
				t.Errorf("the VM was served by %s, not a surviving node %v: %s", m[1], alive, m[0])
			} else {
				t.Logf("served by %s: %s", m[1], m[0])
			}
		}
	}
	if strings.Contains(string(serial), "http://"+dead+":") {
		t.Errorf("the serial console names the dead leader %s (%s)", dead, vm.Serial)
	}
}

// checkCentralHasEventsOnce waits until central has stored the site's
// last event, as n has it, and checks that central holds each of the
// site's events once, in the site's order, as the site recorded it.
func checkCentralHasEventsOnce(ctx context.Context, t *testing.T, s *syncedNetSite, n *node) {
	t.Helper()
	site := s.siteEvents(t, n)
	if len(site) == 0 {
		t.Fatal("the site has no events")
	}
	s.cen.WaitStored(ctx, s.siteID, site[len(site)-1].Seq, 3*time.Minute)
	got := s.cen.Events(s.siteID)
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Data.Seq != e.Seq {
			t.Fatalf("central's event %d has seq %d (site seq %d): not dense, or out of order", i, e.Seq, e.Data.Seq)
		}
	}
	if len(got) < len(site) {
		t.Fatalf("central has %d events, the site %d", len(got), len(site))
	}
	for i, e := range site {
		g := got[i].Data
		if g.Seq != e.Seq || g.Kind != e.Kind || g.Message != e.Message || g.MachineID != e.MachineID {
			t.Fatalf("central's event %d is %d %s %q, the site's %d %s %q", i, g.Seq, g.Kind, g.Message, e.Seq, e.Kind, e.Message)
		}
	}
}

// checkCentralTimeline checks machine's timeline as central has it: each
// step of its provisioning once, in order.
func checkCentralTimeline(t *testing.T, cen *labsite.Central, siteID, machine string) {
	t.Helper()
	checkCentralTimelineIs(t, cen, siteID, machine, "machine.state provisioning", "order.created", "bmc.job.succeeded", "bmc.job.succeeded",
		"workflow.running", "workflow.succeeded", "machine.state provisioned", "order.succeeded")
}

// checkCentralTimelineIs checks that machine's timeline as central has
// it is want: the steps of its orders (an order that waited for its
// artifacts says so, and then that it started), each once, in order.
func checkCentralTimelineIs(t *testing.T, cen *labsite.Central, siteID, machine string, want ...string) {
	t.Helper()
	var kinds []string
	for _, e := range cen.Events(siteID) {
		if e.Data.MachineID != machine {
			continue
		}
		switch e.Data.Kind {
		case "order.created", "order.waiting", "order.started", "bmc.job.succeeded", "workflow.running", "workflow.succeeded", "order.succeeded":
			kinds = append(kinds, e.Data.Kind)
		case "machine.state":
			kinds = append(kinds, e.Data.Kind+" "+e.Data.Fields["to"])
		}
	}
	if strings.Join(kinds, ", ") != strings.Join(want, ", ") {
		t.Errorf("central's timeline of %s:\n got %q\nwant %q", machine, kinds, want)
	}
}

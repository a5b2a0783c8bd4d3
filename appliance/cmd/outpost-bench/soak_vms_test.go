package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestAckTo checks that only a server's ACK to the VM's own MAC gives
// the checker an address.
func TestAckTo(t *testing.T) {
	vm := net.HardwareAddr{0x52, 0x54, 0x00, 0x5a, 0x00, 0x01}
	other := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x07}
	msg := func(typ dhcpv4.MessageType, mac net.HardwareAddr, reply bool) []byte {
		m, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(net.IPv4(198, 18, 1, 9)))
		if err != nil {
			t.Fatal(err)
		}
		if reply {
			m.OpCode = dhcpv4.OpcodeBootReply
		}
		return m.ToBytes()
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"an ACK to the VM", udpPacket(67, msg(dhcpv4.MessageTypeAck, vm, true)), "198.18.1.9"},
		{"an ACK to another MAC", udpPacket(67, msg(dhcpv4.MessageTypeAck, other, true)), ""},
		{"an OFFER", udpPacket(67, msg(dhcpv4.MessageTypeOffer, vm, true)), ""},
		{"the VM's REQUEST", udpPacket(68, msg(dhcpv4.MessageTypeRequest, vm, false)), ""},
		{"a request from port 67", udpPacket(67, msg(dhcpv4.MessageTypeAck, vm, false)), ""},
		{"a truncated packet", udpPacket(67, msg(dhcpv4.MessageTypeAck, vm, true))[:30], ""},
	} {
		got, ok := ackTo(tc.pkt, vm)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: ackTo gave %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

// TestBootedAs checks that the test OS's line of one provision is found
// by its hostname among those of others on the same console.
func TestBootedAs(t *testing.T) {
	console := []byte("SeaBIOS\r\nOUTPOST-TESTOS-BOOTED from disk\r\n" +
		"OUTPOST-TESTOS hostname=soak-vm0-p1 instance-id=soak-vm0 ip=198.18.1.9\r\n" +
		"[   40.1] random: crng init done\r\n" +
		"OUTPOST-TESTOS hostname=soak-vm0-p2 instance-id=soak-vm1 ip=198.18.1.9\r\n")
	if m := bootedAs(console, "soak-vm0-p1"); m == nil || m[2] != "soak-vm0" {
		t.Errorf("p1: %q", m)
	}
	if m := bootedAs(console, "soak-vm0-p2"); m == nil || m[2] != "soak-vm1" {
		t.Errorf("p2: %q", m)
	}
	for _, h := range []string{"soak-vm0-p3", "soak-vm0-p", "soak-vm0"} {
		if m := bootedAs(console, h); m != nil {
			t.Errorf("%s: found %q", h, m)
		}
	}
}

// TestLinkSoakVMImages checks the VMs' image records and files, and
// that a missing image is named.
func TestLinkSoakVMImages(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	sums := map[string]string{"testos.raw.gz": strings.Repeat("a", 64), "testos.raw.zst": strings.Repeat("b", 64)}
	for file, sum := range sums {
		if err := os.WriteFile(filepath.Join(src, file), []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, file+".sha256"), []byte(sum+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := linkSoakVMImages(src, &sim.Artifacts{Dir: dst})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(soakVMImages) {
		t.Fatalf("%d images, want %d", len(objs), len(soakVMImages))
	}
	for i, o := range objs {
		img := o.(*store.Image)
		file := soakVMImageFiles[soakVMImages[i]]
		if img.Name != soakVMImages[i] || img.File != file || img.Type != store.ImageOS ||
			img.Format != strings.TrimPrefix(file, "testos.") || img.SHA256 != sums[file] || img.Size != uint64(len(file)) {
			t.Errorf("image %d: %+v", i, img)
		}
		for _, f := range []string{file, file + ".sha256"} {
			if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
				t.Error(err)
			}
		}
	}
	os.Remove(filepath.Join(src, "testos.raw.zst"))
	if _, err := linkSoakVMImages(src, &sim.Artifacts{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "testos.raw.zst") {
		t.Errorf("without testos.raw.zst: %v, want an error naming it", err)
	}
}

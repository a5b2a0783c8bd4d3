package vmedia_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/vmedia"
)

// agentRequest is a request the stand-in appliance received.
type agentRequest struct{ from, auth, path string }

// TestVirtualMediaBoot: a machine on a subnet where nothing answers DHCP
// boots the installer from a vmedia ISO that the appliance's BMC path
// (bmc.Pool, over Redfish) has the lab's Redfish BMC fetch into its
// virtual CD drive, booting from CD once. The installer takes the static
// address on its command line and its agent reaches the appliance's URL
// on another subnet, through the gateway, with the credential the ISO
// carries.
func TestVirtualMediaBoot(t *testing.T) {
	lab.Require(t, "root", "qemu-system-x86_64", "xorriso", vmedia.DefaultIsolinux, vmedia.DefaultLdlinux)
	imgs := lab.BuildImages(t)
	ns := lab.NewNetns(t, "vmedia")
	ns.Bridge("br0", "198.18.9.1/24")  // the machine's subnet: no DHCP server
	ns.AddAddr("lo", "198.18.10.1/32") // the appliance, routed
	ns.Tap("tap0", "br0")

	requests := make(chan agentRequest, 16)
	appliance := serve(t, ns, "198.18.10.1:8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case requests <- agentRequest{from: r.RemoteAddr, auth: r.Header.Get("Authorization"), path: r.URL.Path}:
		default:
		}
		http.Error(w, "stand-in appliance", http.StatusServiceUnavailable)
	}))

	const mac = "52:54:00:b3:c9:01"
	token := "tok-" + random()
	iso := filepath.Join(t.TempDir(), "boot.iso")
	start := time.Now()
	err := vmedia.Build(t.Context(), vmedia.Config{Kernel: imgs.Kernel, Initrd: imgs.InstallerInitrd,
		Params:  [][2]string{{"outpost.url", "http://" + appliance}, {"outpost.machine", "vm1"}, {"outpost.mac", mac}, {"outpost.token", token}},
		Network: vmedia.Network{Address: netip.MustParsePrefix("198.18.9.10/24"), Gateway: netip.MustParseAddr("198.18.9.1")}}, iso)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(iso)
	t.Logf("ISO: %d bytes in %s", fi.Size(), time.Since(start).Round(time.Millisecond))
	secret := "/vmedia/" + random() + ".iso"
	media := serve(t, nil, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != secret {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, iso)
	}))

	args, serial := lab.VMCommand(t, lab.VMConfig{Tap: "tap0", MAC: mac, MemoryMB: 1024})
	rf := lab.StartRedfishBMC(t, lab.RedfishBMCConfig{VM: args, VMNetns: ns})
	c := bmc.Credentials{Address: rf.Addr, Username: rf.Username, Password: rf.Password, Driver: bmc.Redfish,
		Fingerprint: bmc.Fingerprint(rf.Certificate().Certificate[0])}
	p := bmc.New(bmc.Config{Timeout: 30 * time.Second})
	ctx := t.Context()
	for _, step := range []func() error{
		func() error { return p.InsertMedia(ctx, c, "http://"+media+secret) },
		func() error { return p.SetBootCD(ctx, c, bmc.BootOptions{}) },
		func() error { return p.PowerOn(ctx, c) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	boot := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		select {
		case r := <-requests:
			host, _, _ := net.SplitHostPort(r.from)
			t.Logf("after %s the appliance got %s from %s", time.Since(boot).Round(time.Second), r.path, host)
			if host != "198.18.9.10" || r.auth != "Bearer "+token {
				t.Fatalf("a request from %s with %q, want 198.18.9.10 with the ISO's credential", host, r.auth)
			}
			if b, _ := os.ReadFile(serial); !strings.Contains(string(b), "static address 198.18.9.10/24") {
				t.Errorf("the serial console does not say the installer took the static address:\n%s", tail(b))
			}
			if got := rf.BootOverride()["BootSourceOverrideEnabled"]; got != "Disabled" {
				t.Errorf("the CD once override after the boot: %q, want Disabled", got)
			}
			return
		case <-wctx.Done():
			b, _ := os.ReadFile(serial)
			t.Fatalf("no request reached the appliance: %v; serial console:\n%s", wctx.Err(), tail(b))
		}
	}
}

// serve serves h on addr, in ns (nil: the test's own namespace), until
// the test ends, and returns the address.
func serve(t *testing.T, ns *lab.Netns, addr string, h http.Handler) string {
	t.Helper()
	listen := net.Listen
	if ns != nil {
		listen = ns.Listen
	}
	ln, err := listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte) string {
	lines := strings.Split(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

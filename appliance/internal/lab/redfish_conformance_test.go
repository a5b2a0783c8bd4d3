package lab

import (
	"context"
	"crypto/tls"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testwait"
)

// sushyDir is where Debian's python3-sushy installs sushy.
const sushyDir = "/usr/lib/python3/dist-packages/sushy"

// rfConformance is a Redfish BMC driving a QEMU VM in a namespace of its
// own, and the two clients the project did not write that check it.
type rfConformance struct {
	t     *testing.T
	ns    *Netns
	b     *RedfishBMC
	sushy string // the script
	ca    string // the CA that issued the BMC's certificate, for sushy
}

func startRFConformance(t *testing.T) *rfConformance {
	t.Helper()
	Require(t, "root", "qemu-system-x86_64", "redfishtool", "/usr/bin/python3", sushyDir)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "../../../scripts/redfish-conformance-sushy.py")
	ns := NewNetns(t, "rfconf")
	ns.Bridge("br0", "198.18.7.1/24")
	ns.Tap("tap0", "br0")
	// A sparse disk: labsite.NewDisk's, which package lab cannot import.
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if f, err := os.Create(disk); err != nil || f.Truncate(16<<20) != nil || f.Close() != nil {
		t.Fatalf("disk: %v", err)
	}
	args, _ := VMCommand(t, VMConfig{Tap: "tap0", Disks: []string{disk}})
	// A certificate the site's BMC CA issued, which sushy verifies.
	ca := NewCA(t, "lab BMC CA")
	cert := ca.Issue("198.18.7.1")
	b := StartRedfishBMC(t, RedfishBMCConfig{Netns: ns, Addr: "198.18.7.1:0", VM: args, Certificate: &cert})
	return &rfConformance{t: t, ns: ns, b: b, sushy: script, ca: ca.WriteCert()}
}

// redfishtool runs redfishtool in the namespace; auth is "Session" or
// "Basic".
func (c *rfConformance) redfishtool(password, auth string, args ...string) (string, error) {
	c.t.Helper()
	all := append([]string{"-r", c.b.Addr, "-u", c.b.Username, "-p", password, "-S", "Always", "-A", auth}, args...)
	out, err := c.ns.CommandContext(c.t.Context(), "redfishtool", all...).CombinedOutput()
	c.t.Logf("redfishtool %s: %v\n%s", strings.Join(args, " "), err, out)
	return string(out), err
}

// step runs one step of the sushy script in the namespace and returns
// its "ok ..." line.
func (c *rfConformance) step(args ...string) string {
	c.t.Helper()
	all := append([]string{c.sushy, "https://" + c.b.Addr, c.b.Username}, args...)
	cmd := c.ns.CommandContext(c.t.Context(), "/usr/bin/python3", all...)
	cmd.Env = append(os.Environ(), "RF_PASSWORD="+c.b.Password, "RF_CA="+c.ca)
	out, err := cmd.CombinedOutput()
	c.t.Logf("sushy %s: %v\n%s", strings.Join(args, " "), err, out)
	if err != nil {
		c.t.Fatalf("sushy %s: %v", strings.Join(args, " "), err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ok ") {
			return l
		}
	}
	c.t.Fatalf("sushy %s printed no ok line", strings.Join(args, " "))
	return ""
}

// wantOrder waits for the running VM's boot order to be want.
func (c *rfConformance) wantOrder(what string, want ...string) {
	c.t.Helper()
	testwait.For(c.t, what+": boot order "+strings.Join(want, ","), 10*time.Second, func() bool {
		got, err := c.b.BootOrder(c.t.Context())
		return err == nil && slices.Equal(got, want)
	})
}

// TestRedfishConformance: redfishtool (DMTF's) and sushy (OpenStack
// Ironic's) drive the lab's Redfish BMC, which drives a QEMU VM through
// QMP: power on starts QEMU, a boot override is the VM's boot order (a
// Once override reverts once the boot it was for has begun), InsertMedia
// puts the fetched image in the VM's CD-ROM drive and EjectMedia takes
// it out, ForceOff ends QEMU. A wrong password and a bad boot target are
// refused and change nothing.
func TestRedfishConformance(t *testing.T) {
	c := startRFConformance(t)
	if out, err := c.redfishtool(c.b.Password, "Session", "root"); err != nil || !strings.Contains(out, `"RedfishVersion"`) {
		t.Fatalf("redfishtool root: %v", err)
	}
	if got := c.step("get"); got != "ok get power=Off target=None enabled=Disabled" {
		t.Fatalf("sushy get: %q", got)
	}
	if got := c.step("boot", "Cd", "Continuous"); got != "ok boot target=Cd enabled=Continuous" {
		t.Fatalf("sushy boot: %q", got)
	}
	if _, err := c.redfishtool("wrong-password", "Session", "Systems", "reset", "On"); err == nil || c.b.Power() != "Off" {
		t.Fatalf("a wrong password: %v, power %s; want a refusal and no change", err, c.b.Power())
	}
	if _, err := c.redfishtool(c.b.Password, "Session", "Systems", "reset", "On"); err != nil || c.b.Power() != "On" {
		t.Fatalf("redfishtool reset On: %v, power %s", err, c.b.Power())
	}
	c.wantOrder("the continuous override at power on", rfCD, rfNIC, "rf-disk0")

	if _, err := c.redfishtool(c.b.Password, "Basic", "Systems", "setBootOverride", "Once", "Pxe"); err != nil {
		t.Fatal(err)
	}
	c.wantOrder("a once override set while on", rfNIC, "rf-disk0", rfCD)
	c.step("boot", "Hdd", "Once")
	c.wantOrder("another once override set while on", "rf-disk0", rfNIC, rfCD)
	c.badBootTarget()
	c.step("reset", "ForceRestart")
	if got := c.step("get"); got != "ok get power=On target=None enabled=Disabled" {
		t.Errorf("after the once boot, sushy get: %q", got)
	}
	c.wantOrder("the default order after the once boot", rfNIC, "rf-disk0", rfCD)

	c.media()
	c.step("reset", "ForceOff")
	testwait.For(t, "QEMU to end after ForceOff", 30*time.Second, func() bool { return !c.b.vm.proc.Running() })
	if c.b.Power() != "Off" {
		t.Fatalf("after ForceOff: power %s", c.b.Power())
	}
	if got := c.step("get"); got != "ok get power=Off target=None enabled=Disabled" {
		t.Errorf("sushy get after ForceOff: %q", got)
	}
}

// badBootTarget: a boot target the BMC does not have is refused, naming
// it, and the override stays as it was.
func (c *rfConformance) badBootTarget() {
	c.t.Helper()
	before := c.b.BootOverride()
	req, _ := http.NewRequestWithContext(c.t.Context(), http.MethodPatch, "https://"+c.b.Addr+redfishSystem,
		strings.NewReader(`{"Boot":{"BootSourceOverrideTarget":"Floppy","BootSourceOverrideEnabled":"Once"}}`))
	req.SetBasicAuth(c.b.Username, c.b.Password)
	resp, err := c.ns.HTTPSClient(&tls.Config{InsecureSkipVerify: true}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !maps.Equal(before, c.b.BootOverride()) {
		c.t.Errorf("PATCH target Floppy: %s, override %v (was %v); want 400 and no change", resp.Status, c.b.BootOverride(), before)
	}
}

// media: sushy inserts an image served over HTTP in the namespace (the
// BMC fetches it; QEMU's CD-ROM then holds it), then ejects it.
func (c *rfConformance) media() {
	c.t.Helper()
	iso := filepath.Join(c.t.TempDir(), "boot.iso")
	if err := os.WriteFile(iso, []byte(strings.Repeat("outpost-cd", 4096)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	ln, err := c.ns.Listen("tcp", "198.18.7.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(iso))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/boot.iso"
	if got := c.step("insert", url); got != "ok insert image="+url+" inserted=True" {
		c.t.Fatalf("sushy insert: %q", got)
	}
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	file, err := c.b.CDFile(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); string(got) != strings.Repeat("outpost-cd", 4096) {
		c.t.Fatalf("QEMU's CD-ROM holds %q (%d bytes), not the image", file, len(got))
	}
	if got := c.step("eject"); got != "ok eject image= inserted=False" {
		c.t.Errorf("sushy eject: %q", got)
	}
	if file, err := c.b.CDFile(ctx); err != nil || file != "" {
		c.t.Errorf("QEMU's CD-ROM after eject: %q (%v), want empty", file, err)
	}
}

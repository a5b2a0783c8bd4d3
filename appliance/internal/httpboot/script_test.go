package httpboot

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// base is where the machine reached the appliance in these tests.
const base = "http://198.18.0.1:8080"

func installer() *store.Image {
	return &store.Image{
		Name: "installer", Type: store.ImageInstaller,
		Kernel: "installer/vmlinuz", Initrd: "installer/initrd.gz", Cmdline: "loglevel=4  ip=dhcp",
	}
}

func machine(id string, mac string, st store.MachineState) *store.Machine {
	return &store.Machine{
		ID: id, Hostname: id, Arch: "x86_64", State: st,
		Interfaces: []store.Interface{{MAC: mac, Boot: true}},
	}
}

func settings(unknown string) *store.Settings {
	return &store.Settings{SiteName: "lab", UnknownMachines: unknown}
}

// firstLine returns the script's echo line, which names the variant.
func variantOf(t *testing.T, body string) string {
	t.Helper()
	lines := strings.SplitN(body, "\n", 3)
	if len(lines) < 2 || lines[0] != "#!ipxe" || !strings.HasPrefix(lines[1], "echo Outpost: ") {
		t.Fatalf("script does not start with #!ipxe and an Outpost echo line:\n%s", body)
	}
	v, _, _ := strings.Cut(strings.TrimPrefix(lines[1], "echo Outpost: "), ":")
	return v
}

func checkScriptHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if got := res.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

// discoveryNonceRE matches a discovery credential; its signature and
// nonce, which are random, are replaced in the golden files.
var discoveryNonceRE = regexp.MustCompile(`(outpost\.token=d)[A-Za-z0-9_-]{43}\.([0-9a-f]{12}\.[0-9a-f]+\.[0-9]+)\.[0-9a-f]{16}`)

// TestGolden renders every variant and compares it with testdata/<name>.ipxe.
// go test ./appliance/internal/httpboot -update rewrites them.
func TestGolden(t *testing.T) {
	parallel(t)
	urlInstaller := &store.Image{
		Name: "installer", Type: store.ImageInstaller,
		Kernel: "http://mirror.example/hook/vmlinuz-x86_64", Initrd: "https://mirror.example/hook/initramfs-x86_64?v=2",
	}
	tests := map[string]struct {
		objs   []store.Object
		target string
	}{
		"install": {
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		},
		"install-deprovisioning": {
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateDeprovisioning)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=pcbios",
		},
		"install-url": {
			[]store.Object{urlInstaller, machine("m1", "52:54:00:12:34:56", store.StateProvisioning)},
			"/ipxe/52-54-00-12-34-56.ipxe",
		},
		"install-artifact": { // kernel and initrd are artifacts, served by digest
			[]store.Object{&store.Image{Name: "installer", Type: store.ImageInstaller,
				Kernel: "sha256:" + strings.Repeat("4b", 32), Initrd: "SHA256:" + strings.Repeat("1D", 32), Cmdline: "console=ttyS0"},
				machine("m1", "52:54:00:12:34:56", store.StateProvisioning)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		},
		"provisioned-bios": {
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioned)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=pcbios",
		},
		"provisioned-efi": {
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioned)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		},
		"provisioned-any": { // no platform: decided by the script at boot
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioned)},
			"/ipxe/52:54:00:12:34:56.ipxe",
		},
		"hold": {
			[]store.Object{installer(), machine("m1", "52:54:00:12:34:56", store.StateReady)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		},
		"unknown-discover": {
			[]store.Object{installer(), settings("discover"), activeLease("52:54:00:ab:cd:ef", "198.18.0.200")},
			"/ipxe/boot.ipxe?mac=52:54:00:ab:cd:ef&arch=x86_64&platform=pcbios",
		},
		"unknown-exit": {
			[]store.Object{installer(), settings("exit")},
			"/ipxe/boot.ipxe?mac=52:54:00:ab:cd:ef&arch=x86_64&platform=pcbios",
		},
		"error": { // no installer image
			[]store.Object{machine("m1", "52:54:00:12:34:56", store.StateProvisioning)},
			"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			res, got := f.get(t, base+tt.target)
			checkScriptHeaders(t, res)
			got = discoveryNonceRE.ReplaceAllString(got, "${1}<signature>.${2}.<nonce>")
			golden := filepath.Join("testdata", name+".ipxe")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs from %s (-want +got):\n%s", tt.target, golden, diff)
			}
		})
	}
}

// TestStateVariant checks which script each machine state gets.
func TestStateVariant(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		state store.MachineState
		want  string
	}{
		"discovered":     {store.StateDiscovered, variantHold},
		"ready":          {store.StateReady, variantHold},
		"provisioning":   {store.StateProvisioning, variantInstall},
		"provisioned":    {store.StateProvisioned, variantProvisioned},
		"failed":         {store.StateFailed, variantHold},
		"deprovisioning": {store.StateDeprovisioning, variantInstall},
	}
	f := newFixture(t, installer())
	var i int
	for name, tt := range tests {
		i++
		mac := "52:54:00:00:00:0" + string(rune('0'+i))
		f.put(t, machine(name, mac, tt.state))
		t.Run(name, func(t *testing.T) {
			res, body := f.get(t, base+"/ipxe/boot.ipxe?mac="+mac+"&platform=efi")
			checkScriptHeaders(t, res)
			if diff := cmp.Diff(tt.want, variantOf(t, body)); diff != "" {
				t.Errorf("state %s: variant (-want +got):\n%s\n%s", tt.state, diff, body)
			}
			if !strings.Contains(body, "echo Outpost: "+tt.want+": machine "+name+",") &&
				!strings.Contains(body, "echo Outpost: "+tt.want+": machine "+name+" ") {
				t.Errorf("script does not name machine %s:\n%s", name, body)
			}
		})
	}
}

// TestMACForms checks that the MAC is accepted in every common form, in
// the query and in the path.
func TestMACForms(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning))
	tests := map[string]string{
		"colons":          "/ipxe/boot.ipxe?mac=52:54:00:12:34:56",
		"upper case":      "/ipxe/boot.ipxe?mac=52:54:00:12:34:5E",
		"hyphens":         "/ipxe/boot.ipxe?mac=52-54-00-12-34-56",
		"bare hex":        "/ipxe/boot.ipxe?mac=525400123456",
		"cisco dots":      "/ipxe/boot.ipxe?mac=5254.0012.3456",
		"escaped colons":  "/ipxe/boot.ipxe?mac=52%3A54%3A00%3A12%3A34%3A56",
		"path colons":     "/ipxe/52:54:00:12:34:56.ipxe",
		"path hyphens":    "/ipxe/52-54-00-12-34-56.ipxe",
		"path bare hex":   "/ipxe/525400123456.ipxe",
		"path with query": "/ipxe/525400123456.ipxe?arch=x86_64&platform=efi",
	}
	f.put(t, machine("m2", "52:54:00:12:34:5e", store.StateProvisioning))
	for name, target := range tests {
		t.Run(name, func(t *testing.T) {
			res, body := f.get(t, base+target)
			checkScriptHeaders(t, res)
			if v := variantOf(t, body); v != variantInstall {
				t.Errorf("variant %q, want install:\n%s", v, body)
			}
			if !strings.Contains(body, "outpost.mac=52:54:00:12:34:5") {
				t.Errorf("script does not carry the canonical MAC:\n%s", body)
			}
		})
	}
}

// TestBadRequest checks that a bad parameter is a 400 naming it, and
// never a script.
func TestBadRequest(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning))
	tests := map[string]struct {
		target, host, param string
	}{
		"no mac":           {"/ipxe/boot.ipxe", "", "mac"},
		"empty mac":        {"/ipxe/boot.ipxe?mac=", "", "mac"},
		"garbage mac":      {"/ipxe/boot.ipxe?mac=zz", "", "mac"},
		"short mac":        {"/ipxe/boot.ipxe?mac=52:54:00:12:34", "", "mac"},
		"unexpanded":       {"/ipxe/boot.ipxe?mac=${net0/mac}", "", "mac"},
		"newline in mac":   {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56%0Aboot", "", "mac"},
		"space in mac":     {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56%20x", "", "mac"},
		"20-byte mac":      {"/ipxe/boot.ipxe?mac=00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "", "mac"},
		"bad path mac":     {"/ipxe/nope.ipxe", "", "mac"},
		"empty path mac":   {"/ipxe/.ipxe", "", "mac"},
		"bad platform":     {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&platform=efi%0Aboot", "", "platform"},
		"platform expands": {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&platform=${x}", "", "platform"},
		"long arch":        {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=" + strings.Repeat("x", 17), "", "arch"},
		"host with $":      {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56", "a$b", "Host"},
		"host with quote":  {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56", "a'b", "Host"},
		"empty host":       {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56", "-", "Host"},
		"bad port":         {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56", "198.18.0.1:99999", "Host"},
		"zone":             {"/ipxe/boot.ipxe?mac=52:54:00:12:34:56", "[fe80::1%25eth0]:80", "Host"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, base+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.host {
			case "":
			case "-":
				r.Host = ""
			default:
				r.Host = tt.host
			}
			res, body := do(t, f.handler, r)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400:\n%s", res.StatusCode, body)
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", res.Header.Get("Content-Type"))
			}
			if !strings.HasPrefix(body, "bad request: "+tt.param+": ") {
				t.Errorf("body %q does not name parameter %s", body, tt.param)
			}
			if strings.Contains(body, "#!ipxe") {
				t.Errorf("400 carries a script: %q", body)
			}
		})
	}
}

// TestBaseURL checks that the base URL is rebuilt from the Host header.
func TestBaseURL(t *testing.T) {
	parallel(t)
	tests := map[string]string{
		"198.18.0.1":         "http://198.18.0.1",
		"198.18.0.1:8080":    "http://198.18.0.1:8080",
		"198.18.0.1:080":     "http://198.18.0.1:80",
		"[2001:db8::1]:8080": "http://[2001:db8::1]:8080",
		"[2001:db8::1]":      "http://[2001:db8::1]",
		"[::ffff:1.2.3.4]":   "http://1.2.3.4",
		"Appliance.Lab:81":   "http://appliance.lab:81",
	}
	for host, want := range tests {
		got, err := baseURL(host)
		if err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", host, got, err, want)
		}
	}
}

// TestUnknownMAC checks the site policy for MACs it does not know.
func TestUnknownMAC(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		objs        []store.Object
		want        string
		wantContain string
	}{
		"default is discover": {[]store.Object{installer()}, variantDiscover, "outpost.mode=discover outpost.mac=52:54:00:ab:cd:ef"},
		"discover":            {[]store.Object{installer(), settings("discover")}, variantDiscover, "outpost.mode=discover"},
		"exit":                {[]store.Object{installer(), settings("exit")}, variantUnknown, "exit 1"},
		"exit, no installer":  {[]store.Object{settings("exit")}, variantUnknown, "exit 1"},
		"discover, no installer": {
			[]store.Object{settings("discover")}, variantError, "no installer image",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, append(tt.objs, machine("m1", "52:54:00:12:34:56", store.StateProvisioning))...)
			f.lease(t, "52:54:00:ab:cd:ef")
			res, body := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:ab:cd:ef&platform=efi")
			checkScriptHeaders(t, res)
			if diff := cmp.Diff(tt.want, variantOf(t, body)); diff != "" {
				t.Errorf("variant (-want +got):\n%s\n%s", diff, body)
			}
			if !strings.Contains(body, tt.wantContain) {
				t.Errorf("script lacks %q:\n%s", tt.wantContain, body)
			}
			if strings.Contains(body, "outpost.machine=") {
				t.Errorf("script for an unknown MAC names a machine:\n%s", body)
			}
		})
	}
}

// TestInstallerChoice checks which image boots as the installer.
func TestInstallerChoice(t *testing.T) {
	parallel(t)
	img := func(name, typ string) *store.Image {
		i := &store.Image{Name: name, Type: typ, Kernel: name + "/vmlinuz", Initrd: name + "/initrd"}
		if typ == store.ImageOS {
			i = &store.Image{Name: name, Type: typ, File: name + ".raw", Format: "raw"}
		}
		return i
	}
	arm64 := func(i *store.Image) *store.Image {
		i.Arch = store.ArchARM64
		return i
	}
	tests := map[string]struct {
		images []store.Object
		want   string // the kernel path, or the problem
		arch   string // iPXE's ${buildarch}: "" (none said), or arm64
	}{
		"named installer wins": {
			[]store.Object{img("a", "installer"), img("installer", "installer"), img("z", "installer")},
			"/artifacts/installer/vmlinuz", "",
		},
		"the only installer": {
			[]store.Object{img("hook", "installer"), img("debian", "os")},
			"/artifacts/hook/vmlinuz", "",
		},
		"an os image named installer does not count": {
			[]store.Object{img("installer", "os"), img("hook", "installer")},
			"/artifacts/hook/vmlinuz", "",
		},
		"none": {
			[]store.Object{img("debian", "os")},
			"error: no installer image\n", "",
		},
		"two, none named installer": {
			[]store.Object{img("a", "installer"), img("b", "installer")},
			"error: 2 installer images and none named installer", "",
		},
		"an arm64 installer is not an x86 one": {
			[]store.Object{arm64(img("installer", "installer")), img("hook", "installer")},
			"/artifacts/hook/vmlinuz", "x86_64",
		},
		"an arm64 machine boots the arm64 installer": {
			[]store.Object{img("installer", "installer"), arm64(img("a64", "installer"))},
			"/artifacts/a64/vmlinuz", "arm64",
		},
		"an arm64 machine, no arm64 installer": {
			[]store.Object{img("installer", "installer")},
			"error: no installer image for aarch64", "arm64",
		},
		"two arm64 installers, none named installer": {
			[]store.Object{img("installer", "installer"), arm64(img("a", "installer")), arm64(img("b", "installer"))},
			"error: 2 installer images for aarch64 and none named installer", "arm64",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, append(tt.images, machine("m1", "52:54:00:12:34:56", store.StateProvisioning))...)
			res, body := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch="+tt.arch)
			checkScriptHeaders(t, res)
			if !strings.Contains(body, tt.want) {
				t.Errorf("script lacks %q:\n%s", tt.want, body)
			}
		})
	}
}

// TestUnsafeInstaller checks that installer values iPXE could read as more
// than words make the error script rather than reach the kernel line.
func TestUnsafeInstaller(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		kernel, initrd, cmdline string
	}{
		"expansion in cmdline":   {"k", "i", "root=${root}"},
		"operator in cmdline":    {"k", "i", "quiet || shell"},
		"and in cmdline":         {"k", "i", "quiet && shell"},
		"semicolon in cmdline":   {"k", "i", "quiet ; shell"},
		"comment in cmdline":     {"k", "i", "quiet #x"},
		"quote in cmdline":       {"k", "i", `a="b c"`},
		"backslash in cmdline":   {"k", "i", `a\b`},
		"control in cmdline":     {"k", "i", "a\x1bb"},
		"kernel escapes":         {"../vmlinuz", "i", ""},
		"absolute kernel":        {"/boot/vmlinuz", "i", ""},
		"kernel with space":      {"my kernel", "i", ""},
		"kernel url with $":      {"http://x/${y}", "i", ""},
		"kernel url with quote":  {"http://x/a'b", "i", ""},
		"ftp kernel":             {"ftp://x/vmlinuz", "i", ""},
		"initrd url no name":     {"k", "http://x/", ""},
		"initrd name with colon": {"k", "http://x/a:b", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			img := &store.Image{Name: "installer", Type: store.ImageInstaller, Kernel: tt.kernel, Initrd: tt.initrd, Cmdline: tt.cmdline}
			f := newFixture(t, img, machine("m1", "52:54:00:12:34:56", store.StateProvisioning))
			res, body := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56")
			checkScriptHeaders(t, res)
			if v := variantOf(t, body); v != variantError {
				t.Fatalf("variant %q, want error:\n%s", v, body)
			}
			if !strings.Contains(body, "echo Outpost: error: installer image installer has ") {
				t.Errorf("error script does not say which image:\n%s", body)
			}
			if strings.Contains(body, "\nkernel ") {
				t.Errorf("error script has a kernel line:\n%s", body)
			}
		})
	}
}

// TestCheckRefusesUnsafe checks the last guard directly: a value that
// slipped past everything else is refused.
func TestCheckRefusesUnsafe(t *testing.T) {
	parallel(t)
	ok := func() *scriptData {
		br := bootRequest{mac: "52:54:00:12:34:56", base: base, platform: "efi"}
		d := newScript(br)
		d.Variant, d.Machine, d.State = variantInstall, "m1", "provisioning"
		if p := d.setInstaller(installer()); p != "" {
			t.Fatal(p)
		}
		return d
	}
	if err := ok().check(); err != nil {
		t.Fatalf("check() on a good script: %v", err)
	}
	tests := map[string]func(d *scriptData){
		"machine":  func(d *scriptData) { d.Machine = "m1\nboot" },
		"state":    func(d *scriptData) { d.State = "${x}" },
		"mac":      func(d *scriptData) { d.MAC = "a b" },
		"base":     func(d *scriptData) { d.Base = "http://a'b" },
		"kernel":   func(d *scriptData) { d.Kernel = "http://x/${y}" },
		"cmdline":  func(d *scriptData) { d.Cmdline = "a || b" },
		"problem":  func(d *scriptData) { d.Problem = "${evil}" },
		"platform": func(d *scriptData) { d.Platform = "EFI X" },
		"retry":    func(d *scriptData) { d.Retry = "http://x/'" },
	}
	for name, spoil := range tests {
		d := ok()
		spoil(d)
		if err := d.check(); err == nil {
			t.Errorf("%s: check() accepted %+v", name, d)
		}
	}
}

// TestScriptStoreClosed checks that a store failure gives the machine a
// script that retries, not an HTTP error that stops iPXE.
func TestScriptStoreClosed(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning))
	f.db.Close()
	res, body := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56")
	checkScriptHeaders(t, res)
	if v := variantOf(t, body); v != variantError {
		t.Errorf("variant %q, want error:\n%s", v, body)
	}
	if !strings.Contains(body, "chain "+base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&") {
		t.Errorf("error script does not fetch itself again:\n%s", body)
	}
}

// TestInstallNeedsActiveWorkflow: the installer boots for a workflow. A
// machine set to provisioning by hand, whose workflow has ended, gets the
// error script saying so, and no credential.
func TestInstallNeedsActiveWorkflow(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning))
	apptest.Apply(t, f.db, site.AdvanceWorkflow, site.Advance{Workflow: "wf-m1", Kind: site.AdvanceCancel, Reason: "test", Time: t0})
	m := machine("m1", "52:54:00:12:34:56", store.StateProvisioning) // an operator's edit
	m.Workflow = "wf-m1"
	apptest.Put(t, f.db, t0, m)
	_, body := f.get(t, base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=pcbios")
	if variantOf(t, body) != variantError || !strings.Contains(body, "has no active workflow") || strings.Contains(body, "outpost.token") {
		t.Errorf("script for a provisioning machine without an active workflow:\n%s", body)
	}
}

package httpboot

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestGRUBGenerate renders GRUB's per-machine configuration, as the TFTP
// server asks for it, for each kind of machine.
func TestGRUBGenerate(t *testing.T) {
	parallel(t)
	const mac = "52:54:00:ab:cd:ef"
	local := netip.MustParseAddr("198.18.0.1")
	sha := &store.Image{Name: "installer", Type: store.ImageInstaller,
		Kernel: "sha256:" + strings.Repeat("ab", 32), Initrd: "installer/initrd.gz"}
	tests := map[string]struct {
		objs    []store.Object
		want    []string // lines the configuration holds
		notWant []string
	}{
		"unknown, discover": {
			objs: []store.Object{installer()},
			want: []string{
				"echo 'Outpost: discover: MAC " + mac,
				"linux '/installer/vmlinuz' 'console=tty0' 'console=ttyS0,115200' 'outpost.url=http://198.18.0.1:8080' 'outpost.mode=discover' 'outpost.mac=" + mac + "' 'outpost.token=d",
				"' 'loglevel=4' 'ip=dhcp'\n",
				"initrd '/installer/initrd.gz'\nboot\n",
				"configfile '/grub/" + mac + ".cfg'",
			},
		},
		"unknown, exit": {
			objs:    []store.Object{installer(), settings("exit")},
			want:    []string{"echo 'Outpost: unknown: MAC " + mac, "exit 1"},
			notWant: []string{"linux ", "outpost.token"},
		},
		"provisioned": {
			objs:    []store.Object{installer(), machine("m1", mac, store.StateProvisioned)},
			want:    []string{"echo 'Outpost: provisioned: machine m1", "search --no-floppy --file --set=root /EFI/debian/grub.cfg", "configfile /EFI/debian/grub.cfg", "exit 1"},
			notWant: []string{"linux "},
		},
		"ready": {
			objs:    []store.Object{installer(), machine("m1", mac, store.StateReady)},
			want:    []string{"echo 'Outpost: hold: machine m1 is ready", "exit 1"},
			notWant: []string{"linux "},
		},
		"installer not in the artifact directory": {
			objs:    []store.Object{sha},
			want:    []string{"echo 'Outpost: error: installer image installer kernel: is not a file of the artifact directory, which GRUB fetches over TFTP'", "configfile '/grub/" + mac + ".cfg'"},
			notWant: []string{"linux ", "outpost.token"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			client := netip.MustParseAddr(f.lease(t, mac))
			data, ok, err := f.srv.GRUB(8080).Generate(t.Context(), client, local, "grub/"+mac+".cfg")
			if err != nil || !ok {
				t.Fatalf("Generate = %v, %v", ok, err)
			}
			cfg := string(data)
			for _, w := range tt.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("configuration lacks %q:\n%s", w, cfg)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(cfg, w) {
					t.Errorf("configuration has %q:\n%s", w, cfg)
				}
			}
		})
	}
}

// TestGRUBGenerateARM64 renders the configuration an arm64 GRUB asks for
// (grub/arm64-efi/<MAC>.cfg): the arm64 installer, with its own kernel
// arguments, and the same name to read again.
func TestGRUBGenerateARM64(t *testing.T) {
	parallel(t)
	const mac = "52:54:00:ab:cd:ef"
	a64 := &store.Image{Name: "installer-arm64", Type: store.ImageInstaller, Arch: store.ArchARM64,
		Kernel: "vmlinuz-arm64", Initrd: "installer-arm64.initrd", Cmdline: "console=ttyAMA0,115200"}
	f := newFixture(t, installer(), a64, machine("m1", mac, store.StateProvisioning))
	client := netip.MustParseAddr(f.lease(t, mac))
	for name, tt := range map[string]struct {
		file          string
		want, notWant []string
	}{
		"arm64": {"grub/arm64-efi/" + mac + ".cfg",
			[]string{"booting installer image installer-arm64", "linux '/vmlinuz-arm64' ", " 'console=ttyAMA0,115200'\n",
				"initrd '/installer-arm64.initrd'", "'/grub/arm64-efi/" + mac + ".cfg'"},
			[]string{"'/installer/vmlinuz'"}},
		"x86_64": {"grub/" + mac + ".cfg",
			[]string{"booting installer image installer ", "linux '/installer/vmlinuz' ", "'/grub/" + mac + ".cfg'"},
			[]string{"arm64"}},
	} {
		t.Run(name, func(t *testing.T) {
			data, ok, err := f.srv.GRUB(8080).Generate(t.Context(), client, netip.MustParseAddr("198.18.0.1"), tt.file)
			if err != nil || !ok {
				t.Fatalf("Generate = %v, %v", ok, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("configuration lacks %q:\n%s", w, data)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(string(data), w) {
					t.Errorf("configuration has %q:\n%s", w, data)
				}
			}
		})
	}
}

// TestGRUBGenerateNames checks which names the generator makes: only
// grub/<MAC>.cfg and grub/arm64-efi/<MAC>.cfg; a bad MAC there is refused, other names are left to the
// artifact directory.
func TestGRUBGenerateNames(t *testing.T) {
	parallel(t)
	f := newFixture(t, installer())
	g := f.srv.GRUB(8080)
	client, local := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.1")
	tests := map[string]struct {
		name    string
		ok, err bool
	}{
		"static grub.cfg":   {name: "grub/grub.cfg"},
		"module list":       {name: "grub/x86_64-efi/command.lst"},
		"shim":              {name: "shimx64.efi"},
		"mac without .cfg":  {name: "grub/52:54:00:ab:cd:ef"},
		"mac config":        {name: "grub/52:54:00:ab:cd:ef.cfg", ok: true},
		"arm64 mac config":  {name: "grub/arm64-efi/52:54:00:ab:cd:ef.cfg", ok: true},
		"arm64 module list": {name: "grub/arm64-efi/command.lst"},
		"deeper":            {name: "grub/arm64-efi/x/52:54:00:ab:cd:ef.cfg"},
		"hyphenated mac":    {name: "grub/52-54-00-ab-cd-ef.cfg", ok: true},
		"not a mac":         {name: "grub/nonsense.cfg", err: true},
		"quote in the name": {name: "grub/52:54:00:ab:cd:ef'.cfg", err: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, ok, err := g.Generate(t.Context(), client, local, tt.name)
			if ok != tt.ok || (err != nil) != tt.err {
				t.Errorf("Generate(%q) = %v, %v; want ok %v, error %v", tt.name, ok, err, tt.ok, tt.err)
			}
		})
	}
}

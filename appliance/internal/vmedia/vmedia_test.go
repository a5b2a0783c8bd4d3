package vmedia

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

func TestCmdline(t *testing.T) {
	params := [][2]string{{"outpost.url", "http://198.18.10.1:8080"}, {"outpost.token", "tok-1"}}
	addr := netip.MustParsePrefix("198.18.9.10/24")
	tests := map[string]struct {
		cfg     Config
		want    string
		wantErr string
	}{
		"full": {
			cfg: Config{Params: params, Network: Network{Address: addr, Gateway: netip.MustParseAddr("198.18.9.1"),
				DNS: []netip.Addr{netip.MustParseAddr("198.18.10.53"), netip.MustParseAddr("198.18.10.54")}, Domain: "lab.example"}},
			want: "console=tty0 console=ttyS0,115200 outpost.url=http://198.18.10.1:8080 outpost.token=tok-1 " +
				"outpost.ip=198.18.9.10/24 outpost.gateway=198.18.9.1 outpost.dns=198.18.10.53,198.18.10.54 outpost.domain=lab.example",
		},
		"address only": {
			cfg:  Config{Network: Network{Address: addr}},
			want: "console=tty0 console=ttyS0,115200 outpost.ip=198.18.9.10/24",
		},
		"no address":          {cfg: Config{Params: params}, wantErr: "Network.Address"},
		"IPv6 address":        {cfg: Config{Network: Network{Address: netip.MustParsePrefix("2001:db8::1/64")}}, wantErr: "Network.Address"},
		"gateway off subnet":  {cfg: Config{Network: Network{Address: addr, Gateway: netip.MustParseAddr("198.18.10.1")}}, wantErr: "Network.Gateway 198.18.10.1"},
		"space in a value":    {cfg: Config{Params: [][2]string{{"outpost.token", "a b"}}, Network: Network{Address: addr}}, wantErr: `"outpost.token"`},
		"quote in a value":    {cfg: Config{Params: [][2]string{{"outpost.token", `a"b`}}, Network: Network{Address: addr}}, wantErr: `"outpost.token"`},
		"newline in a domain": {cfg: Config{Network: Network{Address: addr, Domain: "a\nAPPEND x"}}, wantErr: `"outpost.domain"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Cmdline(tc.cfg)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want ErrInvalid naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestOverlayCpio: GNU cpio reads the overlay archive: one executable
// file, the udhcpc script.
func TestOverlayCpio(t *testing.T) {
	lab.Require(t, "cpio")
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(string(overlay()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(dir, udhcpcPath))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("%s: %v %v, want mode 0755", udhcpcPath, fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, udhcpcPath)); string(b) != udhcpcScript {
		t.Errorf("%s holds %q", udhcpcPath, b)
	}
}

// TestBuildRefusesBadInput: a bad configuration makes no file.
func TestBuildRefusesBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.iso")
	err := Build(t.Context(), Config{Kernel: "/nonexistent/vmlinuz", Initrd: "/nonexistent/initrd",
		Network: Network{Address: netip.MustParsePrefix("198.18.9.10/24")}}, out)
	if err == nil || !strings.Contains(err.Error(), "Kernel") {
		t.Fatalf("err %v, want one naming the Kernel", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a refusal", out)
	}
}

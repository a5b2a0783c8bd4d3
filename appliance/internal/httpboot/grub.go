package httpboot

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"net/netip"
	"strings"
	"text/template"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// GRUB network boot, for machines whose firmware enforces Secure Boot and
// so runs no iPXE. The DHCP server names Debian's signed shim
// (shimx64.efi) as such a machine's boot file; shim fetches the signed
// GRUB network image beside it (grubx64.efi, from grubnetx64.efi.signed),
// whose prefix is /grub on the TFTP server, so it reads grub/grub.cfg, a
// static file of the artifact directory (images/build.sh) that sources
// grub/<MAC>.cfg: the per-machine configuration GRUB serves here, made on
// the TFTP server's request (GRUB.Generate) from the same plan as the
// machine's iPXE script. GRUB 2.06 cannot fetch over HTTP from a port
// other than 80, so the kernel and the initrd come over TFTP too, and must
// be files of the artifact directory.

//go:embed templates/grub/*.grub
var grubFS embed.FS

var grubTemplates = template.Must(template.New("").Option("missingkey=error").
	Funcs(template.FuncMap{"q": grubQuote}).ParseFS(grubFS, "templates/grub/*.grub"))

// grubQuote makes s one GRUB word taken literally: single-quoted. Every
// value rendered is checked (scriptData.check) to hold no quote.
func grubQuote(s string) (string, error) {
	if strings.ContainsAny(s, "'\n") {
		return "", fmt.Errorf("httpboot: %q cannot be quoted for GRUB", s)
	}
	return "'" + s + "'", nil
}

// grubDir is where GRUB's prefix points on the TFTP server.
const grubDir = "grub/"

// GRUB makes GRUB's per-machine configurations for the TFTP server (it
// implements tftp.Generator).
type GRUB struct {
	s    *Server
	port int
}

// GRUB returns the generator of GRUB configurations whose agents reach
// the appliance on the boot HTTP port httpPort of the address the
// machine sent its TFTP request to.
func (s *Server) GRUB(httpPort int) *GRUB { return &GRUB{s: s, port: httpPort} }

// Generate makes grub/<MAC>.cfg for the machine at client; it makes no
// other file.
func (g *GRUB) Generate(ctx context.Context, client, local netip.Addr, name string) ([]byte, bool, error) {
	rawMAC, arch, ok := grubRequest(name)
	if !ok {
		return nil, false, nil
	}
	mac, err := parseMAC(rawMAC)
	if err != nil {
		return nil, false, err
	}
	if !local.IsValid() || !client.IsValid() {
		return nil, false, fmt.Errorf("httpboot: grub config for %s: addresses unknown", mac)
	}
	br := bootRequest{mac: mac, base: "http://" + netip.AddrPortFrom(local, uint16(g.port)).String(),
		arch: arch, platform: "efi", addr: client}
	cfg, err := g.s.grubConfig(ctx, br)
	return cfg, err == nil, err
}

// grubArm64Dir is where an arm64 GRUB asks for its machine's
// configuration: grub/grub.cfg (images/build.sh) sends it there by
// $grub_cpu, so the name tells the machine is arm64.
const grubArm64Dir = grubDir + "arm64-efi/"

// grubRequest splits a request for a machine's GRUB configuration,
// grub/<MAC>.cfg (x86_64) or grub/arm64-efi/<MAC>.cfg (arm64), into the MAC
// as requested and the architecture the path reveals; ok is false for
// any other name, such as the static grub.cfg files.
func grubRequest(name string) (rawMAC, arch string, ok bool) {
	rest, ok := strings.CutPrefix(name, grubArm64Dir)
	arch = "arm64"
	if !ok {
		if rest, ok = strings.CutPrefix(name, grubDir); !ok {
			return "", "", false
		}
		arch = "x86_64"
	}
	rawMAC, ok = strings.CutSuffix(rest, ".cfg")
	if !ok || rawMAC == "grub" || strings.Contains(rawMAC, "/") {
		return "", "", false
	}
	return rawMAC, arch, true
}

// grubConfig renders the GRUB configuration for br.
func (s *Server) grubConfig(ctx context.Context, br bootRequest) ([]byte, error) {
	log := s.log.With("mac", br.mac, "remote", br.addr.String())
	d, err := s.plan(ctx, br, log)
	if err != nil {
		log.Error("grub config", "err", err)
		d = errorScript(br, "the appliance could not read its store, see its log")
	}
	if err := d.setGRUB(); err != nil {
		d.Variant, d.Problem, d.Token = variantError, err.Error(), ""
	}
	if err := d.check(); err != nil {
		log.Error("grub config: unsafe value", "variant", d.Variant, "err", err)
		d = errorScript(br, "the appliance refused to render an unsafe script, see its log")
		d.setGRUB()
	}
	var buf bytes.Buffer
	if err := grubTemplates.ExecuteTemplate(&buf, d.Variant+".grub", d); err != nil {
		return nil, fmt.Errorf("httpboot: render grub config %s: %w", d.Variant, err)
	}
	log.Info("grub config", "variant", d.Variant, "machine", d.Machine, "state", d.State,
		"image", d.Image, "problem", d.Problem)
	return buf.Bytes(), nil
}

// setGRUB fills in what GRUB's templates need beyond the iPXE script's
// data: the kernel and initrd as paths on the TFTP server, the extra
// kernel arguments as words, and the configuration to read again.
func (d *scriptData) setGRUB() error {
	d.GRUBRetry = "/" + grubDir + d.MAC + ".cfg"
	if d.arch == store.ArchARM64 {
		d.GRUBRetry = "/" + grubArm64Dir + d.MAC + ".cfg"
	}
	d.CmdlineArgs = strings.Fields(d.Cmdline)
	if d.Variant != variantInstall && d.Variant != variantDiscover {
		return nil
	}
	var err error
	if d.GRUBKernel, err = tftpPath(d.Base, d.Kernel); err != nil {
		return fmt.Errorf("installer image %s kernel: %w", safeName(d.Image), err)
	}
	if d.GRUBInitrd, err = tftpPath(d.Base, d.Initrd); err != nil {
		return fmt.Errorf("installer image %s initrd: %w", safeName(d.Image), err)
	}
	return nil
}

// tftpPath returns the TFTP path of the artifact iPXE fetches at u, which
// must be a file of the artifact directory: GRUB fetches over TFTP only.
func tftpPath(base, u string) (string, error) {
	rel, ok := strings.CutPrefix(u, base+"/artifacts/")
	if !ok || strings.HasPrefix(rel, "sha256/") || !fileRE.MatchString(rel) {
		return "", fmt.Errorf("is not a file of the artifact directory, which GRUB fetches over TFTP")
	}
	return "/" + rel, nil
}

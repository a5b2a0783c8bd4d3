package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// redfishVM is the machine a Redfish BMC with a VM owns, as a real BMC
// owns its host: QEMU, started on power on (in the BMC's namespace) with
// a QMP socket and a CD-ROM drive of the BMC's, killed on power off.
//
// The boot override is QEMU's boot order: every boot device has an id,
// and the BMC gives them boot indexes, the override's target first, then
// the NIC, the disks and the CD-ROM in that order. At power on they are
// on QEMU's command line; on a running VM they are set through QMP
// (qom-set of each device's bootindex), which QEMU hands the firmware
// (fw_cfg bootorder) at the next reset, the guest's own reboots
// included. A Once override reverts to the default order as soon as the
// boot it was for has begun (a boot the BMC makes: power on, restart,
// cycle; a reboot of the guest's own while a Once override is set boots
// its target without spending it). Pxe and UefiHttp both put the NIC
// first: whether its boot is PXE or HTTP is up to its firmware (iPXE's
// option ROM fetches over HTTP); OVMF's own HTTP boot client is not
// chosen. GracefulShutdown is QMP's system_powerdown, an ACPI power
// button press the guest may ignore.
type redfishVM struct {
	t     T
	netns *Netns
	name  string
	args  []string // QEMU's command line, with ids and no boot indexes
	order []string // device ids, in the default boot order
	nic   string   // the NIC's id ("" if none)
	disks []string // the disks' ids
	dir   string   // holds the QMP socket

	mu    sync.Mutex
	proc  *Process
	qmp   *QMP
	media string // the CD-ROM's image file; "" when empty
}

// Device ids the BMC gives QEMU's boot devices.
const (
	rfNIC     = "rf-nic"
	rfCD      = "rf-cd"
	rfCDDrive = "rf-cd-drive"
)

var bootIndexRE = regexp.MustCompile(`,bootindex=\d+`)

// newRedfishVM prepares args (VMCommand's, or any QEMU command line
// whose boot devices carry bootindex) for a BMC to start.
func newRedfishVM(t T, netns *Netns, args []string) (*redfishVM, error) {
	if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "qemu-system") {
		return nil, fmt.Errorf("lab: Redfish BMC: VM is not a QEMU command line: %q", args)
	}
	// A Unix socket's path has at most 107 bytes: not under the test's
	// temporary directory, which is named after the test.
	dir, err := os.MkdirTemp("", "rfbmc")
	if err != nil {
		return nil, fmt.Errorf("lab: Redfish BMC: %w", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	v := &redfishVM{t: t, netns: netns, name: "vm", dir: dir}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if i > 0 && args[i-1] == "-device" && bootIndexRE.MatchString(a) {
			a = bootIndexRE.ReplaceAllString(a, "")
			id := fmt.Sprintf("rf-disk%d", len(v.disks))
			if strings.Contains(a, "netdev=") && v.nic == "" {
				id = rfNIC
				v.nic = id
			} else {
				v.disks = append(v.disks, id)
			}
			a += ",id=" + id
		}
		if i > 0 && args[i-1] == "-name" {
			v.name = a
		}
		v.args = append(v.args, a)
	}
	if v.nic != "" {
		v.order = append(v.order, v.nic)
	}
	v.order = append(append(v.order, v.disks...), rfCD)
	return v, nil
}

// bootOrder is the device ids in boot order for the override target
// ("None" or "" for the default order).
func (v *redfishVM) bootOrder(target string) []string {
	first := ""
	switch target {
	case "Pxe", "UefiHttp":
		first = v.nic
	case "Cd":
		first = rfCD
	case "Hdd":
		if len(v.disks) > 0 {
			first = v.disks[0]
		}
	}
	if first == "" {
		return v.order
	}
	out := []string{first}
	for _, id := range v.order {
		if id != first {
			out = append(out, id)
		}
	}
	return out
}

// commandLine is QEMU's command line booting target first.
func (v *redfishVM) commandLine(target string) []string {
	index := map[string]int{}
	for i, id := range v.bootOrder(target) {
		index[id] = i + 1
	}
	args := make([]string, 0, len(v.args)+8)
	for i, a := range v.args {
		if i > 0 && v.args[i-1] == "-device" {
			for id, n := range index {
				if strings.HasSuffix(a, ",id="+id) {
					a += fmt.Sprintf(",bootindex=%d", n)
				}
			}
		}
		args = append(args, a)
	}
	drive := "if=none,id=" + rfCDDrive + ",media=cdrom"
	if v.media != "" {
		drive += ",format=raw,file=" + strings.ReplaceAll(v.media, ",", ",,")
	}
	return append(args,
		"-drive", drive,
		"-device", fmt.Sprintf("ide-cd,drive=%s,id=%s,bootindex=%d", rfCDDrive, rfCD, index[rfCD]),
		"-qmp", "unix:"+filepath.Join(v.dir, "qmp.sock")+",server=on,wait=off")
}

// running reports whether QEMU runs; v.mu is held.
func (v *redfishVM) running() bool { return v.proc != nil && v.proc.Running() }

// powerState is "On" while QEMU runs, "Off" otherwise.
func (v *redfishVM) powerState() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return "Off"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := v.qmp.Status(ctx); err == nil && st == "shutdown" {
		return "Off"
	}
	return "On"
}

// start starts QEMU booting target first and connects to its QMP; v.mu
// is held.
func (v *redfishVM) start(ctx context.Context, target string) error {
	os.Remove(filepath.Join(v.dir, "qmp.sock"))
	v.proc = startProcess(v.t, ProcessConfig{Name: v.name, Netns: v.netns, Args: v.commandLine(target)}, false)
	v.proc.outLabel = "serial console"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, filepath.Join(v.dir, "qmp.sock"))
	if err != nil {
		v.proc.Kill()
		return fmt.Errorf("%w; QEMU: %s", err, tail(v.proc.Stderr, 5))
	}
	v.qmp = q
	return nil
}

// stop kills QEMU; v.mu is held.
func (v *redfishVM) stop() {
	if v.qmp != nil {
		v.qmp.Close()
		v.qmp = nil
	}
	if v.proc != nil {
		v.proc.Kill()
	}
}

// setBootOrder gives the running VM's devices the boot order for target,
// for the firmware to read at the next reset; v.mu is held.
func (v *redfishVM) setBootOrder(ctx context.Context, target string) error {
	order := v.bootOrder(target)
	// An index two devices hold at once is refused: clear them all first.
	for _, id := range order {
		if err := v.qomSetBootIndex(ctx, id, -1); err != nil {
			return err
		}
	}
	for i, id := range order {
		if err := v.qomSetBootIndex(ctx, id, i+1); err != nil {
			return err
		}
	}
	return nil
}

func (v *redfishVM) qomSetBootIndex(ctx context.Context, id string, n int) error {
	_, err := v.qmp.Execute(ctx, "qom-set", map[string]any{"path": "/machine/peripheral/" + id, "property": "bootindex", "value": n})
	return err
}

// BootIndex is a device's boot index in the running VM, as QEMU has it
// (qom-get): 1 boots first, -1 not at all.
func (v *redfishVM) bootIndex(ctx context.Context, id string) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return 0, fmt.Errorf("lab: Redfish BMC: the VM is off")
	}
	raw, err := v.qmp.Execute(ctx, "qom-get", map[string]any{"path": "/machine/peripheral/" + id, "property": "bootindex"})
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(string(raw), &n)
	return n, err
}

// reset does a ComputerSystem.Reset to the VM, booting target first
// should it boot; booted reports whether it began a boot, which spends
// a Once override (once), whose order it then reverts.
func (v *redfishVM) reset(ctx context.Context, typ, target string, once bool) (booted bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	on := v.running()
	switch {
	case typ == "ForceOff":
		v.stop()
		return false, nil
	case typ == "GracefulShutdown":
		if on {
			_, err = v.qmp.Execute(ctx, "system_powerdown", nil)
		}
		return false, err
	case (typ == "On" || typ == "ForceOn") && on:
		return false, nil
	case typ == "ForceRestart" && on:
		if err := v.setBootOrder(ctx, target); err != nil {
			return false, err
		}
		if _, err := v.qmp.Execute(ctx, "system_reset", nil); err != nil {
			return false, err
		}
	default: // On or ForceOn when off, ForceRestart when off, PowerCycle
		v.stop()
		if err := v.start(ctx, target); err != nil {
			return false, err
		}
	}
	if once && target != "" && target != "None" {
		return true, v.setBootOrder(ctx, "None")
	}
	return true, nil
}

// setBoot gives a running VM the boot order of a new override, for its
// next reset; an off VM gets it at power on.
func (v *redfishVM) setBoot(ctx context.Context, target string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return nil
	}
	return v.setBootOrder(ctx, target)
}

// insert puts the image file in the CD-ROM drive (blockdev-change-medium
// on a running VM; at power on otherwise).
func (v *redfishVM) insert(ctx context.Context, file string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running() {
		if _, err := v.qmp.Execute(ctx, "blockdev-change-medium", map[string]any{
			"id": rfCD, "filename": file, "format": "raw", "read-only-mode": "read-only"}); err != nil {
			return err
		}
	}
	v.media = file
	return nil
}

// eject empties the CD-ROM drive.
func (v *redfishVM) eject(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running() {
		if _, err := v.qmp.Execute(ctx, "eject", map[string]any{"id": rfCD, "force": true}); err != nil {
			return err
		}
	}
	v.media = ""
	return nil
}

// CDFile is the file in the running VM's CD-ROM drive as QEMU has it
// (query-block), "" when the drive is empty. It fails without a running
// VM.
func (b *RedfishBMC) CDFile(ctx context.Context) (string, error) {
	if b.vm == nil {
		return "", fmt.Errorf("lab: Redfish BMC: no VM")
	}
	v := b.vm
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return "", fmt.Errorf("lab: Redfish BMC: the VM is off")
	}
	raw, err := v.qmp.Execute(ctx, "query-block", nil)
	if err != nil {
		return "", err
	}
	var blocks []struct {
		Qdev     string `json:"qdev"`
		Inserted *struct {
			File string `json:"file"`
		} `json:"inserted"`
	}
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", fmt.Errorf("lab: QMP query-block: %w", err)
	}
	for _, bl := range blocks {
		if bl.Qdev == rfCD || strings.HasPrefix(bl.Qdev, "/machine/peripheral/"+rfCD+"/") {
			if bl.Inserted == nil {
				return "", nil
			}
			return bl.Inserted.File, nil
		}
	}
	return "", fmt.Errorf("lab: QMP query-block: no drive %s", rfCD)
}

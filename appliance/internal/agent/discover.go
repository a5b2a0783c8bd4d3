package agent

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
)

// discover reports the machine's hardware until the appliance
// acknowledges it (or refuses it for good).
func (a *Agent) discover(ctx context.Context, c *client, p Params) {
	hw := CollectHardware(a.cfg.Root, p.MAC)
	a.log.Info("hardware found", "mac", hw.MAC, "vendor", hw.Vendor, "product", hw.Product, "serial", hw.Serial,
		"cpus", hw.CPUs, "memory", sizeStr(int64(hw.MemoryBytes)), "disks", len(hw.Disks), "nics", len(hw.NICs))
	var ack agentproto.HardwareAck
	err := c.call(ctx, nil, http.MethodPost, agentproto.PathHardware, hw, &ack)
	switch {
	case err == nil:
		a.log.Info("hardware reported", "machine", ack.MachineID, "created", ack.Created)
	case ctx.Err() == nil:
		a.log.Error("appliance refused the hardware report", "err", err)
	}
}

// CollectHardware describes the machine from the proc and sys file
// systems under root. mac is the MAC the machine booted from; if it is
// "", the first NIC's.
func CollectHardware(root, mac string) agentproto.Hardware {
	hw := agentproto.Hardware{
		MAC:     strings.ToLower(mac),
		Vendor:  readLine(root, "sys/class/dmi/id/sys_vendor"),
		Product: readLine(root, "sys/class/dmi/id/product_name"),
		Serial:  readLine(root, "sys/class/dmi/id/product_serial"),
		Disks:   disks(root),
		NICs:    nics(root),
	}
	hw.CPUs, hw.CPUModel = cpus(root)
	hw.MemoryBytes = memory(root)
	if hw.MAC == "" && len(hw.NICs) > 0 {
		hw.MAC = hw.NICs[0].MAC
	}
	if hw.NICs == nil {
		hw.NICs = []agentproto.NIC{}
	}
	return hw
}

// readLine reads a one-line sysfs attribute, trimmed ("" if missing).
func readLine(root string, name ...string) string {
	b, err := os.ReadFile(filepath.Join(append([]string{root}, name...)...))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cpus counts the processors of /proc/cpuinfo and names their model.
func cpus(root string) (n int, model string) {
	f, err := os.Open(filepath.Join(root, "proc/cpuinfo"))
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name", "Model", "cpu model":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return n, model
}

// memory is MemTotal of /proc/meminfo, in bytes.
func memory(root string) uint64 {
	f, err := os.Open(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// virtualDisks are the prefixes of block devices that are not disks.
var virtualDisks = []string{"loop", "ram", "zram", "sr", "dm-", "md", "nbd", "fd"}

// disks lists /sys/block, without virtual devices.
func disks(root string) []agentproto.Disk {
	dir := filepath.Join(root, "sys/block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []agentproto.Disk
next:
	for _, e := range entries {
		name := e.Name()
		for _, p := range virtualDisks {
			if strings.HasPrefix(name, p) {
				continue next
			}
		}
		sectors, _ := strconv.ParseUint(readLine(dir, name, "size"), 10, 64)
		d := agentproto.Disk{
			Name:       name,
			SizeBytes:  sectors * 512,
			Model:      readLine(dir, name, "device/model"),
			Serial:     readLine(dir, name, "device/serial"),
			Rotational: readLine(dir, name, "queue/rotational") == "1",
		}
		if d.Serial == "" {
			d.Serial = readLine(dir, name, "serial") // virtio
		}
		out = append(out, d)
	}
	return out
}

// nics lists /sys/class/net without loopback.
func nics(root string) []agentproto.NIC {
	dir := filepath.Join(root, "sys/class/net")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []agentproto.NIC
	for _, e := range entries {
		name := e.Name()
		if name == "lo" {
			continue
		}
		n := agentproto.NIC{Name: name, MAC: strings.ToLower(readLine(dir, name, "address"))}
		if target, err := os.Readlink(filepath.Join(dir, name, "device/driver")); err == nil {
			n.Driver = filepath.Base(target)
		}
		out = append(out, n)
	}
	return out
}

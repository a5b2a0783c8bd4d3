package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// fakeTree writes files (path → content) under root; a content starting
// with "->" makes a symbolic link to the rest.
func fakeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		name := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, name)
		} else {
			err = os.WriteFile(name, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// sysfs is a small machine: two CPUs, two disks among virtual devices,
// two NICs and loopback.
var sysfs = map[string]string{
	"proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\n" +
		"processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n",
	"proc/meminfo":                       "MemTotal:       16318264 kB\nMemFree:        15000000 kB\n",
	"sys/class/dmi/id/sys_vendor":        "QEMU\n",
	"sys/class/dmi/id/product_name":      "Standard PC (Q35 + ICH9, 2009)\n",
	"sys/class/dmi/id/product_serial":    "SN-1234\n",
	"sys/block/sda/size":                 "41943040\n",
	"sys/block/sda/device/model":         "QEMU HARDDISK   \n",
	"sys/block/sda/device/serial":        "QM00001\n",
	"sys/block/sda/queue/rotational":     "1\n",
	"sys/block/nvme0n1/size":             "2000409264\n",
	"sys/block/nvme0n1/device/model":     "Samsung SSD 980 PRO 1TB\n",
	"sys/block/nvme0n1/device/serial":    "S5GXNF0R123456\n",
	"sys/block/nvme0n1/queue/rotational": "0\n",
	"sys/block/vda/size":                 "2048\n",
	"sys/block/vda/serial":               "virtio-1\n",
	"sys/block/loop0/size":               "0\n",
	"sys/block/ram0/size":                "8192\n",
	"sys/block/zram0/size":               "8192\n",
	"sys/block/sr0/size":                 "2048\n",
	"sys/block/dm-0/size":                "2048\n",
	"sys/class/net/lo/address":           "00:00:00:00:00:00\n",
	"sys/class/net/eth0/address":         "52:54:00:12:34:56\n",
	"sys/class/net/eth0/device/driver":   "->../../../bus/pci/drivers/virtio_net",
	"sys/class/net/eno2/address":         "3C:EC:EF:00:11:22\n",
	"sys/class/net/eno2/device/driver":   "->../../../../bus/pci/drivers/ixgbe",
}

func TestCollectHardware(t *testing.T) {
	root := t.TempDir()
	fakeTree(t, root, sysfs)
	got := CollectHardware(root, "52:54:00:12:34:56")
	want := agentproto.Hardware{
		MAC: "52:54:00:12:34:56", Vendor: "QEMU", Product: "Standard PC (Q35 + ICH9, 2009)", Serial: "SN-1234",
		CPUs: 2, CPUModel: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", MemoryBytes: 16318264 * 1024,
		Disks: []agentproto.Disk{
			{Name: "nvme0n1", SizeBytes: 2000409264 * 512, Model: "Samsung SSD 980 PRO 1TB", Serial: "S5GXNF0R123456"},
			{Name: "sda", SizeBytes: 41943040 * 512, Model: "QEMU HARDDISK", Serial: "QM00001", Rotational: true},
			{Name: "vda", SizeBytes: 2048 * 512, Serial: "virtio-1"},
		},
		NICs: []agentproto.NIC{
			{Name: "eno2", MAC: "3c:ec:ef:00:11:22", Driver: "ixgbe"},
			{Name: "eth0", MAC: "52:54:00:12:34:56", Driver: "virtio_net"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hardware (-want +got):\n%s", diff)
	}
	if empty := CollectHardware(t.TempDir(), ""); empty.NICs == nil || empty.CPUs != 0 {
		t.Errorf("empty tree: %+v", empty)
	}
}

// In discovery mode the agent reports the hardware, waits quietly while
// the machine has no workflow, and runs the one it is given.
func TestDiscovery(t *testing.T) {
	f := newFakeAPI(t) // no workflow: 404
	cfg := testConfig(t, f, fakeToken, agentproto.ParamMode+"="+agentproto.ModeDiscover)
	fakeTree(t, cfg.Root, sysfs)
	startAgent(t, cfg)
	waitUntil(t, "the hardware report", func() bool {
		var n int
		f.with(func(f *fakeAPI) { n = len(f.hardware) })
		return n > 0
	})
	waitUntil(t, "404s", func() bool { return f.requestCount("GET "+agentproto.PathWorkflow) >= 3 })
	f.with(func(f *fakeAPI) {
		if diff := cmp.Diff([]agentproto.Hardware{CollectHardware(cfg.Root, "52:54:00:12:34:56")}, f.hardware); diff != "" {
			t.Errorf("hardware reports (-want +got):\n%s", diff)
		}
	})
	out := filepath.Join(t.TempDir(), "provisioned")
	f.setWorkflow(workflow.Action{Name: "mark", Type: "file.write", Args: map[string]string{"path": out, "content": "yes"}})
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if got := string(readFile(t, out)); got != "yes" {
		t.Errorf("file = %q", got)
	}

	// Another workflow, with the same action names, runs too.
	f.setWorkflow(workflow.Action{Name: "mark", Type: "file.write", Args: map[string]string{"path": out, "content": "again"}})
	if st := waitDone(t, f); st.Status != workflow.Succeeded {
		t.Fatalf("workflow %s: %s", st.Status, st.Reason)
	}
	if got := string(readFile(t, out)); got != "again" {
		t.Errorf("file = %q", got)
	}
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// TestDemo runs the demo as `make run` does, with -exit: central and a
// site start, the boot artifacts of `make images` are published to
// central and pulled by the site (the demo prints both), and the order
// placed at central provisions the VM end to end. It needs what the
// demo needs (root, QEMU, ipmi_sim), and fails in CI without them.
func TestDemo(t *testing.T) {
	lab.Require(t, "root", "ip", "qemu-system-x86_64", "ipmi_sim", "ipmitool", "/usr/lib/ipxe/qemu/efi-virtio.rom")
	app, cen := applianced(t), centrald(t)
	demo := binary(t, "outpost-demo", "./appliance/cmd/outpost-demo")
	imgs := lab.BuildImages(t)

	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, "-exit", "-applianced", app, "-centrald", cen,
		"-api", "127.0.0.1:0", "-central", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	cmd.Dir = filepath.Dir(filepath.Dir(imgs.Dir)) // the repository, where `make run` runs it
	// Interrupted, as by Ctrl-C, the demo removes what it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := out.String()
	logs := regexp.MustCompile(`kept in (\S+)`).FindStringSubmatch(text)
	if err != nil {
		t.Fatalf("outpost-demo -exit: %v (%v)\n%s", err, ctx.Err(), text)
	}
	if logs != nil {
		os.RemoveAll(logs[1])
	}

	// Each step, in this order; the site pulls the three artifacts, in
	// any order, before the VM is provisioned.
	var at int
	step := func(re string) int {
		t.Helper()
		loc := regexp.MustCompile(re).FindStringIndex(text[at:])
		if loc == nil {
			t.Fatalf("the demo did not print %q after byte %d:\n%s", re, at, text)
		}
		return at + loc[1]
	}
	at = step(`publishing the boot artifacts to central \(\d+\.\d MiB\)`)
	var pulled int
	for _, name := range []string{"installer-kernel", "installer-initrd", "testos"} {
		pulled = max(pulled, step(`the site pulled `+name+` \(sha256:[0-9a-f]{12}…, \d+\.\d MiB\) from central\n`))
	}
	at = step(`provisioned in \S+s from the order: the VM booted its disk and says: OUTPOST-TESTOS hostname=demo-1 `)
	if pulled > at {
		t.Errorf("the demo printed a pull after the VM was provisioned:\n%s", text)
	}
	step(`cleaned up every namespace, VM and process it started`)
}

// Command outpost-labbmc runs the lab's Redfish BMC (lab.RedfishBMC) on
// its own, for a person, a script or an appliance to drive with any
// Redfish client (redfishtool, sushy, bmclib): with -tap it owns a QEMU
// VM with one NIC on that tap device, which it starts on power on and
// drives through QMP (boot override, virtual CD); without, its machine
// is a power state in memory. It serves HTTPS with a self-signed
// certificate until interrupted, and prints its address, username and
// certificate fingerprint (what `outpost bmc accept-certificate` takes).
// The password is never printed: it is read from -password-file, or
// made up and written there (mode 0600) when the file does not exist.
//
//	outpost-labbmc -listen 127.0.0.1:8443 -password-file bmc.pass -tap tap0 -disk disk.raw
//
// It needs root and QEMU for a VM; the VM's serial console goes to a
// log file it names.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/outposthq/outpost/appliance/internal/bmc"
	"github.com/outposthq/outpost/appliance/internal/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-labbmc:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, if set, gets the BMC once it serves.
func run(ctx context.Context, args []string, out io.Writer, ready func(*lab.RedfishBMC)) error {
	fs := flag.NewFlagSet("outpost-labbmc", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS listen address")
	user := fs.String("user", "admin", "the one user's name")
	passFile := fs.String("password-file", "", "file holding the password; made up and written if missing (required)")
	tap := fs.String("tap", "", "tap device of the VM's NIC; none: no VM, a power state in memory")
	mac := fs.String("mac", "", "the VM's MAC (default: derived)")
	disk := fs.String("disk", "", "the VM's disk image, if any")
	memory := fs.Int("memory", 1024, "the VM's memory in MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *passFile == "" {
		return errors.New("-password-file is required")
	}
	password, err := readOrMakePassword(*passFile)
	if err != nil {
		return err
	}
	return lab.NewRunner(ctx, "labbmc", os.Stderr).Run(func(t lab.T) {
		cfg := lab.RedfishBMCConfig{Addr: *listen, Username: *user, Password: password}
		if *tap != "" {
			vm := lab.VMConfig{Tap: *tap, MAC: *mac, MemoryMB: *memory}
			if *disk != "" {
				vm.Disks = []string{*disk}
			}
			var serial string
			cfg.VM, serial = lab.VMCommand(t, vm)
			fmt.Fprintf(out, "serial console: %s\n", serial)
		}
		b := lab.StartRedfishBMC(t, cfg)
		fmt.Fprintf(out, "Redfish BMC at https://%s, user %s, certificate %s\n", b.Addr, b.Username, bmc.Fingerprint(b.Certificate().Certificate[0]))
		if ready != nil {
			ready(b)
		}
		<-ctx.Done()
	})
}

// readOrMakePassword reads the password in path, or makes one up and
// writes it there.
func readOrMakePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		p := strings.TrimSpace(string(b))
		if p == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	r := make([]byte, 12)
	rand.Read(r)
	p := "lab-" + hex.EncodeToString(r)
	if err := os.WriteFile(path, []byte(p+"\n"), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

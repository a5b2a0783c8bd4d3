package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testdata/serial.log is an excerpt of a demo VM's serial console: SeaBIOS
// and iPXE, whose 80-column console breaks the script's long echo lines,
// then the installer's and the test OS's kernels, which do not.

// The demo shows the VM's milestones whole, however the firmware broke
// them, and sends the test OS's line on done.
func TestFollowSerial(t *testing.T) {
	raw, err := os.ReadFile("testdata/serial.log")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "serial.log")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var said []string
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		said = append(said, fmt.Sprintf(format, args...))
	}
	done := make(chan string, 1)
	go followSerial(t.Context(), path, say, done)
	select {
	case line := <-done:
		if want := "OUTPOST-TESTOS hostname=demo-1 instance-id=demo ip=198.18.0.100"; line != want {
			t.Errorf("done got %q, want %q", line, want)
		}
	case <-time.After(time.Minute):
		t.Fatal("followSerial did not find the test OS's line")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"vm     iPXE initialising devices...ok",
		"vm     Outpost: install: machine demo is provisioning, MAC 52:54:00:de:00:01, booting installer image installer",
		"vm     Outpost: fetching image installer, try 1 of 5",
		"vm     outpost-installer: network up on eth0 198.18.0.100/24",
		"vm     outpost-installer: starting agent",
		"vm     Outpost: provisioned: machine demo, MAC 52:54:00:de:00:01, booting from the local disk",
		"vm     SYSLINUX 6.04 EDD 20210613 Copyright (C) 1994-2015 H. Peter Anvin et al",
		"vm     OUTPOST-TESTOS-BOOTED from disk",
		"vm     OUTPOST-TESTOS hostname=demo-1 instance-id=demo ip=198.18.0.100",
	}
	if diff := cmp.Diff(want, said); diff != "" {
		t.Errorf("shown (-want +got):\n%s", diff)
	}
}

// Lines come out whole whatever pieces the output arrives in; lines the
// firmware broke at 80 columns are joined, control sequences dropped.
func TestConsoleLines(t *testing.T) {
	raw, err := os.ReadFile("testdata/serial.log")
	if err != nil {
		t.Fatal(err)
	}
	var whole consoleLines
	want := whole.add(raw)
	for _, line := range []string{
		"iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org",
		"Outpost: install: machine demo is provisioning, MAC 52:54:00:de:00:01, booting installer image installer",
		"Outpost: provisioned: machine demo, MAC 52:54:00:de:00:01, booting from the local disk",
	} {
		if !slices.Contains(want, line) {
			t.Errorf("no line %q in:\n%s", line, strings.Join(want, "\n"))
		}
	}
	for _, l := range want {
		if strings.ContainsAny(l, "\r\x1b\b") {
			t.Errorf("line %q holds control characters", l)
		}
	}
	for _, size := range []int{1, 7, 80, 81, 1000} {
		var c consoleLines
		var got []string
		for b := raw; len(b) > 0; b = b[min(size, len(b)):] {
			got = append(got, c.add(b[:min(size, len(b))])...)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("in pieces of %d bytes (-whole +pieces):\n%s", size, diff)
		}
	}
}

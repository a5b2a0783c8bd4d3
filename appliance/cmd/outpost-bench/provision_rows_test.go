package main

import (
	"strings"
	"testing"
)

func TestSelectProvisionRows(t *testing.T) {
	rows, err := selectProvisionRows(" kexec/vmedia,kexec/pxe ")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rows {
		got = append(got, c.label+"/"+c.boot)
	}
	// provisionCases' order, not the list's.
	if strings.Join(got, ",") != "kexec/pxe,kexec/vmedia" {
		t.Errorf("rows %v, want kexec/pxe,kexec/vmedia", got)
	}
	if all, err := selectProvisionRows(""); err != nil || len(all) != len(provisionCases) {
		t.Errorf("no list: %d rows (%v), want all %d", len(all), err, len(provisionCases))
	}
	if _, err := selectProvisionRows("kexec/pxe,kexec/floppy"); err == nil || !strings.Contains(err.Error(), `"kexec/floppy"`) {
		t.Errorf("an unknown row: %v, want an error naming it", err)
	}
}

func TestMedianFields(t *testing.T) {
	got := medianFields([]string{
		"total=20.0 dhcp=3.0 appliance_cpu=0.10",
		"total=18.0 dhcp=5.0 appliance_cpu=0.30",
		"total=30.0 dhcp=4.0 appliance_cpu=0.20",
	})
	if want := "total=20.00 dhcp=4.00 appliance_cpu=0.20"; got != want {
		t.Errorf("three runs: %q, want %q", got, want)
	}
	if got, want := medianFields([]string{"total=10 x=y", "total=20"}), "total=15.00"; got != want {
		t.Errorf("two runs: %q, want %q", got, want)
	}
}

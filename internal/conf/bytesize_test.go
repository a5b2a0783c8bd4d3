package conf

import "testing"

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "50MiB": 50 << 20, "50mib": 50 << 20, "1.5GiB": 3 << 29, "100MB": 100e6,
		"64k": 64 << 10, "2 G": 2 << 30, "1TB": 1e12, " 7b ": 7,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "5 parsecs", "1e400", "0x10", "9999999999TB"} {
		if got, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", bad, got)
		}
	}
}

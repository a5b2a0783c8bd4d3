package tftp

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// A client that asks for a window (atftp's windowsize, RFC 7440) gets
// the file byte for byte: sizes not a multiple of the block size, an
// exact multiple (which ends with an empty block) and an empty file; the
// OACK grants the window, and the client acknowledges once per window,
// not once per block.
func TestWindowATFTP(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	tests := map[string]struct {
		file    string
		window  int
		blksize int // 0: not asked, 512
	}{
		"window 1, 1 MiB + 777":           {"random.bin", 1, 0},
		"window 8, 1 MiB + 777":           {"random.bin", 8, 0},
		"window 64, 1 MiB + 777":          {"random.bin", 64, 0},
		"window 8, whole blocks":          {"blocks512.bin", 8, 0},
		"window 4, whole blocks = window": {"blocks512.bin", 4, 0},
		"window 64, whole blocks":         {"blocks512.bin", 64, 0},
		"window 8, empty":                 {"empty.bin", 8, 0},
		"window 64, empty":                {"empty.bin", 64, 0},
		"window 16, blksize 1468":         {"ipxe.efi", 16, 1468},
		"window 16, blksize 1468 whole":   {"blocks1468.bin", 16, 1468},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			opts := []string{fmt.Sprintf("windowsize %d", tt.window)}
			blksize := 512
			if tt.blksize != 0 {
				opts, blksize = append(opts, fmt.Sprintf("blksize %d", tt.blksize)), tt.blksize
			}
			out, got, err := fx.atftpGet(t, tt.file, opts...)
			want := fx.files[tt.file]
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("atftp: %v; got %d bytes, want %d identical\n%s", err, len(got), len(want), tail(out))
			}
			if oack := line(out, "received OACK"); !strings.Contains(oack, fmt.Sprintf("windowsize: %d", tt.window)) {
				t.Errorf("OACK %q does not grant windowsize %d", oack, tt.window)
			}
			blocks := len(want)/blksize + 1
			windows := (blocks + tt.window - 1) / tt.window
			if acks := strings.Count(out, "sent ACK"); acks != windows+1 { // and the ACK of the OACK
				t.Errorf("%d ACKs for %d blocks in windows of %d, want %d\n%s", acks, blocks, tt.window, windows+1, head(out))
			}
		})
	}
}

// The window granted is the smaller of the one asked for and
// Config.MaxWindow (DefaultMaxWindow when zero).
func TestWindowCapATFTP(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		max, ask, want int
	}{
		"default cap":        {0, 100, DefaultMaxWindow},
		"default cap, equal": {0, DefaultMaxWindow, DefaultMaxWindow},
		"cap 16":             {16, 1000, 16},
		"cap 16, under it":   {16, 5, 5},
		"cap 1":              {1, 8, 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			fx := newFixture(t, Config{MaxWindow: tt.max})
			out, got, err := fx.atftpGet(t, "ipxe.efi", fmt.Sprintf("windowsize %d", tt.ask), "tsize 0")
			if err != nil || !bytes.Equal(got, fx.files["ipxe.efi"]) {
				t.Fatalf("atftp: %v; got %d bytes\n%s", err, len(got), tail(out))
			}
			if oack := line(out, "received OACK"); !strings.Contains(oack, fmt.Sprintf("windowsize: %d,", tt.want)) {
				t.Errorf("OACK %q, want windowsize %d", oack, tt.want)
			}
		})
	}
}

// Block numbers wrap past 65535 (blksize 8 makes a half-megabyte file
// 65,549 blocks): the file still arrives whole.
func TestWindowWrapATFTP(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	data := bytes.Repeat(fx.files["random.bin"][:8*1000+3], 66)
	mustWrite(t, filepath.Join(fx.root, "wrap.bin"), data)
	out, got, err := fx.atftpGet(t, "wrap.bin", "blksize 8", "windowsize 64")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("atftp: %v; got %d bytes, want %d identical\n%s", err, len(got), len(data), tail(out))
	}
}

// Over IPv6 the server answers from the address asked (the listening
// socket is [::1]), in lock-step for tftp-hpa and in windows for atftp.
func TestIPv6(t *testing.T) {
	parallel(t)
	conn, err := Listen("[::1]:0")
	if err != nil {
		lab.Unavailable(t, fmt.Sprintf("no IPv6 loopback: %v", err))
	}
	root := t.TempDir()
	data := bytes.Repeat([]byte("outpost windowsize over IPv6\n"), 2000)
	mustWrite(t, filepath.Join(root, "v6.bin"), data)
	s, err := New(Config{Root: root, Log: slog.New(newRecorder(t))})
	if err != nil {
		t.Fatal(err)
	}
	port := serve(t, s, conn)
	local := filepath.Join(t.TempDir(), "hpa")
	out, err := exec.CommandContext(t.Context(), need(t, "tftp", "tftp-hpa"), "-6", "::1", port, "-m", "binary", "-c", "get", "v6.bin", local).CombinedOutput()
	if got, _ := os.ReadFile(local); err != nil || !bytes.Equal(got, data) {
		t.Errorf("tftp-hpa: %v, %d bytes\n%s", err, len(got), out)
	}
	local = filepath.Join(t.TempDir(), "atftp")
	out, err = exec.CommandContext(t.Context(), need(t, "atftp", "atftp"), "--option", "windowsize 8", "--option", "blksize 1024", "-g", "-r", "v6.bin", "-l", local, "::1", port).CombinedOutput()
	if got, _ := os.ReadFile(local); err != nil || !bytes.Equal(got, data) {
		t.Errorf("atftp: %v, %d bytes\n%s", err, len(got), out)
	}
}

// A netascii read is converted (LF to CR LF on the wire, and back by the
// client) and sent lock-step, even when a window is asked for.
func TestNetascii(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	text := bytes.Repeat([]byte("kernel vmlinuz console=ttyS0\r\ninitrd initrd.gz\n\n"), 300)
	mustWrite(t, filepath.Join(fx.root, "boot.txt"), text)
	local := filepath.Join(t.TempDir(), "got")
	out, err := exec.CommandContext(t.Context(), need(t, "tftp", "tftp-hpa"), "127.0.0.1", fx.port, "-m", "netascii", "-c", "get", "boot.txt", local).CombinedOutput()
	if got, _ := os.ReadFile(local); err != nil || !bytes.Equal(got, text) {
		t.Errorf("tftp-hpa netascii: %v, %d bytes, want %d identical\n%s", err, len(got), len(text), out)
	}

	c := newClient(t, fx.port)
	c.sendMode("boot.txt", "netascii", "windowsize", "8", "tsize", "0")
	wire := bytes.ReplaceAll(bytes.ReplaceAll(text, []byte("\r"), []byte("\r\x00")), []byte("\n"), []byte("\r\n"))
	var got []byte
	for block := uint16(1); ; block++ {
		op, num, p := c.read()
		if op != opData || num != block {
			t.Fatalf("got opcode %d block %d, want DATA %d (lock-step, no OACK)", op, num, block)
		}
		got = append(got, p...)
		c.ack(block)
		if len(p) < 512 {
			break
		}
	}
	if !bytes.Equal(got, wire) {
		t.Errorf("netascii on the wire: %d bytes, want %d", len(got), len(wire))
	}
}

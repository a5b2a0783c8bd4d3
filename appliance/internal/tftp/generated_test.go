package tftp

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fakeGenerator makes grub/<name>.cfg files naming the client, refuses
// grub/bad.cfg, and records what it was asked.
type fakeGenerator struct {
	mu    sync.Mutex
	asked []string
}

func (g *fakeGenerator) Generate(_ context.Context, client, local netip.Addr, name string) ([]byte, bool, error) {
	g.mu.Lock()
	g.asked = append(g.asked, client.String()+">"+local.String()+" "+name)
	g.mu.Unlock()
	switch {
	case name == "grub/bad.cfg":
		return nil, false, errors.New("refused")
	case strings.HasPrefix(name, "grub/") && strings.HasSuffix(name, ".cfg"):
		// Longer than a block, so that the transfer takes several.
		return []byte(strings.Repeat("generated for "+client.String()+"\n", 100)), true, nil
	}
	return nil, false, nil
}

// TestGenerated fetches generated files with tftp-hpa (which takes a
// colon for a host separator, so the MAC is hyphenated here): a name the
// generator makes is served from memory, whole; other names still come
// from Root; a generator's error refuses the request.
func TestGenerated(t *testing.T) {
	parallel(t)
	g := &fakeGenerator{}
	fx := newFixture(t, Config{Generator: g})

	out, got := fx.tftpGet(t, "/grub/52-54-00-12-34-56.cfg")
	want := []byte(strings.Repeat("generated for 127.0.0.1\n", 100))
	if !bytes.Equal(got, want) {
		t.Errorf("generated file: got %d bytes, want %d (tftp: %s)", len(got), len(want), out)
	}
	if _, got := fx.tftpGet(t, "ipxe.efi"); !bytes.Equal(got, fx.files["ipxe.efi"]) {
		t.Errorf("ipxe.efi from Root: got %d bytes, want %d", len(got), len(fx.files["ipxe.efi"]))
	}
	if out, got := fx.tftpGet(t, "grub/bad.cfg"); len(got) != 0 || !strings.Contains(out, "access violation") {
		t.Errorf("a refused generation: got %d bytes, tftp said %q; want an access violation", len(got), out)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.asked) == 0 || g.asked[0] != "127.0.0.1>127.0.0.1 grub/52-54-00-12-34-56.cfg" {
		t.Errorf("generator asked %q; want first the clean name, the client and the local address", g.asked)
	}
}

package store

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/outposthq/outpost/internal/errs"
)

// Subnet is an IPv4 network the appliance serves addresses on.
type Subnet struct {
	Meta
	Name    string   `json:"name"`
	CIDR    string   `json:"cidr"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	Domain  string   `json:"domain,omitempty"`
	// Pools are the ranges dynamic leases come from.
	Pools []Range `json:"pools,omitempty"`
	// Reserved ranges are never handed out dynamically.
	Reserved []Range `json:"reserved,omitempty"`
	// LeaseSeconds is how long a lease lasts; 0 means DefaultLeaseSeconds.
	LeaseSeconds uint32 `json:"lease_seconds,omitempty"`
	// Discovery lets machines the site does not know get a pool address
	// and boot the installer in discovery mode.
	Discovery bool `json:"discovery,omitempty"`
	// Boot is how the site's orders boot the installer on the subnet's
	// machines: BootPXE (or empty), from the network with an address the
	// appliance's DHCP server leases; BootVirtualMedia, from an ISO in
	// the BMC's virtual CD drive with a static address from IPAM, where
	// the appliance answers no DHCP (a routed subnet without a relay).
	Boot string `json:"boot,omitempty"`
}

// Subnet boot modes (Subnet.Boot).
const (
	BootPXE          = "pxe"
	BootVirtualMedia = "vmedia"
)

// VirtualMedia reports whether the subnet's machines boot the installer
// from virtual media.
func (s *Subnet) VirtualMedia() bool { return s.Boot == BootVirtualMedia }

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// DefaultLeaseSeconds is the lease time of a subnet that names none.
const DefaultLeaseSeconds = 3600

// What the site's DHCP server serves (CheckServable): a subnet of at
// most a /8 (the most package ipam's pools may span) whose pools hold
// at most a /16's worth of addresses together, enough for any site's
// boot network many times over.
const (
	MinPrefixBits    = 8
	MaxPoolAddresses = 1 << 16
)

// unservable are the networks no DHCP server hands addresses out in:
// "this network", loopback, link-local, multicast and the reserved
// class E with the limited broadcast address.
var unservable = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

func (*Subnet) Kind() string   { return "subnet" }
func (s *Subnet) Key() string  { return s.Name }
func (*Subnet) bucket() []byte { return bucketSubnets }

// Prefix returns the subnet's network. It is valid after Validate.
func (s *Subnet) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(s.CIDR)
	return p.Masked()
}

// Validate checks the subnet on its own.
func (s *Subnet) Validate() error {
	if err := validName("name", s.Name); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil || !p.Addr().Is4() {
		return errs.Invalid("cidr", "%q is not an IPv4 prefix like 198.18.0.0/24", s.CIDR)
	}
	if p.Bits() > 30 {
		return errs.Invalid("cidr", "%q leaves no room for hosts", s.CIDR)
	}
	p = p.Masked()
	if s.Gateway != "" {
		if err := s.inPrefix(p, "gateway", s.Gateway); err != nil {
			return err
		}
	}
	for i, d := range s.DNS {
		if err := validAddr(fmt.Sprintf("dns[%d]", i), d, true); err != nil {
			return err
		}
	}
	if err := validHostname("domain", s.Domain); err != nil {
		return err
	}
	for i, r := range s.Pools {
		if err := s.validRange(p, fmt.Sprintf("pools[%d]", i), r); err != nil {
			return err
		}
	}
	for i, r := range s.Reserved {
		if err := s.validRange(p, fmt.Sprintf("reserved[%d]", i), r); err != nil {
			return err
		}
	}
	if s.Boot != "" {
		return validOneOf("boot", s.Boot, BootPXE, BootVirtualMedia)
	}
	return nil
}

func (s *Subnet) inPrefix(p netip.Prefix, field, v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return errs.Invalid(field, "%q is not an IPv4 address", v)
	}
	if !p.Contains(a) {
		return errs.Invalid(field, "%s is outside %s", v, p)
	}
	return nil
}

func (s *Subnet) validRange(p netip.Prefix, field string, r Range) error {
	if err := s.inPrefix(p, field+".start", r.Start); err != nil {
		return err
	}
	if err := s.inPrefix(p, field+".end", r.End); err != nil {
		return err
	}
	if netip.MustParseAddr(r.End).Less(netip.MustParseAddr(r.Start)) {
		return errs.Invalid(field, "end %s is before start %s", r.End, r.Start)
	}
	return nil
}

// CheckServable checks what Validate leaves to the site's rules (it
// keeps the rules of earlier releases, for replay): that the site's DHCP
// server can serve s, which must be valid. Its prefix is at most a /8
// and in no network hosts cannot be given addresses in; its pools hold
// at most MaxPoolAddresses addresses together; its gateway, if any, is
// an address a host may have (not the network's or its broadcast
// address). Each error names the subnet and the limit it passes.
func (s *Subnet) CheckServable() error {
	if err := s.CheckServableV2(); err != nil {
		return err
	}
	if s.Gateway == "" {
		return nil
	}
	p, gw := s.Prefix(), netip.MustParseAddr(s.Gateway)
	switch {
	case gw == p.Addr():
		return errs.Invalid("gateway", "subnet %s's gateway %s is the network address of %s, which no host may have", s.Name, gw, p)
	case gw == broadcast(p):
		return errs.Invalid("gateway", "subnet %s's gateway %s is the broadcast address of %s, which no host may have", s.Name, gw, p)
	}
	return nil
}

// CheckServableV2 is CheckServable without the gateway's rule: the rules
// of the site's PutSubnetV2 command, kept for replay.
func (s *Subnet) CheckServableV2() error {
	p := s.Prefix()
	if p.Bits() < MinPrefixBits {
		return errs.Invalid("cidr", "subnet %s's %s is wider than a /%d: no DHCP server serves that many addresses", s.Name, p, MinPrefixBits)
	}
	for _, u := range unservable {
		if u.prefix.Overlaps(p) {
			return errs.Invalid("cidr", "subnet %s's %s is in %s (%s), where no DHCP server hands out addresses", s.Name, p, u.prefix, u.what)
		}
	}
	if n := s.poolAddresses(); n > MaxPoolAddresses {
		return errs.Invalid("pools", "subnet %s's pools hold %d addresses together, more than the %d (a /16's worth) a subnet may", s.Name, n, MaxPoolAddresses)
	}
	return nil
}

// broadcast is p's last address.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// poolAddresses counts the addresses of s's pools, those of overlapping
// pools once. s must be valid.
func (s *Subnet) poolAddresses() uint64 {
	type span struct{ lo, hi uint64 }
	spans := make([]span, 0, len(s.Pools))
	for _, r := range s.Pools {
		spans = append(spans, span{addr4(r.Start), addr4(r.End)})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	var n, next uint64 // next: the first address not counted yet
	for _, sp := range spans {
		lo := max(sp.lo, next)
		if sp.hi >= lo {
			n += sp.hi - lo + 1
			next = sp.hi + 1
		}
	}
	return n
}

func addr4(a string) uint64 {
	b := netip.MustParseAddr(a).As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// Overlaps reports whether s and o share an address. Both must be
// valid.
func (s *Subnet) Overlaps(o *Subnet) bool { return s.Prefix().Overlaps(o.Prefix()) }

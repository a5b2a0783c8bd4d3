package store

import (
	"fmt"
	"net/netip"

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
}

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// DefaultLeaseSeconds is the lease time of a subnet that names none.
const DefaultLeaseSeconds = 3600

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

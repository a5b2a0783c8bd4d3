package site

import (
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// applyPutSubnet stores a subnet the site's DHCP server can serve
// (store.Subnet.CheckServable) and that overlaps no other subnet: an
// address in two subnets could be leased in both.
func applyPutSubnet(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return putSubnet(tx, payload, index, (*store.Subnet).CheckServable)
}

// applyPutSubnetV2 is PutSubnetV2's: PutSubnet's rules but the gateway's
// (apply_legacy.go).
func applyPutSubnetV2(tx *store.Tx, payload []byte, index uint64) (any, error) {
	return putSubnet(tx, payload, index, (*store.Subnet).CheckServableV2)
}

// putSubnet stores the subnet of a PutSubnet payload if it passes
// servable and overlaps no other subnet; a refusal changes nothing.
func putSubnet(tx *store.Tx, payload []byte, index uint64, servable func(*store.Subnet) error) (any, error) {
	var req Put[store.Subnet]
	command.MustDecode(payload, &req, index)
	if req.Object != nil {
		if err := checkSubnet(tx, req.Object, servable); err != nil {
			return nil, err
		}
	}
	return putObject(tx, &req, index)
}

// checkSubnet checks s against the site's rules for subnets: valid,
// servable, and overlapping no other subnet.
func checkSubnet(tx *store.Tx, s *store.Subnet, servable func(*store.Subnet) error) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := servable(s); err != nil {
		return err
	}
	others, err := store.List[store.Subnet](tx)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Name != s.Name && s.Overlaps(o) {
			return errs.Invalid("cidr", "subnet %s's %s overlaps subnet %s (%s)", s.Name, s.Prefix(), o.Name, o.Prefix())
		}
	}
	return nil
}

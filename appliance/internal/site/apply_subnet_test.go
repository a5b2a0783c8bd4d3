package site

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// subnet is a subnet with cidr and pools (start, end pairs).
func subnet(name, cidr string, pools ...string) *store.Subnet {
	s := &store.Subnet{Name: name, CIDR: cidr}
	for i := 0; i+1 < len(pools); i += 2 {
		s.Pools = append(s.Pools, store.Range{Start: pools[i], End: pools[i+1]})
	}
	return s
}

// A subnet no DHCP server can serve, or one overlapping another, is
// refused at apply, naming the field, and changes nothing.
func TestPutSubnetRefused(t *testing.T) {
	tests := map[string]struct {
		subnet *store.Subnet
		field  string
	}{
		"the whole internet":      {subnet("all", "0.0.0.0/0", "0.0.0.1", "255.255.255.254"), "cidr"},
		"wider than a /8":         {subnet("wide", "10.0.0.0/7"), "cidr"},
		"this network":            {subnet("zero", "0.0.0.0/24"), "cidr"},
		"loopback":                {subnet("lo", "127.0.0.0/24"), "cidr"},
		"link-local":              {subnet("ll", "169.254.1.0/24"), "cidr"},
		"multicast":               {subnet("mc", "224.0.0.0/24"), "cidr"},
		"reserved":                {subnet("e", "240.0.0.0/24"), "cidr"},
		"pools over a /16":        {subnet("big", "10.0.0.0/8", "10.0.0.1", "10.1.0.1"), "pools"},
		"two pools over a /16":    {subnet("big2", "10.0.0.0/8", "10.0.0.1", "10.0.128.0", "10.0.128.1", "10.1.0.1"), "pools"},
		"overlaps lab":            {subnet("wider", "198.18.0.0/16"), "cidr"},
		"inside lab":              {subnet("inner", "198.18.0.128/25"), "cidr"},
		"invalid on its own too":  {subnet("bad", "198.18.0.0/33"), "cidr"},
		"valid but for the start": {subnet("start", "198.18.0.0/24", "198.17.0.1", "198.18.0.9"), "pools[0].start"},
		"gateway on the network":  {withGateway(subnet("gwnet", "198.18.1.0/24", "198.18.1.10", "198.18.1.20"), "198.18.1.0"), "gateway"},
		"gateway on broadcast":    {withGateway(subnet("gwbc", "198.18.2.0/23", "198.18.2.10", "198.18.2.20"), "198.18.3.255"), "gateway"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
			before := rawDump(t, e.db)
			r := e.applyCmd(2, PutSubnet, Put[store.Subnet]{Object: tc.subnet, Time: ts1})
			if r.Err == nil || r.Err.Code != errs.CodeInvalid || r.Err.Field != tc.field {
				t.Fatalf("result %+v, want invalid naming %q", r.Err, tc.field)
			}
			t.Logf("refused: %v", r.Err)
			if diff := cmp.Diff(withApplied(before, 2), rawDump(t, e.db)); diff != "" {
				t.Errorf("a refused subnet changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

// What a DHCP server can serve is stored: a subnet replacing itself, one
// next to another, a /8 whose pools hold a /16's worth (overlapping
// pools counted once).
func TestPutSubnetAccepted(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	moved := fxSubnet("lab")
	moved.Pools[0].End = "198.18.0.250"
	for i, s := range []*store.Subnet{
		moved,
		subnet("next", "198.18.1.0/24", "198.18.1.10", "198.18.1.20"),
		subnet("big", "10.0.0.0/8", "10.0.0.0", "10.0.255.255", "10.0.1.0", "10.0.2.0"),
	} {
		e.applyOK(uint64(i+2), PutSubnet, Put[store.Subnet]{Object: s, Time: ts1})
	}
}

// A log written before the rules holds subnets they would refuse: its
// PutSubnetV1 commands apply as they did, so every node replaying it
// comes to the same state.
func TestPutSubnetV1Replays(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutSubnetV1, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	all := subnet("all", "0.0.0.0/0", "0.0.0.1", "255.255.255.254")
	r := e.applyOK(2, PutSubnetV1, Put[store.Subnet]{Object: all, Time: ts0})
	checkPut(t, e, r, all, 2)
}

// PutSubnetV2 took a gateway on the subnet's network or broadcast
// address, and replays so; PutSubnet refuses it.
func TestPutSubnetV2Replays(t *testing.T) {
	e := newEnv(t)
	gw := withGateway(subnet("gw", "198.18.1.0/24", "198.18.1.10", "198.18.1.20"), "198.18.1.255")
	r := e.applyOK(1, PutSubnetV2, Put[store.Subnet]{Object: gw, Time: ts0})
	checkPut(t, e, r, gw, 1)
	big := subnet("big", "10.0.0.0/8", "10.0.0.1", "10.2.0.0")
	if r := e.applyCmd(2, PutSubnetV2, Put[store.Subnet]{Object: big, Time: ts0}); r.Err == nil || r.Err.Field != "pools" {
		t.Errorf("PutSubnetV2 of pools over a /16: %+v, want refused naming pools", r.Err)
	}
}

// A refusal names the subnet and the limit it passes.
func TestPutSubnetRefusalNamesSubnetAndLimit(t *testing.T) {
	tests := map[string]struct {
		subnet *store.Subnet
		want   []string
	}{
		"pools":   {subnet("big", "10.0.0.0/8", "10.0.0.1", "10.2.0.0"), []string{"big", "131072", "65536"}},
		"prefix":  {subnet("wide", "10.0.0.0/7"), []string{"wide", "/8"}},
		"gateway": {withGateway(subnet("gw", "198.18.1.0/24"), "198.18.1.0"), []string{"gw", "198.18.1.0", "network address"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			r := e.applyCmd(1, PutSubnet, Put[store.Subnet]{Object: tc.subnet, Time: ts0})
			if r.Err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Err.Error(), w) {
					t.Errorf("error %q does not name %q", r.Err, w)
				}
			}
		})
	}
}

func withGateway(s *store.Subnet, gw string) *store.Subnet {
	s.Gateway = gw
	return s
}

// commits records what a proposer commits.
type commits struct{ cmds [][]byte }

func (c *commits) Commit(_ context.Context, cmd []byte) (Result, error) {
	c.cmds = append(c.cmds, cmd)
	return Result{}, nil
}

// The proposer refuses a subnet the rules refuse before it proposes
// anything.
func TestProposerRefusesSubnet(t *testing.T) {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	log := &commits{}
	p := NewProposer(ProposerConfig{Log: log, Store: e.db})
	for s, field := range map[*store.Subnet]string{
		subnet("all", "0.0.0.0/0"):                                 "cidr",
		subnet("wider", "198.18.0.0/16"):                           "cidr",
		subnet("big", "10.0.0.0/8", "10.0.0.1", "10.2.0.0"):        "pools",
		withGateway(subnet("gw", "198.18.1.0/24"), "198.18.1.255"): "gateway",
	} {
		_, err := p.PutSubnet(t.Context(), s, 0)
		if e, ok := errs.AsError(err); !ok || e.Field != field {
			t.Errorf("PutSubnet(%s): %v, want invalid naming %q", s.CIDR, err, field)
		}
	}
	if len(log.cmds) != 0 {
		t.Errorf("%d commands proposed for refused subnets", len(log.cmds))
	}
}

package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelectBenches(t *testing.T) {
	all := map[string]bool{"store": true, "tftp": true, "dhcp": true, "dhcp.cost": true, "dhcp.nodes3": true, "dhcp.failover": true, "raft.idle": true, "dhcp.relay": true, "storm": true, "trace.overhead": true, "provision": true, "trace.e2e": true, "bmc": true, "sync": true, "sync.sites": true, "console": true,
		"artifacts.serve": true, "artifacts.fanout": true, "portal.bulk": true, "portal.fleet": true}
	tests := map[string]struct {
		list    string
		want    map[string]bool
		wantErr string
	}{
		"empty is all":   {list: "", want: all},
		"one":            {list: "store", want: map[string]bool{"store": true}},
		"two as in make": {list: "store,dhcp", want: map[string]bool{"store": true, "dhcp": true}},
		"dotted name":    {list: "artifacts.serve", want: map[string]bool{"artifacts.serve": true}},
		"soak by name":   {list: "soak", want: map[string]bool{"soak": true}},
		"spaces":         {list: " store , dhcp ", want: map[string]bool{"store": true, "dhcp": true}},
		"unknown": {
			list:    "store,strom",
			wantErr: `-run: no benchmark "strom" (have store,tftp,dhcp,dhcp.cost,dhcp.nodes3,dhcp.failover,raft.idle,dhcp.relay,storm,trace.overhead,provision,trace.e2e,bmc,sync,sync.sites,console,artifacts.serve,artifacts.fanout,portal.bulk,portal.fleet,soak)`,
		},
		"trailing comma": {
			list:    "store,",
			wantErr: `-run: no benchmark "" (have store,tftp,dhcp,dhcp.cost,dhcp.nodes3,dhcp.failover,raft.idle,dhcp.relay,storm,trace.overhead,provision,trace.e2e,bmc,sync,sync.sites,console,artifacts.serve,artifacts.fanout,portal.bulk,portal.fleet,soak)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := selectBenches(tc.list)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("selectBenches(%q) error = %v, want %q", tc.list, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("selectBenches(%q): %v", tc.list, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("selectBenches(%q) (-want +got):\n%s", tc.list, diff)
			}
		})
	}
}

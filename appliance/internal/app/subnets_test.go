package app

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Subnets stored by earlier releases that the DHCP server cannot serve
// are reported by name with the rule each breaks; the servable one is
// not.
func TestUnservableSubnetsReported(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	subnets := []*store.Subnet{
		{Name: "lab", CIDR: "198.18.0.0/24", Gateway: "198.18.0.1", Pools: []store.Range{{Start: "198.18.0.10", End: "198.18.0.20"}}},
		// PutSubnetV2 took a gateway on the broadcast address.
		{Name: "gw", CIDR: "198.18.1.0/24", Gateway: "198.18.1.255", Pools: []store.Range{{Start: "198.18.1.10", End: "198.18.1.20"}}},
		// PutSubnetV1 took anything valid.
		{Name: "big", CIDR: "10.0.0.0/8", Pools: []store.Range{{Start: "10.0.0.1", End: "10.4.0.0"}}},
	}
	err = db.Update(func(tx *store.Tx) error {
		for i, s := range subnets {
			if err := tx.UnsafePut(s, store.Write{Index: uint64(i + 1), Time: time.Unix(0, 0)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := unservableSubnets(db)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for name, why := range bad {
		got[name] = why.Error()
	}
	want := map[string]string{
		"gw":  "gateway: subnet gw's gateway 198.18.1.255 is the broadcast address of 198.18.1.0/24, which no host may have",
		"big": "pools: subnet big's pools hold 262144 addresses together, more than the 65536 (a /16's worth) a subnet may",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unservable subnets (-want +got):\n%s", diff)
	}

	var buf bytes.Buffer
	reportUnservable(db, slog.New(slog.NewTextHandler(&buf, nil)))
	for _, name := range []string{"gw", "big"} {
		if !strings.Contains(buf.String(), "subnet="+name+" ") {
			t.Errorf("no warning names subnet %s:\n%s", name, buf.String())
		}
	}
	if strings.Contains(buf.String(), "subnet=lab ") {
		t.Errorf("the servable subnet was reported:\n%s", buf.String())
	}
}

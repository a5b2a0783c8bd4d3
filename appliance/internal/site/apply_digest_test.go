package site

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestOrderAsksItsDigest: an order central placed with the digest it
// resolved its image to (syncproto.Order.ImageSHA256, prepared into
// ImageWanted) runs at once when the site's image is that digest; when
// the site's image is another, the order waits, naming both, with
// nothing started, and starts once the site's image is the one asked,
// installing exactly it.
func TestOrderAsksItsDigest(t *testing.T) {
	e := orderSite(t)
	e.putHeldImage(7, casImage("ubuntu", shaA, 1<<30))
	e.applyOK(8, PutMachine, Put[store.Machine]{Object: sampleMachine("m2", "aa:bb:cc:00:00:02"), Time: t0})

	same := provisionOf("o1", "m1", "ubuntu")
	same.ImageWanted = shaA
	if o := placeOrder(t, e, PlaceOrder, 9, same); o.State != store.OrderRunning || o.ImageSHA256 != shaA {
		t.Fatalf("order asking the site's digest: %+v, want running", o)
	}

	other := provisionOf("o2", "m2", "ubuntu")
	other.ImageWanted = shaB
	o := placeOrder(t, e, PlaceOrder, 10, other)
	want := "the order asks image ubuntu as sha256:b2b2b2b2b2b2…, but the site's image ubuntu is sha256:a1a1a1a1a1a1…: waiting until the site's image is the one asked"
	if o.State != store.OrderWaiting || o.Reason != want || o.Workflow != "" || len(o.Jobs) != 0 {
		t.Fatalf("order asking another digest: %+v, want waiting: %s", o, want)
	}
	if ev := lastEvent(t, e); ev.Kind != "order.waiting" || ev.Fields["sha256"] != shaB || !strings.Contains(ev.Message, want) {
		t.Errorf("event %+v, want order.waiting naming the digest asked", ev)
	}
	if workflowExists(t, e, "o2") {
		t.Error("a waiting order has a workflow")
	}

	e.putHeldImage(11, casImage("ubuntu", shaB, 1<<30))
	if o := getOrder(t, e, "o2"); o.State != store.OrderRunning || o.ImageSHA256 != shaB || o.Workflow != "o2" {
		t.Errorf("order after the site's image became the one asked: %+v, want running, installing %s", o, shaB)
	}
}

// TestPrepareDesiredOrderDigest: the digest central sends with an order
// (image_sha256) becomes the one the order asks for; what the site
// itself sets is cleared.
func TestPrepareDesiredOrderDigest(t *testing.T) {
	p := &Proposer{cfg: ProposerConfig{Nonce: func() string { return "n" }}}
	obj := `{"id":"o1","action":"provision","machine_id":"m1","image":"ubuntu","image_sha256":"` + shaB + `","state":"running"}`
	d := &Desired{Changes: []DesiredChange{{Kind: DesiredOrder, Key: "o1", Object: json.RawMessage(obj)}}}
	p.PrepareDesired(d)
	var o store.Order
	if err := json.Unmarshal(d.Changes[0].Object, &o); err != nil {
		t.Fatal(err)
	}
	if o.ImageWanted != shaB || o.ImageSHA256 != "" || o.State != "" || o.Nonce != "n" {
		t.Errorf("prepared order %+v, want it to ask %s", o, shaB)
	}
}

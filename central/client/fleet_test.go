package client_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/testcentral"
)

// fill sets every field of the value v points to, recursively, to
// something other than its zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint64:
		v.SetUint(7)
	}
}

// inStep checks that central's type C and the client's type L are the
// same on the wire: a C with every field set decodes strictly into an L,
// which encodes back to the same JSON.
func inStep[C, L any](t *testing.T) {
	t.Helper()
	var c C
	fill(reflect.ValueOf(&c).Elem())
	raw, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var l L
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Errorf("%T: central answers a field %T does not know: %v", c, l, err)
		return
	}
	back, _ := json.Marshal(&l)
	if diff := cmp.Diff(string(raw), string(back)); diff != "" {
		t.Errorf("%T and %T differ on the wire (-central +client):\n%s", c, l, diff)
	}
}

// The client's types of the orders and the audit are central's, field
// for field (the fleet's are central's own, aliased).
func TestTypesInStep(t *testing.T) {
	inStep[orders.Request, client.OrderRequest](t)
	inStep[orders.Preview, client.Preview](t)
	inStep[orders.Result, client.OrderResult](t)
	inStep[orders.AuditEntry, client.AuditEntry](t)
}

// The fleet calls against the fake fleet: pages followed to the end, a
// query central cannot read refused naming its term, one machine and
// its timeline, the sites.
func TestFleetCalls(t *testing.T) {
	f := testcentral.StartFleet(t)
	for _, id := range []string{"m1", "m2", "m3"} {
		f.Set(&fleet.Machine{Site: "fra-1", ID: id, State: "ready"})
	}
	f.Set(&fleet.Machine{Site: "ams-1", ID: "m1", State: "failed"})
	f.SetTimeline("fra-1", "m2", fleet.Event{Source: "site", Seq: 9, Kind: "machine.ready"})
	f.SetSites(&fleet.Site{ID: "fra-1", Link: fleet.Link{Connected: true}})
	c := client.New(f.URL, "", nil)
	ctx := t.Context()

	all, version, err := c.AllMachines(ctx, "")
	var got []string
	for _, m := range all {
		got = append(got, m.Site+"/"+m.ID)
	}
	if want := []string{"ams-1/m1", "fra-1/m1", "fra-1/m2", "fra-1/m3"}; err != nil || !slices.Equal(got, want) || version != 4 {
		t.Errorf("all machines: %q at %d, %v; want %q at 4", got, version, err, want)
	}
	page, err := c.Machines(ctx, "site:fra-* state:ready", 1, "")
	if err != nil || len(page.Machines) != 1 || page.Total != 3 || page.Next != "fra-1/m1" {
		t.Errorf("first page of one: %+v, %v", page, err)
	}
	var e *client.Error
	if _, err := c.Machines(ctx, "color:red", 0, ""); !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "color:red") {
		t.Errorf("a query central cannot read: %v", err)
	}
	m, err := c.Machine(ctx, "ams-1", "m1")
	if err != nil || m.State != "failed" {
		t.Errorf("machine ams-1/m1: %+v, %v", m, err)
	}
	if _, err := c.Machine(ctx, "ams-1", "m9"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("an unknown machine: %v", err)
	}
	events, err := c.Timeline(ctx, "fra-1", "m2", 10)
	if err != nil || len(events) != 1 || events[0].Kind != "machine.ready" {
		t.Errorf("timeline: %+v, %v", events, err)
	}
	sites, err := c.FleetSites(ctx)
	if err != nil || len(sites) != 1 || !sites[0].Link.Connected {
		t.Errorf("sites: %+v, %v", sites, err)
	}
}

// Stream calls back with each version after the one it starts from and
// returns the last one seen when central ends the stream; resumed from
// it, it sends it as Last-Event-ID and sees only what came after.
func TestStreamResumes(t *testing.T) {
	f := testcentral.StartFleet(t)
	f.Set(&fleet.Machine{Site: "fra-1", ID: "m1", State: "ready"})
	f.Set(&fleet.Machine{Site: "fra-1", ID: "m1", State: "provisioning"})
	c := client.New(f.URL, "", nil)
	var seen []uint64
	last, err := c.Stream(t.Context(), 1, func(v uint64) error {
		seen = append(seen, v)
		if v == 2 {
			f.Set(&fleet.Machine{Site: "fra-1", ID: "m1", State: "provisioned"})
			return nil
		}
		f.DropStreams()
		return nil
	})
	if err != nil || last != 3 || !slices.Equal(seen, []uint64{2, 3}) {
		t.Fatalf("first stream: saw %v, last %d, %v", seen, last, err)
	}
	f.Set(&fleet.Machine{Site: "fra-1", ID: "m1", State: "failed"})
	stop := errors.New("stop")
	seen = nil
	last, err = c.Stream(t.Context(), last, func(v uint64) error { seen = append(seen, v); return stop })
	if !errors.Is(err, stop) || last != 4 || !slices.Equal(seen, []uint64{4}) {
		t.Errorf("resumed: saw %v, last %d, %v", seen, last, err)
	}
	if r := f.Resumes(); !slices.Equal(r, []string{"1", "3"}) {
		t.Errorf("Last-Event-ID sent: %q, want 1 then 3", r)
	}
}

// The orders' and the audit's calls against the fake.
func TestOrderAndAuditCalls(t *testing.T) {
	f := testcentral.StartFleet(t)
	f.Set(&fleet.Machine{Site: "fra-1", ID: "m1", State: "ready"}, &fleet.Machine{Site: "fra-1", ID: "m2", State: "ready"})
	f.AddAudit(orders.AuditEntry{Seq: 1, By: "admin", Action: "site.create", Target: "fra-1", Status: 201},
		orders.AuditEntry{Seq: 2, By: "ops", Action: "order.place", Target: "fra-1/m1", Status: 200})
	c := client.New(f.URL, "", nil)
	ctx := t.Context()
	req := &client.OrderRequest{Action: "power", Query: "site:fra-1", Params: client.OrderParams{Power: "cycle"}}
	p, err := c.Preview(ctx, req)
	if err != nil || len(p.Items) != 2 {
		t.Fatalf("preview: %+v, %v", p, err)
	}
	req.Query, req.Targets = "", []client.TargetRef{p.Items[0].TargetRef}
	res, err := c.Place(ctx, req)
	if err != nil || len(res.Placed) != 1 || len(f.Placed()) != 1 || f.Placed()[0].Params.Power != "cycle" {
		t.Errorf("place: %+v, %v; central got %+v", res, err, f.Placed())
	}
	entries, err := c.Audit(ctx, client.AuditFilter{By: "ops"})
	if err != nil || len(entries) != 1 || entries[0].Action != "order.place" {
		t.Errorf("audit by ops: %+v, %v", entries, err)
	}
	var csv bytes.Buffer
	if err := c.AuditDownload(ctx, client.AuditFilter{}, "csv", &csv); err != nil || strings.Count(csv.String(), "\n") != 3 {
		t.Errorf("audit as csv: %q, %v", csv.String(), err)
	}
}

package dhcp

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// traceMachine gives machine m1 a workflow whose traceparent is a new
// root span's, and returns the traceparent.
func (st *testSite) traceMachine(t *testing.T, rec *tracetest.Recorder) string {
	t.Helper()
	tp, end := rec.Root(t, tracing.SpanOrderApply)
	end()
	ctx := t.Context()
	if _, err := st.n.Site.PutTemplate(ctx, &store.Template{Name: "install",
		Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.n.Site.CreateWorkflow(ctx, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "install", Traceparent: tp}); err != nil {
		t.Fatal(err)
	}
	return tp
}

// A traced machine's DORA is one dhcp.exchange span, child of its
// workflow's traceparent, from the DISCOVER to the ACK, naming the MAC,
// the machine, the address and the messages; an INFORM is another; a
// machine without a trace records nothing.
func TestExchangeSpans(t *testing.T) {
	rec := tracetest.Start(t)
	st := newSite(t, true)
	tp := st.traceMachine(t, rec)

	// An unknown MAC in the same subnet: answered, never traced.
	st.dora(t, "52:54:00:00:00:99")
	ack := st.doraOneXID(t, knownMAC)
	inform, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeInform, knownMAC, dhcpv4.WithClientIP(ack.YourIPAddr)))
	if inform == nil {
		t.Fatal("no answer to INFORM")
	}
	spans := rec.Spans(t, tp)
	type got struct{ Name, Parent, MAC, Machine, IP, Messages, XID string }
	var gotSpans []got
	for _, s := range spans {
		if s.Name == tracing.SpanOrderApply {
			continue
		}
		gotSpans = append(gotSpans, got{s.Name, s.Parent, s.Attrs[tracing.AttrMAC], s.Attrs[tracing.AttrMachine], s.Attrs[attrIP],
			s.Attrs[attrMessages], s.Attrs[attrXID]})
	}
	parent := tracetest.SpanID(tp)
	want := []got{
		{tracing.SpanDHCP, parent, knownMAC, "m1", "198.18.0.10", "DISCOVER OFFER REQUEST ACK", ack.TransactionID.String()},
		{tracing.SpanDHCP, parent, knownMAC, "m1", "", "INFORM ACK", inform.TransactionID.String()},
	}
	if diff := cmp.Diff(want, gotSpans); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if len(spans) == 3 && spans[1].Error != "" {
		t.Errorf("the DORA's span failed: %s", spans[1].Error)
	}
}

// doraOneXID runs a DORA with one transaction id, as real clients do.
func (st *testSite) doraOneXID(t *testing.T, mac string) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, mac))
	if offer == nil {
		t.Fatal("no offer")
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := st.do(t, req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST: %v, want an ACK", ack)
	}
	return ack
}

// A NAK ends the exchange's span as failed, saying why; a DISCOVER
// without its REQUEST records nothing.
func TestExchangeSpanNAK(t *testing.T) {
	rec := tracetest.Start(t)
	st := newSite(t, true)
	tp := st.traceMachine(t, rec)
	if offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC)); offer == nil {
		t.Fatal("no offer")
	}
	nak, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, knownMAC,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.9.9.9")))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("REQUEST for another subnet's address: %v, want a NAK", nak)
	}
	spans := rec.Named(t, tp, tracing.SpanDHCP)
	if len(spans) != 1 {
		t.Fatalf("%d dhcp.exchange spans, want 1 (the REQUEST's; the DISCOVER alone records nothing): %+v", len(spans), spans)
	}
	if s := spans[0]; s.Attrs[attrMessages] != "REQUEST NAK" || s.Error != "NAK: requested address is not on this subnet" {
		t.Errorf("NAK's span: messages %q, error %q", s.Attrs[attrMessages], s.Error)
	}
}

// A proxyDHCP server traces each boot answer to a traced machine on its
// own (it sees no lease), with the boot file it gave; it answers a
// non-booting client nothing and records nothing for it.
func TestProxyExchangeSpans(t *testing.T) {
	rec := tracetest.Start(t)
	st := newSite(t, false)
	tp := st.traceMachine(t, rec)
	st.srv.cfg.Proxy = true
	if r, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC)); r != nil {
		t.Fatal("proxy answered a client that is not booting")
	}
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))))
	if offer == nil {
		t.Fatal("no proxy offer")
	}
	spans := rec.Named(t, tp, tracing.SpanDHCP)
	if len(spans) != 1 {
		t.Fatalf("%d dhcp.exchange spans, want 1: %+v", len(spans), spans)
	}
	if s := spans[0]; s.Attrs[attrMessages] != "DISCOVER OFFER" || s.Attrs[attrBootFile] != "undionly.kpxe" ||
		s.Attrs[tracing.AttrMachine] != "m1" || s.Parent != tracetest.SpanID(tp) {
		t.Errorf("proxy offer's span: %+v", s)
	}
}

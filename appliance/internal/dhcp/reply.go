package dhcp

import (
	"context"
	"log/slog"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// newReply is dhcpv4.NewReplyFromRequest without its random transaction
// id, which the reply overwrites with the request's anyway: the library
// draws it through a context with a timeout, a timer and a getrandom
// call, for every reply.
func newReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       make(dhcpv4.Options, 16),
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		d.OpCode = dhcpv4.OpcodeBootRequest
	}
	if d.ClientHWAddr == nil {
		d.ClientHWAddr = make(net.HardwareAddr, 6)
	}
	if d.GatewayIPAddr == nil {
		d.GatewayIPAddr = net.IPv4zero
	}
	// RFC 3046 and RFC 6842: the relay's information and the client's
	// identifier go back as they came.
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.GetOneOption(code); v != nil {
			d.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	for _, mod := range mods {
		mod(d)
	}
	return d
}

// requestAttrs is a handler that keeps a request's attributes (its MAC,
// transaction id and message type) aside and adds them only to records
// that are logged: slog.Logger.With would format them for every packet,
// though most packets log nothing at the levels a site runs.
type requestAttrs struct {
	slog.Handler
	attrs []slog.Attr
}

// requestLogger is log with attrs added to what it logs.
func requestLogger(log *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(&requestAttrs{Handler: log.Handler(), attrs: attrs})
}

func (h *requestAttrs) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h *requestAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.Handler.WithAttrs(append(append([]slog.Attr(nil), h.attrs...), attrs...))
}

func (h *requestAttrs) WithGroup(name string) slog.Handler {
	return h.Handler.WithAttrs(h.attrs).WithGroup(name)
}

// xidValue logs a transaction id as hex, formatted only if logged.
type xidValue dhcpv4.TransactionID

func (x xidValue) LogValue() slog.Value {
	return slog.StringValue(dhcpv4.TransactionID(x).String())
}

// typeValue logs a message type by name, formatted only if logged.
type typeValue dhcpv4.MessageType

func (t typeValue) LogValue() slog.Value {
	return slog.StringValue(dhcpv4.MessageType(t).String())
}

// Package tracing is Outpost's distributed tracing, on OpenTelemetry:
// one trace per order, from central's API through the sync message to
// the site, the site's BMC jobs, the DHCP exchange of the machine's MAC,
// the fetches of its boot files and iPXE script, the installer's agent
// and each of its actions, to the installed OS's first metadata request.
//
// Every program (centrald, applianced, outpost-agent) starts a Provider
// with Start. Spans are kept where they were recorded, with no collector
// needed: an exporter writes each finished batch to a Store, a bounded
// bbolt file beside the program's store (never a Raft write per span);
// the agent, which has no disk of its own, sends its spans to the
// appliance that booted it instead. When OTEL_EXPORTER_OTLP_ENDPOINT is
// set, spans are exported by OTLP over HTTP as well.
//
// A trace crosses processes as a W3C traceparent string (Traceparent,
// WithRemoteParent): in the sync protocol's order, in the workflow the
// site keeps, on the installer's kernel command line.
//
// # Span names
//
// The waterfall of a provision (Phases) is read from span names, which
// are therefore part of this package's contract (the Span* constants):
// each service names its spans with them and puts the order, site and
// machine in the attributes named by the Attr* constants.
package tracing

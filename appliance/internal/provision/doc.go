// Package provision is the appliance's side of the in-memory installer:
// the credentials the installer is booted with, the agent API it talks to
// (agentproto describes the contract) and the timer that times out
// workflows.
//
// # Credentials
//
// Every request of the agent carries a credential. A workflow's credential
// is an HMAC, under a key derived from the site key, of the workflow's id
// and the nonce drawn when it was created: any appliance of the site can
// mint it (the iPXE script puts it on the installer's kernel command line)
// and check it, and nothing about it is stored. It opens one workflow,
// and only while that workflow is its machine's current one: a new
// workflow for the machine (a new id or the same id made again, with a
// new nonce either way) leaves older credentials opening nothing.
//
// A discovery credential lets an installer booted for a MAC the site does
// not know report that machine's hardware, and then run the workflow an
// operator creates for it. It names the MAC, the address it was given to,
// an expiry (httpboot's DiscoveryTTL after it was minted) and a random
// nonce, all under the signature: it is refused once expired, and from
// any other address. The format of releases before it (an HMAC of the MAC
// alone, which never expired) is refused as outdated.
//
// # Bound to the machine's address
//
// A credential is only as strong as the secrecy of the script that
// carries it, and scripts are fetched without authentication (firmware
// has none to give). So a credential is given to, and accepted from, the
// address of its machine alone (Binding):
//
//   - BindLease, where the appliance's DHCP server hands out the boot
//     network's addresses: an address with an active lease of one of the
//     machine's MACs (Admits; a reserved address is leased too). A
//     discovery credential is given only to the address leased to its MAC.
//     Requests from any other address get no credential in the script and
//     403 from the agent API.
//   - BindFirstClaim, where the appliance leases nothing (proxyDHCP, or
//     another DHCP server on the network): the appliance cannot know who
//     holds which address, so the first address to claim a workflow's
//     credential after the workflow began (by fetching the machine's
//     script, or by opening the workflow with a discovery credential) is
//     recorded through the site's log (site.BindWorkflow, an event
//     "workflow.bound" naming it), and from then on only that address
//     gets and uses it. A discovery credential is given to whoever asks,
//     bound to the asking address. This is trust on first use: it keeps
//     out anyone who comes after the machine, and a claim that came first
//     shows, both in the timeline and as the machine's own script saying
//     the credential is bound to another address. Sites that need more
//     lease their addresses from the appliance.
//
// Identification by address is as strong as the boot network's guard
// against address spoofing, as for the metadata service: the boot
// network should be one where the machines' owners cannot forge
// addresses (DHCP snooping and source guard on the switches).
//
// Every refused request is counted in outpost_agent_refused_total by
// reason (Collectors), and logged at debug level, with one warning at
// most once a minute per source, so that a flood of forgeries cannot flood
// the log. Credentials are never logged.
//
// # Spans
//
// The agent sends the spans it recorded (agentproto.PathSpans) with its
// credential, which opens only its workflow's trace: the trace of the
// workflow's traceparent (store.Workflow.Traceparent, which the agent's
// view of the workflow shows it). A span of any other trace, or any span
// for a workflow without one, refuses the request (403, counted as
// outpost_agent_refused_total{reason="trace"}); a malformed one (package
// tracing's Span.Validate) refuses it too (400); either way nothing of
// the request is kept. Spans are kept on the node that received them
// (Config.Spans, the node's span store), never through Raft: the site
// gathers them from every node.
//
// # Discovery
//
// A hardware report creates the machine of a MAC the site does not know.
// Creations are limited per subnet of the reporting address (the site's
// subnet that holds it, else its /24 or /64) by a token bucket:
// DefaultDiscoveryBurst at once, then one every DefaultDiscoveryEvery
// (Config), so that a flood cannot fill the store; a report over the
// limit gets 429 with Retry-After, and the agent retries it. Reports on
// known machines are not limited.
//
// Reports become AdvanceWorkflow commands through Raft, timestamped by the
// appliance that receives them; a follower forwards them to the leader.
// Reads are linearizable, so an agent never acts on a state older than a
// report it already had acknowledged.
package provision

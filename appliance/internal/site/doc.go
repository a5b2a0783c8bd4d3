// Package site is the site's state machine and its proposer: the rules of
// everything a site does to its machines, in one room.
//
// Every change of a site is a command (command.go: one append-only list
// of types, with their payloads). The Raft node (internal/raftnode, run
// by package cluster) carries commands to StateMachine on every node of
// the site, which applies them to the store (package store) with the
// site's rules: apply_object.go (objects stored as they come),
// apply_machine.go (discovery, the BMC's certificate), apply_lease.go, apply_workflow.go,
// apply_order.go, apply_job.go, apply_sync.go (central's desired state,
// the outbox), apply_artifact.go (the record of each artifact the images
// point at, and which nodes hold it), apply_wait.go (orders that wait for
// their artifacts), apply_legacy.go (commands of earlier releases, for
// replay).
// Address choice is the allocator's (package ipam, through address.go),
// for DHCP and for orders alike.
//
// Edges (the API, DHCP, the agent API, the BMC job runner, the sync
// client, the workflow timer) never build commands: they call a typed
// method of Proposer (PutMachine, PlaceOrder, CommitLease, Report,
// StartJob, ApplyDesired, ...), through a small interface of their own.
// The proposer does every preparation once: it seals secrets with the
// site key, draws the nonce a workflow's installer credential derives
// from, fills in the node's boot URL, stamps the time, and names the
// actor: the token name the context carries (WithActor), or the part of
// the site the method is for.
//
// # Invariants
//
//   - Apply is deterministic: it reads no clock, no randomness and no key
//     (deptest checks the clock); the proposer puts them into the command.
//   - Each group of entries is applied in one store transaction that also
//     records the last applied index; an entry at or below it is a replay
//     and changes nothing.
//   - A command the rules refuse (a version conflict, a MAC another
//     machine owns, an address another MAC holds, an order for a machine
//     without a BMC) changes nothing and returns an *errs.Error as its
//     Result's Err; apply functions check everything before they write.
//   - A command that does not decode, or whose type is unknown and not
//     marked ignorable, stops the node: it was written by a newer release,
//     and skipping it would fork the replicas.
//   - A command's meaning never changes: new meaning gets a new type, and
//     the old type keeps its old rules for the logs that hold it.
//   - A type newer than LastUnreported is proposed only once every
//     member's record reports applying it (store.Member.Commands, skew.go):
//     in a rolling upgrade a new leader never commits a command an old
//     node would stop at.
//   - A subnet stored by PutSubnet overlaps no other, and is one the DHCP
//     server can serve (apply_subnet.go, store.Subnet.CheckServable).
//   - No address is held by two MACs (apply_lease.go), and an order, its
//     workflow, its address and its jobs are created all or nothing.
//   - An event is never deleted before central has acknowledged it.
//   - Every event names who made the change that recorded it (Event.By):
//     the actor the command carries (the proposer puts it there: an API
//     token's name, or the part of the site; actor.go); a command of a
//     release before actors carries none, and records none.
//   - Every change of what central's fleet model holds of a machine (its
//     state and reason, hostname, MACs, tags, power, workflow, last
//     order) is an event that says the new value (fleet.go): central
//     derives each machine from the events alone, exactly.
//   - The artifact records follow the images: every command that puts or
//     deletes images (PutImage, DeleteImage, ApplyDesired) reconciles
//     them at the command's time, so a digest an image points at has a
//     record (no node holding it: missing) and one no image points at
//     is unreferenced from then; only the nodes' reports
//     (RecordArtifact, ForgetArtifact) change who holds one.
//   - An order that needs an artifact no node holds (its image is
//     content-addressed, or the installer's kernel or initrd is) waits:
//     it has no workflow, job or address until the first node holds the
//     artifact, and then starts in the same apply, in the order the
//     waiting orders were placed. Commands of releases before artifacts
//     (PutOrderV1, ApplyDesiredV1) neither wait nor keep records.
//   - What the site knows of a BMC's certificate (the accepted one, the
//     last one refused) changes only through RecordBMCCertificate and
//     AcceptBMCCertificate: every put of a machine, by a client or by
//     central, keeps it, read at apply.
//
// # Where things go
//
//   - A new command: a type at the end of the list in command.go, its
//     payload beside it, its apply function in apply_<entity>.go,
//     registered in table (statemachine.go), and a typed proposer method.
//   - A new rule: in the apply function of the entity it governs; shared
//     storage primitives (an index, a bucket) in package store.
//   - A new edge: its own package, declaring the interface of proposer
//     methods it calls (see dhcp.Leases, jobs.Site); the app passes it a
//     cluster.Site.
package site

// Package store keeps all of central's state in one bbolt file: sites
// (their credentials only as SHA-256 hashes), the API tokens with their
// roles, each site's desired state and its revisions (each naming who
// made it), the events each site sent, the members of a replicated
// central, the catalogue of artifacts central publishes to its sites
// (artifact.go), and the fleet model derived from the sites' events
// (apply_fleet.go, fleet.go, fleetindex.go). It is also central's state
// machine: every change is a command applied by one deterministic
// function.
//
// # Where things go
//
// A new change of the store is a new command: a number at the end of the
// list in command.go with its payload struct, an apply function in the
// apply_<entity>.go of what it changes (apply_site.go, apply_desired.go,
// apply_events.go, apply_member.go, apply_token.go, apply_artifact.go,
// apply_catalogue.go, apply_fleet.go, apply_spans.go),
// and a typed method
// that builds the payload (the proposer side: it stamps the time, seals,
// validates what needs no state). Reads are methods of the entity's file
// (site.go, desired.go, event.go, member.go, token.go, artifact.go,
// catalogue.go, fleet.go). The fleet's derivation itself is package
// fleet's (pure: the store calls it in apply); its in-memory index is
// here (fleetindex.go), since it follows the commits.
//
// # Invariants
//
//   - Every change is a command (package command: a type byte and a JSON
//     payload) applied through one table. A single central applies it at
//     once in its own transaction, or with the others that arrived while
//     the last transaction committed (group commit: one fsync for many
//     writers; the applied index does not move); a
//     replicated one proposes it to its Raft log (SetProposer, package
//     internal/raftnode) and every node applies the committed log with
//     Apply (the store is a raftnode.Applier).
//   - Apply applies a group of committed entries in one transaction that
//     also records the highest index applied, so a restart replays
//     nothing twice: an entry at or below the applied index is skipped.
//   - Apply is deterministic: times, hashes and sealed passwords are in
//     the payload, put there by the proposing method; apply reads no
//     clock and draws nothing random.
//   - An existing file is read page by page before it is opened for
//     writing (internal/boltfile): an empty, truncated or damaged file is
//     an ErrCorrupt error naming it, never a new store or a crash.
//   - A refused command (an *errs.Error, or the *syncproto.Error a site's
//     batch earned) has changed nothing: each apply function checks before
//     it writes. The refusal is the command's result, not an error; an
//     error is a failure of the store itself, and stops the node.
//   - A command of an unknown type stops the node (it was written by a
//     newer central) unless its type is marked command.IgnoreUnknown,
//     which the node skips. Skipping is only for a node replaying a log
//     it cannot change (an old backup, a downgrade): a replicated
//     central does not commit a type above LastUnreported until every
//     member of its Raft configuration says it applies it (skew.go,
//     CommandCheck, checked by package cluster on the leader), so during
//     a rolling upgrade a change an old node would skip is refused (503,
//     naming the node), never acknowledged and then missing from that
//     node. Type 123 ('{') is a command of release b482c18, JSON, applied
//     with that release's semantics (legacy_b482c18.go).
//   - Each change of a site's desired state (an order placed, a machine,
//     image or template put or deleted) is one command that updates the
//     current desired objects, appends a revision holding the change and
//     records the new latest revision on the site. Revisions are numbered
//     densely from 1 per site; the one exception is AdvancePast, which
//     skips numbers when a site has applied revisions central no longer
//     knows (central restored from an old backup): its revision is a full
//     snapshot, so nothing is lost by the gap.
//   - Only a site's latest keepRevisions revisions are kept; a site
//     further behind gets a full snapshot of the latest (NextRevisions).
//   - A site's events are stored exactly once and in order: StoreEvents
//     reads the highest sequence stored (Site.StoredSeq), keeps only the
//     events after it (syncproto.Events.Unstored), appends them and
//     records the new highest in the same transaction.
//   - The cursors a site's sync status shows (latest revision, acked
//     revision, stored sequence) live in the site's record, written in the
//     same transaction as what they count.
//   - Secrets: site credentials and API tokens are stored only as
//     hashes; machines' BMC passwords are sealed with central's key
//     (internal/seal, SealStable, so the same password seals to the same
//     bytes) before they are proposed, and opened only to send them to
//     their site.
//   - The catalogue of artifacts (bucket "artifacts") holds one record
//     per digest: its size, name, media type, source (an upload, or an
//     upstream URL), who made it and when, the central nodes that hold
//     its verified bytes, and the bytes sent of it to each site (also
//     summed on each site's record). A node is recorded as a holder
//     only once its copy is whole and verified (RecordArtifact). An
//     artifact a site's desired image names (an OS image that is its
//     sha256 alone, an installer's "sha256:" kernel or initrd) cannot
//     be deleted, and a desired image cannot name one the catalogue
//     does not hold: both checks are in apply, so no interleaving of a
//     delete and a put lets an image name a missing artifact.
//   - The catalogue of images (bucket "catalogue") holds one record per
//     name: its syncproto.Image, its placement (sites listed, labels a
//     site must all have) and the sites it is placed on now, each with
//     the revision that put it there. Placement is desired state, written
//     in the same apply: putting an image writes it into every matching
//     site's desired state (a revision for each site whose object
//     changes) and deletes it from the sites it left; setting a site's
//     labels (or creating a labelled site) re-evaluates every image for
//     that site in one revision; deleting an image removes it from every
//     site it was on. Origin is the record's placed sites: the catalogue
//     never writes a site's own image (a name it would collide with is
//     refused, naming the site, before anything is written), and a
//     site's own put or delete of a placed image is refused. An artifact
//     a catalogue image names cannot be deleted.
//   - The fleet model (bucket "fleet": site id -> machine id -> a
//     fleet.Machine) is derived in the apply that changes what it is
//     derived from, never apart from it: StoreEvents folds the events
//     it stores, in order and each once, into their machines' records
//     (fleet.Apply) in the same transaction, and indexes each machine's
//     events (bucket "machine_events") for its timeline; putting an
//     order makes it its machine's last order, placed, by the
//     revision's actor; a site's acknowledgement of a revision delivers
//     the orders it carries; ResetEvents forgets the site's records with
//     its events (they come again with them). So the records are as
//     replicated, deterministic and durable as the events, and equal to
//     what the site itself holds of each machine.
//   - A site's link (which central node holds its session, cmdSetLink)
//     and its report of itself (cmdReportSite) live on its record; the
//     hub records a report at most every 30 s unless it changed, not at
//     every heartbeat. A node ends only its own session's link.
//   - The fleet's in-memory index (fleetindex.go) holds every record and
//     each site's labels; it is loaded when the store opens and after a
//     Restore, and takes each transaction's changed records once it has
//     committed, so a read of it never sees an uncommitted change. Its
//     records are never modified in place (fleet.Apply copies), so a
//     reader may keep one. Its version grows at each change (and across
//     a restart or Restore), and Fleet.Changed is closed at the next.
//   - The spans of traces (bucket "spans": trace id + span id -> a
//     tracing.Span; bucket "span_order" numbers them as added) are
//     central's own and its sites', kept through the log like every
//     change, so they survive a failover: one command per batch of spans
//     (cmdAddSpans, up to 1,000), never one per span. A span is kept once
//     by its trace and span id; beyond a bound carried in the command
//     (MaxSpans) the oldest are dropped in the same apply. A trace whose
//     provision's waterfall first holds its first boot's metadata request
//     is marked (a key of span id zero) and reported once, in that
//     apply's result, to the node that proposed it. The new spans of a
//     machine's last order's trace that name it (outpost.site and
//     outpost.machine, or an installer's node) are counted on its
//     record in the same apply (fleet.SpansKept), so the fleet changes
//     as they arrive.
//   - Snapshots are bbolt files streamed from a read transaction; Restore
//     swaps in a whole file under the exclusive lock.
//
// Watchers learn of a site's new revisions and events, and of changes of
// the catalogue and of the fleet, through channels closed after each
// commit (WatchDesired, WatchEvents, WatchArtifacts, Fleet.Changed),
// without polling.
package store

package site

import (
	"context"

	"github.com/outposthq/outpost/internal/access"
)

// Who made a change. Every command the proposer builds names its actor
// (the By field of its payload), and the events the command records carry
// it (store.Event.By), so that a machine's timeline says who pressed the
// button. The actor is the name of the API token a change came with
// (WithActor), or else the part of the system that made it: the proposer
// method names it, as only that part calls it. Commands of releases
// before actors have none, and their events none either, on replay as
// when they were first applied.
//
// A node of the release before actors, in a cluster being upgraded,
// applies a command's events without its actor (it does not know the
// field): its copies of those events lack By until it is replaced.

// The parts of the site that make changes nobody typed.
var (
	// ActorSite is the site itself, when no part is more precise.
	ActorSite = access.BySite
	// ActorCentral is central: the desired state it sends, applied by
	// the sync client.
	ActorCentral = access.ByCentral
	ActorDHCP    = access.SitePart("dhcp")  // the DHCP server's leases
	ActorJobs    = access.SitePart("jobs")  // the BMC job runner and the power poller
	ActorAgent   = access.SitePart("agent") // an installer's reports and discoveries
	ActorTimer   = access.SitePart("timer") // the workflow timer: timeouts, deadlines
	ActorSync    = access.SitePart("sync")  // the sync client's reports of the link to central
	// ActorArtifacts is the nodes' artifact replicators: what each
	// holds, and the leader's pulls.
	ActorArtifacts = access.SitePart("artifacts")
)

type actorKey struct{}

// WithActor returns ctx naming who makes the changes proposed with it:
// the API puts its caller's token name there.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// actor is the actor ctx names, or def (the part of the site that
// proposes) when it names none.
func actor(ctx context.Context, def string) string {
	if name, ok := ctx.Value(actorKey{}).(string); ok && name != "" {
		return name
	}
	return def
}

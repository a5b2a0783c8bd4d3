package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/raftnode"
)

// During a rolling upgrade the leader may run a newer release than some
// of its members. Before it proposes a command type above
// store.LastUnreported, it asks every member of the Raft configuration
// which types it applies (GET CommandsPath, on the Raft port), and
// refuses the change with 503 if one does not apply it: an older member
// would skip (or stop at) the entry, and what the leader acknowledged
// would be gone once that member leads.

// CommandsPath is where every member answers its members which command
// types it applies: {"commands": store.HighestCommand()}. A member of a
// release before it (store.LastUnreported's) answers 404.
const CommandsPath = PeerPrefix + "commands"

// CommandsAnswer is the body of GET CommandsPath: the highest command
// type the member applies.
type CommandsAnswer struct {
	Commands command.Type `json:"commands"`
}

// CommandsHandler answers GET CommandsPath with this release's highest
// command type. The app serves it on the Peer handler.
func CommandsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, CommandsAnswer{Commands: store.HighestCommand()})
	})
}

// askTimeout bounds how long the leader waits for a member's answer.
const askTimeout = 3 * time.Second

// memberCommands is the leader's knowledge of which command types each
// member applies, as they answered since this node became leader
// (epoch): a member's release only goes up, so an answer that covers a
// type is not asked again, and a member that does not answer now keeps
// its last answer. A member never heard from since this node led is
// unknown, and refused.
type memberCommands struct {
	self    string
	servers func() ([]raftnode.Server, error)
	epoch   func() uint64
	ask     func(ctx context.Context, addr string) (command.Type, error)
	log     *slog.Logger

	mu    sync.Mutex
	at    uint64                  // the epoch the answers were heard in
	heard map[string]command.Type // member id -> the highest type it applies
}

// check returns nil if every member of the Raft configuration applies
// command type t, asking those not known to; else the refusal (503)
// naming the first that does not, or that never answered.
func (m *memberCommands) check(ctx context.Context, t command.Type) error {
	servers, err := m.servers()
	if err != nil {
		m.log.Warn("reading the raft configuration to check the members' command types", "err", err)
		return unavailablef("central cannot read its members to check that each applies %s; retry", store.CommandName(t))
	}
	slices.SortFunc(servers, func(a, b raftnode.Server) int { return strings.Compare(a.ID, b.ID) })
	known := m.refresh(ctx, servers, t)
	for _, s := range servers {
		if s.ID == m.self {
			continue
		}
		highest, ok := known[s.ID]
		switch {
		case !ok:
			return unavailablef("central cannot tell whether node %s applies %s (it has not answered since this node leads): retry once every node runs this release and answers",
				s.ID, store.CommandName(t))
		case highest < t:
			return unavailablef("central is mid-upgrade: node %s does not apply %s yet (its release applies command types up to %d, %s are type %d); retry once every node runs this release",
				s.ID, store.CommandName(t), highest, store.CommandName(t), t)
		}
	}
	return nil
}

// refresh asks, all at once, the members not known to apply t, and
// returns what is known of each member after their answers.
func (m *memberCommands) refresh(ctx context.Context, servers []raftnode.Server, t command.Type) map[string]command.Type {
	epoch := m.epoch()
	m.mu.Lock()
	if m.at != epoch || m.heard == nil {
		m.at, m.heard = epoch, map[string]command.Type{}
	}
	var asks []raftnode.Server
	for _, s := range servers {
		if highest, ok := m.heard[s.ID]; s.ID != m.self && (!ok || highest < t) {
			asks = append(asks, s)
		}
	}
	m.mu.Unlock()
	answers := make([]command.Type, len(asks))
	failed := make([]error, len(asks))
	var wg sync.WaitGroup
	for i, s := range asks {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, askTimeout)
			defer cancel()
			answers[i], failed[i] = m.ask(actx, s.Addr)
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range asks {
		switch {
		case failed[i] != nil:
			m.log.Warn("asking a member which command types it applies", "member", s.ID, "err", failed[i])
		case m.at == epoch:
			m.heard[s.ID] = answers[i]
		}
	}
	return maps.Clone(m.heard)
}

// unavailablef is a refusal that retrying later may lift: 503.
func unavailablef(format string, args ...any) *errs.Error {
	return &errs.Error{Code: httpapi.CodeUnavailable, Message: fmt.Sprintf(format, args...)}
}

// askCommands asks the member at Raft address addr which command types
// it applies (GET CommandsPath); a 404 is a member of a release before
// the question, which applies those up to store.LastUnreported.
func (n *Node) askCommands(ctx context.Context, addr string) (command.Type, error) {
	return askCommandsWith(ctx, n.raft.HTTPClient(), addr)
}

// askCommandsWith is askCommands through client.
func askCommandsWith(ctx context.Context, client *http.Client, addr string) (command.Type, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+CommandsPath, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var a CommandsAnswer
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&a); err != nil {
			return 0, fmt.Errorf("%s%s: %w", addr, CommandsPath, err)
		}
		return a.Commands, nil
	case http.StatusNotFound:
		return store.LastUnreported, nil
	}
	return 0, fmt.Errorf("%s%s: answered %s", addr, CommandsPath, resp.Status)
}

// checkCommands is the store's command check (store.SetCommandCheck):
// on the leader, memberCommands.check; elsewhere nothing, as the
// proposal fails anyway (ErrNotLeader).
func (n *Node) checkCommands(ctx context.Context, t command.Type) error {
	if !n.raft.IsLeader() {
		return nil
	}
	return n.commands.check(ctx, t)
}

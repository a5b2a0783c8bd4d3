package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/raftnode"
)

// fakeMembers are the members a memberCommands asks: what each answers
// (an error: no answer), and who was asked.
type fakeMembers struct {
	mu      sync.Mutex
	answers map[string]any // addr -> command.Type or error
	asked   []string
	epoch   uint64
}

func (f *fakeMembers) ask(_ context.Context, addr string) (command.Type, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, addr)
	switch a := f.answers[addr].(type) {
	case command.Type:
		return a, nil
	case error:
		return 0, a
	}
	return 0, fmt.Errorf("%s: connection refused", addr)
}

// set sets what addr answers from now on, and forgets who was asked.
func (f *fakeMembers) set(addr string, answer any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[addr] = answer
	f.asked = nil
}

func (f *fakeMembers) askedNow() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	slices.Sort(f.asked)
	return slices.Clone(f.asked)
}

// newFakeCheck is c1's memberCommands, leading c1, c2, c3 (whose Raft
// addresses are their ids).
func newFakeCheck(f *fakeMembers) *memberCommands {
	servers := []raftnode.Server{{ID: "c3", Addr: "c3", Voter: true}, {ID: "c1", Addr: "c1", Voter: true}, {ID: "c2", Addr: "c2", Voter: true}}
	return &memberCommands{self: "c1", log: slog.New(slog.DiscardHandler), ask: f.ask,
		servers: func() ([]raftnode.Server, error) { return slices.Clone(servers), nil },
		epoch:   func() uint64 { f.mu.Lock(); defer f.mu.Unlock(); return f.epoch }}
}

// wantRefused fails unless err is a 503 refusal whose message holds
// every one of parts.
func wantRefused(t *testing.T, err error, parts ...string) {
	t.Helper()
	e, ok := errs.AsError(err)
	if !ok || httpapi.Status(e.Code) != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a 503 refusal", err)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Fatalf("refusal %q does not say %q", e.Message, p)
		}
	}
}

// The leader's check of its members' command types: each member not
// known to apply the type is asked (never itself); one whose release
// does not apply it is named with its highest type, and the change is
// refused; an answer that covers the type is kept, so the members are
// not asked again; a member that does not answer keeps its last answer,
// and one never heard from since this node leads is refused as unknown.
func TestMemberCommandsCheck(t *testing.T) {
	ctx := t.Context()
	f := &fakeMembers{answers: map[string]any{"c2": command.Type(28), "c3": command.Type(29)}, epoch: 1}
	m := newFakeCheck(f)

	wantRefused(t, m.check(ctx, 29), "central is mid-upgrade: node c2 does not apply annotations yet", "up to 28", "retry once every node runs this release")
	if got := f.askedNow(); !slices.Equal(got, []string{"c2", "c3"}) {
		t.Errorf("asked %v, want c2 and c3 (never itself)", got)
	}
	// c2 is still old: asked again (c3 is known), refused again.
	f.set("c2", command.Type(28))
	wantRefused(t, m.check(ctx, 29), "node c2", "up to 28")
	if got := f.askedNow(); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("asked %v, want c2 alone (c3's answer covers 29)", got)
	}
	// c2 upgraded.
	f.set("c2", command.Type(29))
	if err := m.check(ctx, 29); err != nil {
		t.Fatalf("every member applies 29: %v", err)
	}
	// Known now: nobody is asked, even if nobody answers.
	f.set("c2", errors.New("connection refused"))
	f.set("c3", errors.New("connection refused"))
	if err := m.check(ctx, 29); err != nil || len(f.askedNow()) != 0 {
		t.Fatalf("with every member known to apply 29: %v, asked %v", err, f.askedNow())
	}
	// A newer type than they said: asked, no answer, their last answer
	// stands (29 < 30).
	wantRefused(t, m.check(ctx, 30), "node c2 does not apply commands of type 30 yet", "up to 29")
	if got := f.askedNow(); !slices.Equal(got, []string{"c2", "c3"}) {
		t.Errorf("asked %v for type 30, want c2 and c3", got)
	}
	// This node leads again (another epoch): what it heard before
	// counts no more; a member that does not answer is unknown.
	f.mu.Lock()
	f.epoch++
	f.mu.Unlock()
	f.set("c2", command.Type(29))
	wantRefused(t, m.check(ctx, 29), "cannot tell whether node c3 applies annotations", "has not answered since this node leads")
	f.set("c3", command.Type(29))
	if err := m.check(ctx, 29); err != nil {
		t.Fatalf("both answering 29 again: %v", err)
	}
}

// A member of a release that does not answer at CommandsPath (404)
// applies the types up to store.LastUnreported; this release answers
// its highest type; anything else is no answer.
func TestAskCommands(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.Handler
		want    command.Type
		err     bool
	}{
		{"this release", CommandsHandler(), store.HighestCommand(), false},
		{"an older release", http.NotFoundHandler(), store.LastUnreported, false},
		{"a node that does not lead", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}), 0, true},
		{"garbage", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{")) }), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(tc.handler)
			defer srv.Close()
			got, err := askCommandsWith(t.Context(), srv.Client(), strings.TrimPrefix(srv.URL, "https://"))
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("got %d, %v; want %d (error: %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

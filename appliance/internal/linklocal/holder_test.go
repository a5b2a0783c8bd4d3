package linklocal

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/testwait"
)

// fakeLinks records what a Holder asks of the kernel.
type fakeLinks struct {
	mu        sync.Mutex
	held      map[string]bool
	announced map[string]int
	failHold  error
	refused   int
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{held: map[string]bool{}, announced: map[string]int{}}
}

func (f *fakeLinks) Hold(ifname string, p netip.Prefix, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failHold != nil {
		f.refused++
		return f.failHold
	}
	f.held[ifname+" "+p.String()] = true
	return nil
}

func (f *fakeLinks) Drop(ifname string, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, ifname+" "+p.String())
	return nil
}

func (f *fakeLinks) Announce(ifname string, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced[ifname+" "+a.String()]++
	return nil
}

func (f *fakeLinks) holding() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for k := range f.held {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func (f *fakeLinks) announcements(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.announced[key]
}

func (f *fakeLinks) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func (f *fakeLinks) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failHold = err
}

// loopbackListen listens on loopback instead of the metadata address,
// and reports the address it got.
type loopbackListen struct {
	mu    sync.Mutex
	asked []string
	addr  string
}

func (l *loopbackListen) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, address)
	l.addr = ln.Addr().String()
	return ln, nil
}

func (l *loopbackListen) current() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

// serveHandler serves h as the appliance does (httpserve).
func serveHandler(h http.Handler) func(context.Context, net.Listener) error {
	return func(ctx context.Context, ln net.Listener) error {
		return httpserve.New(httpserve.Config{Name: "test", Handler: h}).Serve(ctx, ln, nil)
	}
}

func startHolder(t *testing.T, links Links, ll *loopbackListen) (*Holder, func()) {
	t.Helper()
	h, err := New(Config{
		Interfaces: []string{"eth0", "eth1"},
		Serve: serveHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "metadata")
		})),
		Lifetime: 60 * time.Millisecond,
		Links:    links,
		Listen:   ll.listen,
		Log:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	return h, stop
}

func get(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/latest/meta-data/instance-id")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

var both = []string{"eth0 169.254.169.254/32", "eth1 169.254.169.254/32"}

func TestHolderFollowsLeadership(t *testing.T) {
	links, ll := newFakeLinks(), &loopbackListen{}
	h, stop := startHolder(t, links, ll)
	defer stop()

	h.SetLeader(true)
	testwait.For(t, "the address held and served", 10*time.Second, func() bool {
		return len(links.holding()) == 2 && ll.current() != ""
	})
	if diff := cmp.Diff(both, links.holding()); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if body, err := get(ll.current()); err != nil || body != "metadata" {
		t.Errorf("GET on the held address = %q, %v; want the handler's answer", body, err)
	}
	// Announced at once, then on the next renewals, and no more.
	testwait.For(t, "three announcements", 10*time.Second, func() bool {
		return links.announcements("eth0 169.254.169.254") == announcements
	})
	served := ll.current()

	h.SetLeader(false)
	testwait.For(t, "the address given up", 10*time.Second, func() bool { return len(links.holding()) == 0 })
	if _, err := get(served); err == nil {
		t.Error("a follower still serves the metadata address")
	}
	if n := links.announcements("eth1 169.254.169.254"); n != announcements {
		t.Errorf("eth1 announced %d times, want %d", n, announcements)
	}
	if diff := cmp.Diff([]string{"169.254.169.254:80"}, ll.asked); diff != "" {
		t.Errorf("listened on (-want +got):\n%s", diff)
	}
}

func TestHolderRetriesAndReleasesAtStop(t *testing.T) {
	links, ll := newFakeLinks(), &loopbackListen{}
	links.setFail(errors.New("operation not permitted"))
	h, stop := startHolder(t, links, ll)

	h.SetLeader(true)
	// Refused: nothing held, nothing served, until the kernel agrees.
	testwait.For(t, "a refusal", 10*time.Second, func() bool { return links.refusals() > 0 })
	if ll.current() != "" {
		t.Error("served the address it could not take")
	}
	links.setFail(nil)
	testwait.For(t, "a retry after the refusal", 10*time.Second, func() bool { return len(links.holding()) == 2 })
	testwait.For(t, "the address served", 10*time.Second, func() bool { return ll.current() != "" })
	stop()
	if got := links.holding(); len(got) != 0 {
		t.Errorf("after Run ended, still held: %v", got)
	}
	if _, err := get(ll.current()); err == nil {
		t.Error("the address is still served after Run ended")
	}
}

func TestHolderDropsLeftoversAtStart(t *testing.T) {
	links, ll := newFakeLinks(), &loopbackListen{}
	links.Hold("eth0", netip.PrefixFrom(Addr, 32), time.Minute)
	_, stop := startHolder(t, links, ll)
	defer stop()
	testwait.For(t, "the leftover address removed", 10*time.Second, func() bool { return len(links.holding()) == 0 })
	if ll.current() != "" {
		t.Error("a node that does not lead serves the metadata address")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	h := serveHandler(http.NotFoundHandler())
	for name, cfg := range map[string]Config{
		"no interfaces": {Serve: h},
		"no server":     {Interfaces: []string{"eth0"}},
		"bad port":      {Interfaces: []string{"eth0"}, Serve: h, Port: 70000},
		"tiny lifetime": {Interfaces: []string{"eth0"}, Serve: h, Lifetime: time.Microsecond},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestAnnouncement(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	want := []byte{
		0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, request
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 169, 254, 169, 254, // sender
		0, 0, 0, 0, 0, 0, 169, 254, 169, 254, // target
	}
	if diff := cmp.Diff(want, announcement(mac, Addr)); diff != "" {
		t.Errorf("announcement (-want +got):\n%s", diff)
	}
}

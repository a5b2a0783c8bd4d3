package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// DefaultRediscoverAfter is how many requests in a row may go unanswered
// before the agent looks for its appliance again (Config.RediscoverAfter).
const DefaultRediscoverAfter = 3

// appliance is where the agent finds the appliance: outpost.url, whose
// host changes when the node it named stops answering and DHCP names
// another (a site of several nodes lost its leader). It is safe for
// concurrent use.
type appliance struct {
	find  func(ctx context.Context) (string, error) // nil: never looks again
	after int                                       // unanswered requests in a row before it looks
	log   *slog.Logger

	mu         sync.Mutex
	base       *url.URL
	former     map[string]bool // hosts it was found at before
	unanswered int
	finding    sync.Mutex // one search at a time
}

// url is the appliance's base URL now.
func (a *appliance) url() *url.URL {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base
}

// current is u on the appliance's host now when u is on a host it was
// found at before (an image URL made relative to an earlier node).
func (a *appliance) current(u *url.URL) *url.URL {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.former[strings.ToLower(u.Host)] {
		return u
	}
	v := *u
	v.Host = a.base.Host
	return &v
}

// answered counts a request to the appliance: ok if it got an answer (any
// status), else it went unanswered (refused, reset, timed out). After
// a.after unanswered in a row it asks a.find for the appliance again; a
// host other than the current one becomes the base URL's, its scheme and
// port kept. A search that fails is logged and tried again after as many
// more.
func (a *appliance) answered(ctx context.Context, ok bool) {
	a.mu.Lock()
	if ok || a.find == nil {
		a.unanswered = 0
		a.mu.Unlock()
		return
	}
	a.unanswered++
	due := a.unanswered >= a.after
	if due {
		a.unanswered = 0
	}
	a.mu.Unlock()
	if !due || !a.finding.TryLock() {
		return
	}
	defer a.finding.Unlock()
	host, err := a.find(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("the appliance stopped answering and DHCP names none", "err", err)
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.base
	if strings.EqualFold(host, old.Hostname()) {
		a.log.Info("the appliance stopped answering; DHCP names it again", "host", host)
		return
	}
	u := *old
	if p := old.Port(); p != "" {
		u.Host = net.JoinHostPort(host, p)
	} else {
		u.Host = host
	}
	if a.former == nil {
		a.former = map[string]bool{}
	}
	a.former[strings.ToLower(old.Host)] = true
	delete(a.former, strings.ToLower(u.Host))
	a.base = &u
	a.log.Warn("the appliance stopped answering; DHCP names another node of the site", "from", old.Host, "to", u.Host)
}

// DHCPRediscover returns Config.Rediscover's default for a machine that
// booted from mac: a DHCP exchange (DISCOVER to ACK, three tries of 2 s)
// on the interface with that MAC, which returns the ACK's server
// identifier (option 54), the node of the site that answers DHCP now. It
// needs a raw socket (root, as the installer runs the agent); it leaves
// the interface's configuration to the installer's DHCP client.
func DHCPRediscover(mac string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		iface, err := ifaceWithMAC(mac)
		if err != nil {
			return "", err
		}
		c, err := nclient4.New(iface, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
		if err != nil {
			return "", fmt.Errorf("dhcp on %s: %w", iface, err)
		}
		defer c.Close()
		lease, err := c.Request(ctx)
		if err != nil {
			return "", fmt.Errorf("dhcp on %s: %w", iface, err)
		}
		id := lease.ACK.ServerIdentifier()
		if id == nil || id.IsUnspecified() {
			return "", errors.New("the DHCP answer names no server identifier")
		}
		return id.String(), nil
	}
}

// ifaceWithMAC is the name of the interface whose address is mac.
func ifaceWithMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", "outpost.mac", mac, err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifaces {
		if i.HardwareAddr.String() == hw.String() {
			return i.Name, nil
		}
	}
	return "", fmt.Errorf("no interface has MAC %s", hw)
}

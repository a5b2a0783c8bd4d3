package sim

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/pin/tftp/v3"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
)

// Machine is a simulated machine as the site knows it.
type Machine struct {
	ID  string           // its id at the site, and its hostname
	MAC net.HardwareAddr // of its boot interface
}

// Machines names n machines storm-0000, storm-0001... with locally
// administered MACs 02:00 followed by the index.
func Machines(n int) []Machine {
	ms := make([]Machine, n)
	for i := range ms {
		ms[i] = Machine{
			ID:  fmt.Sprintf("storm-%04d", i),
			MAC: net.HardwareAddr{0x02, 0x00, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)},
		}
	}
	return ms
}

const (
	// machineLimit bounds one machine's walk, from its first DHCP packet
	// to its workflow's end.
	machineLimit = 10 * time.Minute
	// rangeBytes is how much of the installer's kernel and initrd a
	// machine fetches.
	rangeBytes = 64 << 10
	// tftpBlock is the blksize PXE ROMs ask for on Ethernet.
	tftpBlock = 1456
)

// Provision walks machine m through its network boot and its workflow,
// as its firmware, iPXE and the installer's agent would, and returns how
// it went:
//
//  1. DHCP: DISCOVER, OFFER, REQUEST, ACK through the relay with a BIOS
//     PXE ROM's options; the ACK must name the iPXE binary, the appliance
//     as next server, and the machine's id as its hostname.
//  2. TFTP: the iPXE binary the ACK names, with blksize and tsize; its
//     size must be the file's.
//  3. Boot HTTP, from the address the ACK gave (as every HTTP request of
//     the machine): the iPXE script for the MAC, which must be the install
//     script for this machine, with outpost.url and outpost.token on its
//     kernel line; then the first 64 KiB of that kernel and initrd, with a
//     Range request each (206 expected).
//  4. The agent API, as the installer's agent (Agent.Run). The machine is
//     ok when its workflow ends succeeded.
//
// A failure in steps 1 to 3 starts the walk over from DHCP up to
// Env.NetbootRetries times, as a looping BIOS does; the phases' times
// are then the last walk's.
//
// Left out: iPXE's own DHCP exchange (a second DORA, user class "iPXE",
// which gets the script's URL): one DORA per machine already loads the
// DHCP server and its Raft commits, and the script's URL is fixed. And
// the rest of the kernel and initrd: about 20 MB per machine here (a
// distribution's initrd is larger), tens of GB for a storm, moved by
// sendfile(2), which is the kernel's work, not applianced's; the 64 KiB
// ranges show they are served. The image is downloaded whole.
func (e *Env) Provision(ctx context.Context, m Machine) (r Result) {
	ctx, cancel := context.WithTimeout(ctx, machineLimit)
	defer cancel()
	start := time.Now()
	defer func() {
		r.ID, r.Total = m.ID, time.Since(start)
		e.done.Add(1)
		if r.Err != nil {
			e.failed.Add(1)
		}
	}()
	var ack *dhcpv4.DHCPv4
	var hc *http.Client
	var sc InstallScript
	var wf *agentproto.Workflow
	defer func() {
		if hc != nil {
			hc.CloseIdleConnections()
		}
	}()
	steps := [...]func() error{
		PhaseDHCP: func() (err error) { ack, err = e.dhcp(ctx, m); return err },
		PhaseTFTP: func() error { return e.tftp(ctx, ack) },
		PhaseBoot: func() (err error) {
			if hc != nil {
				hc.CloseIdleConnections() // an earlier boot's
			}
			if hc, err = e.machineClient(ctx, ack); err != nil {
				return err
			}
			sc, err = e.boot(ctx, hc, ack, m)
			return err
		},
		PhaseAgent: func() error {
			a, err := NewAgent(hc, sc.URL, sc.Token, &e.stats)
			if err == nil {
				if e.Rediscover {
					a.Rediscover = e.rediscoverer(m)
				}
				if e.Damage != nil {
					a.Damage = func() bool { return e.Damage(m) }
				}
				wf, err = a.Run(ctx)
			}
			return err
		},
	}
	// The firmware's network boot, started over as a looping BIOS does.
	for try := 0; ; try++ {
		if e.run(&r, steps[:PhaseAgent], PhaseDHCP) {
			break
		}
		if try >= e.NetbootRetries || ctx.Err() != nil {
			return r
		}
		e.stats.count("firmware: network boot failed in phase " + r.Phase.String() + ", started it again")
		r.Err = nil
	}
	if !e.run(&r, steps[PhaseAgent:], PhaseAgent) {
		return r
	}
	r.Addr = ack.YourIPAddr.String()
	if wf.Status != "succeeded" {
		r.Err, r.Phase = fmt.Errorf("workflow %s %s: %s", wf.ID, wf.Status, wf.Reason), PhaseAgent
	}
	return r
}

// run runs steps, the first of which is phase from, timing each in r,
// until one fails: it sets r.Err and r.Phase and returns false.
func (e *Env) run(r *Result, steps []func() error, from Phase) bool {
	for i, step := range steps {
		ph := from + Phase(i)
		e.inPhase[ph].Add(1)
		t := time.Now()
		err := step()
		e.inPhase[ph].Add(-1)
		if err != nil {
			r.Err, r.Phase = err, ph
			return false
		}
		r.Phases[ph] = time.Since(t)
	}
	return true
}

// rediscoverer is m's agent's way to find the appliance again: a DHCP
// exchange through the relay, whose ACK's server identifier (option 54)
// is the node that answers for the site now, as the installer's agent
// asks (agent.Config.Rediscover).
func (e *Env) rediscoverer(m Machine) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		ack, err := e.Relay.DORA(ctx, m.MAC)
		if err != nil {
			return "", err
		}
		id := ack.ServerIdentifier()
		if id == nil || id.IsUnspecified() {
			return "", fmt.Errorf("the ACK names no server identifier")
		}
		return id.String(), nil
	}
}

// machineClient returns the HTTP client of the machine ack gave an
// address: its own connections, as a real machine's, from that address,
// which is added to the namespace's interface (Env.Iface) first. The
// appliance gives a machine's credential to, and takes it from, the
// address leased to the machine alone.
func (e *Env) machineClient(ctx context.Context, ack *dhcpv4.DHCPv4) (*http.Client, error) {
	addr, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok {
		return nil, fmt.Errorf("the ACK gives no IPv4 address: %v", ack.YourIPAddr)
	}
	iface := e.Iface
	if iface == "" {
		iface = ClientIface
	}
	if _, err := e.Netns.Run(ctx, "ip", "addr", "replace", addr.String()+"/32", "dev", iface); err != nil {
		return nil, err
	}
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		var c net.Conn
		err := e.Netns.Do(func() (err error) {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0))}
			c, err = d.DialContext(ctx, network, a)
			return err
		})
		return c, err
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, DisableCompression: true}
	return &http.Client{Transport: tr}, nil
}

// dhcp gets m an address and checks the boot information.
func (e *Env) dhcp(ctx context.Context, m Machine) (*dhcpv4.DHCPv4, error) {
	ack, err := e.Relay.DORA(ctx, m.MAC)
	if err != nil {
		return nil, err
	}
	server, _ := netip.AddrFromSlice(ack.ServerIPAddr.To4())
	servers := e.Servers
	if len(servers) == 0 {
		servers = []netip.Addr{e.Server}
	}
	if ack.BootFileName != e.Artifacts.BootFile || !slices.Contains(servers, server) {
		return nil, fmt.Errorf("the ACK names boot file %q on %s, want %q on %v", ack.BootFileName, ack.ServerIPAddr, e.Artifacts.BootFile, servers)
	}
	if ack.HostName() != m.ID {
		return nil, fmt.Errorf("the ACK gives hostname %q, want %q", ack.HostName(), m.ID)
	}
	return ack, nil
}

// tftp fetches the boot file from the next server. The TFTP client does
// not take a context: on cancellation it is left to time out.
func (e *Env) tftp(ctx context.Context, ack *dhcpv4.DHCPv4) error {
	c, err := tftp.NewClient(net.JoinHostPort(ack.ServerIPAddr.String(), "69"))
	if err != nil {
		return err
	}
	c.SetBlockSize(tftpBlock)
	c.RequestTSize(true)
	done := make(chan error, 1)
	go func() { done <- e.tftpReceive(c, ack.BootFileName) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Env) tftpReceive(c *tftp.Client, name string) error {
	var wt io.WriterTo
	err := e.Netns.Do(func() (err error) {
		wt, err = c.Receive(name, "octet")
		return err
	})
	if err != nil {
		return fmt.Errorf("tftp %s: %w", name, err)
	}
	n, err := wt.WriteTo(io.Discard)
	if err != nil {
		return fmt.Errorf("tftp %s: %w after %d bytes", name, err, n)
	}
	tsize, ok := wt.(tftp.IncomingTransfer).Size()
	if n != e.Artifacts.BootSize || ok && tsize != n {
		return fmt.Errorf("tftp %s: %d bytes (tsize %d), want %d", name, n, tsize, e.Artifacts.BootSize)
	}
	return nil
}

// boot fetches m's iPXE script from the next server and the first bytes
// of the kernel and initrd it names.
func (e *Env) boot(ctx context.Context, hc *http.Client, ack *dhcpv4.DHCPv4, m Machine) (InstallScript, error) {
	base := "http://" + net.JoinHostPort(ack.ServerIPAddr.String(), strconv.Itoa(e.BootPort))
	script, err := get(ctx, hc, &e.stats, "GET script", base+"/ipxe/boot.ipxe?mac="+m.MAC.String()+"&arch=x86_64&platform=pcbios",
		http.StatusOK, 1<<20)
	if err != nil {
		return InstallScript{}, err
	}
	sc, err := ParseInstallScript(string(script))
	if err != nil {
		return sc, err
	}
	if sc.Machine != m.ID {
		return sc, fmt.Errorf("the install script is for machine %q", sc.Machine)
	}
	for _, f := range []struct {
		what, url string
		size      int64
	}{{"GET kernel", sc.Kernel, e.Artifacts.KernelSize}, {"GET initrd", sc.Initrd, e.Artifacts.InitrdSize}} {
		got, err := get(ctx, hc, &e.stats, f.what, f.url, http.StatusPartialContent, rangeBytes+1,
			"Range", "bytes=0-"+strconv.Itoa(rangeBytes-1))
		if err != nil {
			return sc, err
		}
		if want := min(f.size, rangeBytes); int64(len(got)) != want {
			return sc, fmt.Errorf("%s %s: %d bytes, want %d", f.what, f.url, len(got), want)
		}
	}
	return sc, nil
}

// InstallScript is what an install script (the iPXE script of a machine
// whose workflow runs) tells the installer.
type InstallScript struct {
	Kernel, Initrd string // URLs
	URL            string // outpost.url: the appliance's boot HTTP service
	Token          string // outpost.token: the agent's credential
	Machine        string // outpost.machine
}

// ParseInstallScript reads the kernel and initrd lines of an install
// script. Another script (one that boots the local disk or exits to the
// firmware) is an error that quotes its first echo.
func ParseInstallScript(script string) (InstallScript, error) {
	var sc InstallScript
	var first string // the first echo says which script it is
	for line := range strings.Lines(script) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "echo":
			if first == "" {
				first = strings.Join(f[1:], " ")
			}
		case "kernel":
			sc.Kernel = f[1]
			for _, arg := range f[2:] {
				k, v, _ := strings.Cut(arg, "=")
				switch k {
				case agentproto.ParamURL:
					sc.URL = v
				case agentproto.ParamToken:
					sc.Token = v
				case agentproto.ParamMachine:
					sc.Machine = v
				}
			}
		case "initrd":
			sc.Initrd = f[1]
		}
	}
	if sc.Kernel == "" || sc.Initrd == "" || sc.URL == "" || sc.Token == "" {
		return sc, fmt.Errorf("not an install script: %q", first)
	}
	return sc, nil
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/pin/tftp/v3"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
)

const (
	// stormRangeBytes is how much of the installer's kernel and initrd a
	// machine fetches.
	stormRangeBytes = 64 << 10
	// stormRequestTimeout bounds one HTTP request (the agent's default).
	stormRequestTimeout = 30 * time.Second
	// stormTFTPBlock is the blksize PXE ROMs ask for on Ethernet.
	stormTFTPBlock = 1456
)

// provision walks one machine through its network boot and its workflow,
// as its firmware, iPXE and the installer's agent would:
//
//  1. DHCP: DISCOVER, OFFER, REQUEST, ACK through the relay with a BIOS
//     PXE ROM's options; the ACK must name the iPXE binary, the appliance
//     as next server, and the machine's hostname.
//  2. TFTP: the iPXE binary the ACK names, with blksize and tsize; its
//     size must be the file's.
//  3. Boot HTTP: the iPXE script for the MAC, which must be the install
//     script for this machine, with outpost.url and outpost.token on its
//     kernel line; then the first 64 KiB of that kernel and initrd, with a
//     Range request each (206 expected).
//  4. The agent API, as the installer's agent (stormAgent.run).
//
// Left out: iPXE's own DHCP exchange (a second DORA, user class "iPXE",
// which gets the script's URL): one DORA per machine already loads the
// DHCP server and its Raft commits, and the script's URL is fixed. And
// the rest of the kernel and initrd: about 20 MB per machine here (a
// distribution's initrd is larger), tens of GB for a storm, moved by
// sendfile(2), which is the kernel's work, not applianced's; the 64 KiB
// ranges show they are served. The image is downloaded whole.
func (e *stormEnv) provision(ctx context.Context, m stormMachine) (r stormResult) {
	ctx, cancel := context.WithTimeout(ctx, stormMachineLimit)
	defer cancel()
	start := time.Now()
	defer func() {
		r.id, r.total = m.id, time.Since(start)
		e.done.Add(1)
		if r.err != nil {
			e.failed.Add(1)
		}
	}()
	// Each machine has its own connections, as real ones do.
	tr := &http.Transport{DialContext: e.dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	var ack *dhcpv4.DHCPv4
	var sc installScript
	var wf *agentproto.Workflow
	steps := [...]func() error{
		phaseDHCP:  func() (err error) { ack, err = e.dhcp(ctx, m); return err },
		phaseTFTP:  func() error { return e.tftp(ctx, ack) },
		phaseBoot:  func() (err error) { sc, err = e.boot(ctx, hc, ack, m); return err },
		phaseAgent: func() (err error) { wf, err = e.agent(hc, sc).run(ctx); return err },
	}
	for ph, step := range steps {
		e.inPhase[ph].Add(1)
		t := time.Now()
		err := step()
		e.inPhase[ph].Add(-1)
		if err != nil {
			r.err, r.phase = err, ph
			return r
		}
		r.phases[ph] = time.Since(t)
	}
	r.addr = ack.YourIPAddr.String()
	if wf.Status != "succeeded" {
		r.err, r.phase = fmt.Errorf("workflow %s %s: %s", wf.ID, wf.Status, wf.Reason), phaseAgent
	}
	return r
}

// dial connects from the client namespace.
func (e *stormEnv) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(e.bn.client, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// dhcp gets m an address and checks the boot information.
func (e *stormEnv) dhcp(ctx context.Context, m stormMachine) (*dhcpv4.DHCPv4, error) {
	ack, err := e.relay.dora(ctx, m.mac)
	if err != nil {
		return nil, err
	}
	server := net.ParseIP(dhcpServerAddr)
	if ack.BootFileName != e.art.bootFile || !ack.ServerIPAddr.Equal(server) {
		return nil, fmt.Errorf("the ACK names boot file %q on %s, want %q on %s", ack.BootFileName, ack.ServerIPAddr, e.art.bootFile, server)
	}
	if ack.HostName() != m.id {
		return nil, fmt.Errorf("the ACK gives hostname %q, want %q", ack.HostName(), m.id)
	}
	return ack, nil
}

// tftp fetches the boot file from the next server. The TFTP client does
// not take a context: on cancellation it is left to time out.
func (e *stormEnv) tftp(ctx context.Context, ack *dhcpv4.DHCPv4) error {
	c, err := tftp.NewClient(net.JoinHostPort(ack.ServerIPAddr.String(), "69"))
	if err != nil {
		return err
	}
	c.SetBlockSize(stormTFTPBlock)
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

func (e *stormEnv) tftpReceive(c *tftp.Client, name string) error {
	var wt io.WriterTo
	err := inNetns(e.bn.client, func() (err error) {
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
	if n != e.art.bootSize || ok && tsize != n {
		return fmt.Errorf("tftp %s: %d bytes (tsize %d), want %d", name, n, tsize, e.art.bootSize)
	}
	return nil
}

// boot fetches m's iPXE script from the next server and the first bytes
// of the kernel and initrd it names.
func (e *stormEnv) boot(ctx context.Context, hc *http.Client, ack *dhcpv4.DHCPv4, m stormMachine) (installScript, error) {
	base := "http://" + net.JoinHostPort(ack.ServerIPAddr.String(), stormBootPort)
	script, err := stormGet(ctx, hc, e.stats, "GET script", base+"/ipxe/boot.ipxe?mac="+m.mac.String()+"&arch=x86_64&platform=pcbios",
		http.StatusOK, 1<<20)
	if err != nil {
		return installScript{}, err
	}
	sc, err := parseInstallScript(string(script))
	if err != nil {
		return sc, err
	}
	if sc.machine != m.id {
		return sc, fmt.Errorf("the install script is for machine %q", sc.machine)
	}
	for _, f := range []struct {
		what, url string
		size      int64
	}{{"GET kernel", sc.kernel, e.art.kernelSize}, {"GET initrd", sc.initrd, e.art.initrdSize}} {
		got, err := stormGet(ctx, hc, e.stats, f.what, f.url, http.StatusPartialContent, stormRangeBytes+1,
			"Range", "bytes=0-"+strconv.Itoa(stormRangeBytes-1))
		if err != nil {
			return sc, err
		}
		if want := min(f.size, stormRangeBytes); int64(len(got)) != want {
			return sc, fmt.Errorf("%s %s: %d bytes, want %d", f.what, f.url, len(got), want)
		}
	}
	return sc, nil
}

// installScript is what the install script tells the installer.
type installScript struct {
	kernel, initrd string // URLs
	base           string // outpost.url
	token          string // outpost.token
	machine        string // outpost.machine
}

// parseInstallScript reads the kernel and initrd lines of an install
// script.
func parseInstallScript(script string) (installScript, error) {
	var sc installScript
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
			sc.kernel = f[1]
			for _, arg := range f[2:] {
				k, v, _ := strings.Cut(arg, "=")
				switch k {
				case agentproto.ParamURL:
					sc.base = v
				case agentproto.ParamToken:
					sc.token = v
				case agentproto.ParamMachine:
					sc.machine = v
				}
			}
		case "initrd":
			sc.initrd = f[1]
		}
	}
	if sc.kernel == "" || sc.initrd == "" || sc.base == "" || sc.token == "" {
		return sc, fmt.Errorf("not an install script: %q", first)
	}
	return sc, nil
}

// stormGet sends GET url (with header pairs) until it is answered,
// retrying transient failures, and returns at most limit bytes of the
// body; an answer other than want is an error.
func stormGet(ctx context.Context, hc *http.Client, stats *stormStats, what, url string, want int, limit int64, header ...string) ([]byte, error) {
	var body []byte
	err := stormRetry(ctx, stats, what, func() (string, error) {
		status, b, err := stormTry(ctx, hc, http.MethodGet, url, nil, limit, header...)
		if err == nil && status != want {
			err = fmt.Errorf("%s %s: HTTP %d: %s", what, url, status, bytes.TrimSpace(b))
		}
		body = b
		return transientKind(status, err), err
	})
	return body, err
}

// stormTry sends one request and reads at most limit bytes of the
// answer. The status is 0 when there is no answer.
func stormTry(ctx context.Context, hc *http.Client, method, url string, body []byte, limit int64, header ...string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, stormRequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	return resp.StatusCode, b, nil
}

// transientKind says why a failed request is worth retrying, as the agent
// would (no answer, 5xx, 408, 429), or "" when it is not.
func transientKind(status int, err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case status == 0 && errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case status == 0 && errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case status == 0 && (errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case status == 0:
		return "network error"
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return "HTTP " + strconv.Itoa(status)
	}
	return ""
}

// stormRetry calls try until it succeeds or fails for good (try says
// why a failure is transient, or ""), waiting between tries as the agent
// does: exponential backoff from 250 ms to 5 s, with jitter.
func stormRetry(ctx context.Context, stats *stormStats, what string, try func() (transient string, err error)) error {
	for n := 1; ; n++ {
		kind, err := try()
		if err == nil || kind == "" || ctx.Err() != nil {
			return err
		}
		stats.count("retried " + what + ": " + kind)
		d := min(250*time.Millisecond<<min(n-1, 5), 5*time.Second)
		if !stormSleep(ctx, d/2+rand.N(d/2+1)) {
			return fmt.Errorf("%w (gave up after %d tries)", err, n)
		}
	}
}

// stormSleep waits d, or less if ctx ends first; it reports whether it
// waited d.
func stormSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

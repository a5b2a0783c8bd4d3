package sol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/transport"
	"github.com/bougou/go-ipmi/pkg/types"
)

// ipmiPort is IPMI's UDP port.
const ipmiPort = 623

// releaseTimeout bounds releasing a console at the BMC (deactivating the
// payload, closing the session) when a stream closes.
const releaseTimeout = 3 * time.Second

// IPMI opens consoles as IPMI 2.0 serial-over-LAN (RMCP+, what ipmitool
// calls lanplus) with github.com/bougou/go-ipmi, payload instance 1.
type IPMI struct {
	// Dial, if set, makes the UDP socket to the BMC, such as one in
	// another network namespace; nil dials from this one.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// PollInterval is how often the BMC is asked for what the console
	// printed. Default 100 ms.
	PollInterval time.Duration
	// CipherSuites are the RMCP+ cipher suites tried, in order. Default
	// DefaultCipherSuites. (Asking the BMC which it has costs ipmi_sim,
	// which does not answer, 5 s a login.)
	CipherSuites []types.CipherSuiteID
}

// DefaultCipherSuites are suite 17 (HMAC-SHA256, AES-CBC-128) and suite
// 3 (HMAC-SHA1, AES-CBC-128), which IPMI 2.0 BMCs offer.
var DefaultCipherSuites = []types.CipherSuiteID{types.CipherSuiteID17, types.CipherSuiteID3}

// Open logs in to t's BMC and activates its serial-over-LAN payload. A
// payload another session holds (a console left by a node that stopped
// leading, or by another tool) is taken over: deactivated, then
// activated for this one.
func (b IPMI) Open(ctx context.Context, t Target) (Stream, error) {
	host, port, err := splitAddress(t.Address)
	if err != nil {
		return nil, err
	}
	c, err := client.NewClient(host, port, t.Username, t.Password)
	if err != nil {
		return nil, fmt.Errorf("sol: %s: %w", t, err)
	}
	c.WithInterface(client.InterfaceLanplus).WithMaxPrivilegeLevel(types.PrivilegeLevelAdministrator)
	if b.Dial != nil {
		c.WithUDPProxy(dialer(b.Dial))
	}
	suites := b.CipherSuites
	if len(suites) == 0 {
		suites = DefaultCipherSuites
	}
	if err := login(ctx, c, suites); err != nil {
		// Nothing to release at the BMC: close the socket at once.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		c.Close(done)
		return nil, fmt.Errorf("sol: log in to %s: %w", t, err)
	}
	if err := activate(ctx, c); err != nil {
		release(c, false)
		return nil, fmt.Errorf("sol: activate the console at %s: %w", t, err)
	}
	return startIPMIStream(c, b.PollInterval), nil
}

// login opens an RMCP+ session as go-ipmi's Client.Connect does (Open
// Session, RAKP 1 to 4, Set Session Privilege Level), with two
// differences. It asks nothing first: Get Channel Authentication
// Capabilities is discovery, which RMCP+ does not need. And it starts no
// keep-alive goroutine: in go-ipmi v0.9.1 a keep-alive exchange that
// waits for the socket while Client.Close clears it dereferences a nil
// connection and crashes the process (seen when a BMC restarted under
// an open console). An open console polls the BMC every PollInterval,
// which keeps its session alive.
func login(ctx context.Context, c *client.Client, suites []types.CipherSuiteID) error {
	var failed []error
	for _, id := range suites {
		c.WithCipherSuiteID(id)
		if _, err := c.OpenSession(ctx); err != nil {
			failed = append(failed, fmt.Errorf("open session with cipher suite %d: %w", id, err))
			continue
		}
		if _, err := c.RAKPMessage1(ctx); err != nil {
			failed = append(failed, fmt.Errorf("RAKP 1 with cipher suite %d: %w", id, err))
			continue
		}
		if _, err := c.RAKPMessage3(ctx); err != nil {
			failed = append(failed, fmt.Errorf("RAKP 3 with cipher suite %d: %w", id, err))
			continue
		}
		_, err := c.SetSessionPrivilegeLevel(ctx, types.PrivilegeLevelAdministrator)
		return err
	}
	return errors.Join(failed...)
}

// activate activates the SOL payload, taking it over from another
// session that holds it.
func activate(ctx context.Context, c *client.Client) error {
	req := &transport.ActivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: 1}
	_, err := c.ActivatePayload(ctx, req)
	if _, refused := types.IsResponseError(err); !refused {
		return err
	}
	if _, err := c.DeactivatePayload(ctx, deactivation); err != nil {
		return fmt.Errorf("another session holds the console and it could not be released: %w", err)
	}
	_, err = c.ActivatePayload(ctx, req)
	return err
}

var deactivation = &transport.DeactivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: 1}

// release deactivates the payload, if active, and closes the session,
// within releaseTimeout.
func release(c *client.Client, active bool) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if active {
		c.DeactivatePayload(ctx, deactivation)
	}
	c.Close(ctx)
}

// splitAddress splits a BMC address into host and port, IPMI's port if
// it has none.
func splitAddress(addr string) (string, int, error) {
	a := strings.TrimSpace(addr)
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), strconv.Itoa(ipmiPort)
	}
	n, perr := strconv.Atoi(port)
	if host == "" || strings.ContainsAny(host, " /") || perr != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("sol: invalid BMC address %q", addr)
	}
	return host, n, nil
}

// dialer adapts a dial function to the proxy dialer go-ipmi takes.
type dialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (d dialer) Dial(network, addr string) (net.Conn, error) {
	return d(context.Background(), network, addr)
}

// ipmiStream is an active payload: go-ipmi's SOL loop runs between two
// pipes, one for what the console prints, one for keystrokes.
type ipmiStream struct {
	c      *client.Client
	out    *io.PipeReader
	in     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{} // the loop has returned
	once   sync.Once
}

func startIPMIStream(c *client.Client, poll time.Duration) *ipmiStream {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &ipmiStream{c: c, out: outR, in: inW, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		err := c.SOLStream(ctx, inR, outW, &client.SOLStreamOptions{PollInterval: poll})
		if err == nil {
			err = errors.New("the console session ended")
		}
		outW.CloseWithError(err)
		inR.CloseWithError(err)
	}()
	return s
}

func (s *ipmiStream) Read(p []byte) (int, error)  { return s.out.Read(p) }
func (s *ipmiStream) Write(p []byte) (int, error) { return s.in.Write(p) }

// Close ends the loop and releases the payload at the BMC.
func (s *ipmiStream) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.in.Close()  // the loop's keystroke reader ends
		s.out.Close() // a write of console output blocked on us ends
		<-s.done
		release(s.c, true)
	})
	return nil
}

package bmc

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
	"github.com/bmc-toolbox/bmclib/v2/providers/ipmitool"
	"github.com/bmc-toolbox/bmclib/v2/providers/redfish"
	"github.com/go-logr/logr"
	"github.com/jacobweinstock/registrar"
	"github.com/stmcginnis/gofish/common"
)

// BMCLibDrivers returns the drivers backed by bmclib: "ipmi" (its ipmitool
// provider, which needs the ipmitool program) and "redfish" (its gofish
// provider), which trusts the certificate the credentials' Fingerprint
// names and those roots (nil: none) vouch for.
func BMCLibDrivers(roots *x509.CertPool) map[string]NewProvider {
	return map[string]NewProvider{IPMI: newIPMI, Redfish: func(c Credentials) (Provider, error) { return newRedfish(c, roots) }}
}

// closeTimeout bounds closing a session (a Redfish logout), which runs
// even when the operation's time is up.
const closeTimeout = 5 * time.Second

// bmclibProvider runs each call through a bmclib client holding one
// provider (conn).
type bmclibProvider struct {
	name     string // bmclib's name for the provider, as its metadata has it
	protocol string // "ipmi" or "redfish"
	host     string // bracketed if IPv6
	port     string
	user     string
	pass     string
	features registrar.Features
	newConn  func() any // the bmclib provider for a call
	// classify turns a failed call's error and detail into one of ours.
	classify func(ctx context.Context, op, detail string, err error) error
}

// newIPMI is the "ipmi" driver: bmclib's ipmitool provider.
func newIPMI(c Credentials) (Provider, error) {
	host, port, err := c.port(IPMI)
	if err != nil {
		return nil, err
	}
	// The connection holds no state but the credentials: one serves
	// every call. New looks for the ipmitool program.
	conn, err := ipmitool.New(host, c.Username, c.Password, ipmitool.WithPort(port), ipmitool.WithLogger(logr.Discard()))
	if err != nil {
		return nil, err
	}
	p := &bmclibProvider{
		name: ipmitool.ProviderName, protocol: ipmitool.ProviderProtocol, features: ipmitool.Features,
		host: host, port: port, user: c.Username, pass: c.Password,
		newConn: func() any { return conn },
	}
	p.classify = p.classifyIPMI
	return p, nil
}

// newRedfish is the "redfish" driver: bmclib's gofish provider, over an
// HTTP client that verifies the BMC's certificate (certCheck) before it
// sends anything: bmclib's own skips verification.
func newRedfish(c Credentials, roots *x509.CertPool) (Provider, error) {
	if os.Getenv("DEBUG_BMCLIB") == "true" {
		return nil, errors.New("refusing Redfish with DEBUG_BMCLIB=true in the environment: bmclib would print the password")
	}
	host, port, err := c.port(Redfish)
	if err != nil {
		return nil, err
	}
	check := &certCheck{host: strings.Trim(host, "[]"), pinned: c.Fingerprint, roots: roots}
	// A connection holds a session: a fresh one for every call.
	return &bmclibProvider{
		name: redfish.ProviderName, protocol: redfish.ProviderProtocol, features: redfish.Features,
		host: host, port: port, user: c.Username, pass: c.Password,
		newConn: func() any {
			return redfish.New(host, c.Username, c.Password, logr.Discard(), redfish.WithPort(port),
				redfish.WithHttpClient(check.httpClient()))
		},
		classify: func(ctx context.Context, op, detail string, err error) error {
			if refused := check.refusal(); refused != nil {
				return refused
			}
			return classifyRedfish(ctx, op, detail, err)
		},
	}, nil
}

// client returns a bmclib client holding one fresh provider.
func (p *bmclibProvider) client() *bmclib.Client {
	reg := registrar.NewRegistry(registrar.WithLogger(logr.Discard()))
	reg.Register(p.name, p.protocol, p.features, nil, p.newConn())
	return bmclib.NewClient(p.host, p.user, p.pass, bmclib.WithRegistry(reg), bmclib.WithLogger(logr.Discard()))
}

// do opens a session, runs f and closes the session.
func (p *bmclibProvider) do(ctx context.Context, op string, f func(ctx context.Context, c *bmclib.Client) error) error {
	c := p.client()
	if err := c.Open(ctx); err != nil {
		return p.classify(ctx, op, p.detail(c, err), err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		c.Close(cctx)
	}()
	if err := f(ctx, c); err != nil {
		return p.classify(ctx, op, p.detail(c, err), err)
	}
	return nil
}

// detail is what the provider said, on one line: bmclib's metadata has it
// without the wrapping of its multi-errors.
func (p *bmclibProvider) detail(c *bmclib.Client, err error) string {
	d := c.GetMetadata().FailedProviderDetail[p.name]
	if d == "" {
		d = err.Error()
	}
	d = oneLine(d)
	d = strings.TrimPrefix(d, "provider: "+p.name+": ")
	d = strings.TrimPrefix(d, "<nil>: ")
	return scrub(d, p.pass)
}

func (p *bmclibProvider) PowerState(ctx context.Context) (PowerState, error) {
	var st PowerState
	err := p.do(ctx, "power status", func(ctx context.Context, c *bmclib.Client) error {
		s, err := c.GetPowerState(ctx)
		if err != nil {
			return err
		}
		st, err = parsePowerState(s)
		return err
	})
	return st, err
}

func (p *bmclibProvider) SetPower(ctx context.Context, action string) error {
	return p.do(ctx, "power "+action, func(ctx context.Context, c *bmclib.Client) error {
		ok, err := c.SetPowerState(ctx, action)
		if err == nil && !ok {
			err = errors.New("the provider did not confirm")
		}
		return err
	})
}

func (p *bmclibProvider) SetBootPXE(ctx context.Context, opts BootOptions) error {
	return p.do(ctx, opSetBoot, func(ctx context.Context, c *bmclib.Client) error {
		ok, err := c.SetBootDevice(ctx, "pxe", opts.Persistent, opts.EFI)
		if err == nil && !ok {
			err = errors.New("the provider did not confirm")
		}
		return err
	})
}

func (p *bmclibProvider) SetBootCD(ctx context.Context, opts BootOptions) error {
	return p.do(ctx, opSetBoot, func(ctx context.Context, c *bmclib.Client) error {
		ok, err := c.SetBootDevice(ctx, "cdrom", opts.Persistent, opts.EFI)
		if err == nil && !ok {
			err = errors.New("the provider did not confirm")
		}
		return err
	})
}

// InsertMedia's errors say "[media URL]" instead of the URL, which may be
// a secret.
func (p *bmclibProvider) InsertMedia(ctx context.Context, url string) error {
	err := p.do(ctx, opMedia, func(ctx context.Context, c *bmclib.Client) error {
		ok, err := c.SetVirtualMedia(ctx, "CD", url)
		if err == nil && !ok {
			err = errors.New("the provider did not confirm")
		}
		return err
	})
	var ke *kindError
	if url != "" && errors.As(err, &ke) {
		ke.msg = strings.ReplaceAll(ke.msg, url, "[media URL]")
	}
	return err
}

// ipmiSessionFailures are what ipmitool prints when it gets no session:
// a wrong username or password, no common cipher suite, or no BMC.
var ipmiSessionFailures = []string{
	"Unable to establish",
	"RAKP",
	"invalid authentication algorithm",
	"Activate Session",
	"Get Auth Capabilities",
}

// classifyIPMI names what went wrong. ipmitool's text does not tell a
// refused session from an absent BMC, nor a slow BMC from an absent one;
// an IPMI ping does.
func (p *bmclibProvider) classifyIPMI(ctx context.Context, op, detail string, err error) error {
	addr := p.host + ":" + p.port
	if errors.Is(ctx.Err(), context.Canceled) {
		return failure(context.Canceled, "%s", detail)
	}
	if ctx.Err() != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTries*pingWait)
		defer cancel()
		if !ipmiPing(pctx, addr) {
			return failure(ErrUnreachable, "no answer, to the operation or to an IPMI ping")
		}
		return failure(ErrTimeout, "the BMC answers pings but did not finish in time: %s", detail)
	}
	for _, s := range ipmiSessionFailures {
		if strings.Contains(detail, s) {
			pctx, cancel := context.WithTimeout(ctx, pingTries*pingWait)
			defer cancel()
			if ipmiPing(pctx, addr) {
				return failure(ErrAuth, "the BMC answers but refused the session (wrong username or password, or no common cipher suite): %s", detail)
			}
			return failure(ErrUnreachable, "no answer to an IPMI ping: %s", detail)
		}
	}
	if op == opSetBoot && strings.Contains(detail, "Set Chassis Boot Parameter") {
		return failure(ErrBootDeviceRefused, "%s", detail)
	}
	return failure(nil, "%s", detail)
}

// classifyRedfish names what went wrong from the HTTP client's and
// gofish's errors. Untested against a real Redfish BMC.
func classifyRedfish(ctx context.Context, op, detail string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return failure(context.Canceled, "%s", detail)
	}
	var herr *common.Error
	if errors.As(err, &herr) {
		switch code := herr.HTTPReturnedStatusCode; {
		case code == 401 || code == 403:
			return failure(ErrAuth, "%s", detail)
		case op == opSetBoot && code >= 400 && code < 500:
			return failure(ErrBootDeviceRefused, "%s", detail)
		}
	}
	var operr *net.OpError
	if errors.As(err, &operr) && operr.Op == "dial" && !operr.Timeout() {
		return failure(ErrUnreachable, "%s", detail)
	}
	var uerr *url.Error
	if ctx.Err() != nil || errors.As(err, &uerr) && uerr.Timeout() {
		return failure(ErrTimeout, "%s", detail)
	}
	switch {
	case strings.Contains(detail, "401") || strings.Contains(detail, "Unauthorized"):
		return failure(ErrAuth, "%s", detail)
	case strings.Contains(detail, "connection refused") || strings.Contains(detail, "no route to host") || strings.Contains(detail, "no such host"):
		return failure(ErrUnreachable, "%s", detail)
	}
	return failure(nil, "%s", detail)
}

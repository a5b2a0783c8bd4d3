package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// IPMISimConfig describes one simulated BMC: an ipmi_sim serving IPMI 2.0
// (lanplus) on a UDP port, whose chassis power runs StartCmd.
type IPMISimConfig struct {
	// Name names the simulator in messages, files and its lan.conf.
	// Default "bmc".
	Name string
	// Netns is the namespace ipmi_sim runs in; nil runs it in the test's
	// own.
	Netns *Netns
	// Addr is the IP address to listen on, one the namespace has.
	// Default 127.0.0.1.
	Addr string
	// Port is the UDP port. Default: a free one.
	Port int
	// Username and Password are the one (administrator) user's. Default
	// "admin" and a random password. No double quotes; the password is at
	// most 20 bytes, the username 16 (IPMI's limits).
	Username, Password string
	// StartCmd is the shell command ipmi_sim runs on power on and kills
	// on power off, such as a QEMU VM. Default "sleep 3600". It runs in
	// ipmi_sim's process group, which is killed when the test ends, so
	// it must not start a session or group of its own. No double quotes
	// (ipmi_sim's configuration syntax has no escape): quote with single
	// quotes.
	StartCmd string
	// StartArgs, if set, is the command as arguments (such as
	// VMCommand's), which the lab quotes into StartCmd.
	StartArgs []string
	// PoweredOn runs StartCmd as soon as ipmi_sim starts.
	PoweredOn bool
	// BootDevice makes the simulator keep the boot device it is set to
	// (ipmitool chassis bootdev, bmclib's SetBootDevice) and report it
	// (chassis bootparam get 5, IPMISim.BootDevice), through a chassis
	// control program that then also does power (ipmisim_boot.go).
	// Without it the simulator refuses to set the boot device.
	BootDevice bool
	// SOL is the address (host:port, in Netns) of the machine's serial
	// console served as a telnet socket, which the simulator's
	// serial-over-LAN connects to (its sol "telnet:..." directive), and
	// connects to again, about every 10 s, while nothing answers there.
	// Default: the serial socket of StartArgs when VMCommand made them
	// (SerialAddr); with neither the simulator has no SOL.
	SOL string
}

// IPMISim is a running ipmi_sim.
type IPMISim struct {
	// Addr is where it answers, host:port, for ipmitool and bmclib.
	Addr               string
	Username, Password string
	// SOL is the serial console its serial-over-LAN connects to
	// (IPMISimConfig.SOL); "" if it has none.
	SOL string
	// Dir holds lan.conf, cmd.emu and the simulator's state.
	Dir string
	// Process is ipmi_sim; StartCmd runs as its child, in its group.
	Process *Process

	t     T
	name  string
	netns *Netns
}

// StartIPMISim writes cfg's lan.conf and cmd.emu into a temporary
// directory, starts ipmi_sim on them and waits until it answers ipmitool
// (chassis power status). When the test ends ipmi_sim's process group,
// StartCmd's process included, is killed.
//
// Power control goes through the simulator's VM channel (serial 15 ...
// codec VM, on a free TCP port of Addr): without it ipmi_sim refuses
// chassis power control ("Invalid data field in request") even with a
// startcmd. Nothing connects to it, so power off kills StartCmd at once
// (SIGTERM, then SIGKILL after 20 s). Power cycle powers off and, a
// second later, on again, also when the chassis was off. The simulator
// refuses to set the boot device ("Invalid data field in request").
//
// With a serial console (SOL, or the socket of a VMCommand in
// StartArgs) it serves serial-over-LAN (IPMI 2.0 payload instance 1),
// live output only: it keeps no history of what the guest printed
// while no session was active. It connects to the serial console up to
// ~10 s after QEMU starts (power on): what the guest prints before
// that goes only to VMCommand's file.
func StartIPMISim(t T, cfg IPMISimConfig) *IPMISim {
	t.Helper()
	Require(t, "ipmi_sim", "ipmitool")
	cfg = ipmiSimDefaults(t, cfg)
	// A free port may be taken again before ipmi_sim binds it: try anew.
	var lastErr error
	for range 3 {
		s, err := startIPMISim(t, cfg)
		if err == nil {
			return s
		}
		lastErr = err
		if cfg.Port != 0 {
			break
		}
	}
	t.Fatalf("lab: ipmi_sim %s: %v", cfg.Name, lastErr)
	return nil
}

// randomPassword is a BMC's password: prefix and 16 random hex digits.
func randomPassword(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ipmiSimDefaults fills in cfg's defaults and checks what it can.
func ipmiSimDefaults(t T, cfg IPMISimConfig) IPMISimConfig {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "bmc"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = randomPassword("pw")
	}
	if len(cfg.StartArgs) > 0 {
		quoted := make([]string, len(cfg.StartArgs))
		for i, a := range cfg.StartArgs {
			if strings.Contains(a, "'") {
				t.Fatalf("lab: IPMISimConfig.StartArgs[%d] %q holds a single quote", i, a)
			}
			quoted[i] = "'" + a + "'"
		}
		cfg.StartCmd = strings.Join(quoted, " ")
		if cfg.SOL == "" {
			cfg.SOL = SerialAddr(cfg.StartArgs)
		}
	}
	if cfg.StartCmd == "" {
		cfg.StartCmd = "sleep 3600"
	}
	for _, f := range []struct{ name, v string }{
		{"Name", cfg.Name}, {"Username", cfg.Username}, {"Password", cfg.Password}, {"StartCmd", cfg.StartCmd}, {"SOL", cfg.SOL},
	} {
		if strings.ContainsAny(f.v, "\"\n") {
			t.Fatalf("lab: IPMISimConfig.%s may not hold a double quote or a newline", f.name)
		}
	}
	if len(cfg.Username) > 16 || len(cfg.Password) > 20 {
		t.Fatalf("lab: IPMISimConfig: a username has at most 16 bytes, a password 20")
	}
	if net.ParseIP(cfg.Addr) == nil {
		t.Fatalf("lab: IPMISimConfig.Addr %q is not an IP address", cfg.Addr)
	}
	if _, _, err := net.SplitHostPort(cfg.SOL); cfg.SOL != "" && err != nil {
		t.Fatalf("lab: IPMISimConfig.SOL %q is not host:port: %v", cfg.SOL, err)
	}
	return cfg
}

// startIPMISim makes one attempt at starting cfg.
func startIPMISim(t T, cfg IPMISimConfig) (*IPMISim, error) {
	t.Helper()
	port := cfg.Port
	if port == 0 {
		p, err := freePort(cfg.Netns, "udp", cfg.Addr)
		if err != nil {
			return nil, err
		}
		port = p
	}
	vmPort, err := freePort(cfg.Netns, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	if _, solPort, _ := net.SplitHostPort(cfg.SOL); solPort == strconv.Itoa(vmPort) {
		// Chosen in another namespace, the serial console's port may be
		// this one: QEMU could then not listen on it.
		return nil, fmt.Errorf("the VM channel's port %d is the serial console's", vmPort)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		return nil, err
	}
	lanConf := filepath.Join(dir, "lan.conf")
	cmdEmu := filepath.Join(dir, "cmd.emu")
	chassis := ""
	if cfg.BootDevice {
		if chassis, err = writeChassis(dir, cfg); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(lanConf, []byte(ipmiLanConf(cfg, port, vmPort, chassis)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cmdEmu, []byte(ipmiCmdEmu), 0o600); err != nil {
		return nil, err
	}
	s := &IPMISim{
		Addr:     net.JoinHostPort(cfg.Addr, strconv.Itoa(port)),
		Username: cfg.Username,
		Password: cfg.Password,
		SOL:      cfg.SOL,
		Dir:      dir,
		t:        t,
		name:     cfg.Name,
		netns:    cfg.Netns,
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs ipmi_sim on the files in s.Dir and waits until it answers.
func (s *IPMISim) start() error {
	s.t.Helper()
	s.Process = StartProcess(s.t, ProcessConfig{
		Name:  "ipmi_sim-" + s.name,
		Netns: s.netns,
		Args: []string{"ipmi_sim", "-c", filepath.Join(s.Dir, "lan.conf"), "-f", filepath.Join(s.Dir, "cmd.emu"),
			"-n", "-s", filepath.Join(s.Dir, "state")},
		Dir: s.Dir,
	})
	if err := s.waitReady(s.t.Context()); err != nil {
		s.Process.Kill()
		return err
	}
	return nil
}

// Restart kills the simulator, StartCmd's process with it (the machine
// loses power, as a BMC's reset would not do), and starts it again on the
// same address, configuration and state: its chassis is off unless
// PoweredOn was set. Its sessions, serial-over-LAN's included, are gone.
func (s *IPMISim) Restart() {
	s.t.Helper()
	s.Process.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("lab: restart ipmi_sim %s: %v", s.name, err)
	}
}

// ipmiLanConf is cfg's lan.conf: one LAN channel, the VM channel that
// makes power control work, the serial-over-LAN's serial console,
// StartCmd and one administrator. A chassis control program, if given,
// does power and the boot device instead of StartCmd.
func ipmiLanConf(cfg IPMISimConfig, port, vmPort int, chassis string) string {
	auths := "none md2 md5 straight"
	var b strings.Builder
	fmt.Fprintf(&b, "name \"%s\"\n", cfg.Name)
	fmt.Fprintf(&b, "set_working_mc 0x20\n")
	fmt.Fprintf(&b, "  startlan 1\n")
	fmt.Fprintf(&b, "    addr %s %d\n", cfg.Addr, port)
	fmt.Fprintf(&b, "    priv_limit admin\n")
	for _, p := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&b, "    allowed_auths_%s %s\n", p, auths)
	}
	fmt.Fprintf(&b, "    guid a123456789abcdefa123456789abcdef\n")
	fmt.Fprintf(&b, "  endlan\n")
	fmt.Fprintf(&b, "  serial 15 %s %d codec VM\n", cfg.Addr, vmPort)
	if cfg.SOL != "" {
		fmt.Fprintf(&b, "  sol \"telnet:%s\" 115200\n", cfg.SOL)
	}
	if chassis != "" {
		fmt.Fprintf(&b, "  chassis_control \"%s\"\n", chassis)
	} else {
		fmt.Fprintf(&b, "  startcmd \"%s\"\n", cfg.StartCmd)
		fmt.Fprintf(&b, "  startnow %t\n", cfg.PoweredOn)
	}
	fmt.Fprintf(&b, "  user 2 true \"%s\" \"%s\" admin 10 %s\n", cfg.Username, cfg.Password, auths)
	return b.String()
}

// ipmiCmdEmu is the emulator's command file: a BMC with a SEL.
const ipmiCmdEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// freePort returns a port of network ("udp" or "tcp") free on addr, in
// n if it is not nil.
func freePort(n *Netns, network, addr string) (int, error) {
	hostPort := net.JoinHostPort(addr, "0")
	if network == "udp" {
		var pc net.PacketConn
		var err error
		if n != nil {
			pc, err = n.ListenPacket(network, hostPort)
		} else {
			pc, err = net.ListenPacket(network, hostPort)
		}
		if err != nil {
			return 0, err
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port, nil
	}
	var ln net.Listener
	var err error
	if n != nil {
		ln, err = n.Listen(network, hostPort)
	} else {
		ln, err = net.Listen(network, hostPort)
	}
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls chassis power status until the simulator answers.
func (s *IPMISim) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		out, err := s.IPMITool(ctx, "chassis", "power", "status")
		if err == nil {
			return nil
		}
		select {
		case <-s.Process.Exited():
			return fmt.Errorf("exited (%v) before answering: %s", s.Process.Err(), tail(s.Process.Stderr, 10))
		case <-ctx.Done():
			return fmt.Errorf("no answer to ipmitool at %s: %w: %s", s.Addr, ctx.Err(), out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// IPMITool runs ipmitool against the simulator, in its namespace, with
// its credentials (the password goes in the environment, not on the
// command line), and returns the combined output. One try, one second:
// a test asking the simulator directly expects a quick answer.
func (s *IPMISim) IPMITool(ctx context.Context, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(s.Addr)
	full := append([]string{"-I", "lanplus", "-H", host, "-p", port, "-U", s.Username, "-E", "-C", "3", "-N", "1", "-R", "1"}, args...)
	var cmd *exec.Cmd
	if s.netns != nil {
		cmd = s.netns.CommandContext(ctx, "ipmitool", full...)
	} else {
		p, err := lookPath("ipmitool")
		if err != nil {
			return "", err
		}
		cmd = exec.CommandContext(ctx, p, full...)
	}
	cmd.Env = append(os.Environ(), "IPMITOOL_PASSWORD="+s.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lab: ipmitool %s at %s: %w: %s", strings.Join(args, " "), s.Addr, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// PowerState asks the simulator directly: "on" or "off".
func (s *IPMISim) PowerState(ctx context.Context) (string, error) {
	out, err := s.IPMITool(ctx, "chassis", "power", "status")
	if err != nil {
		return "", err
	}
	switch strings.TrimSpace(out) {
	case "Chassis Power is on":
		return "on", nil
	case "Chassis Power is off":
		return "off", nil
	}
	return "", errors.New("lab: unexpected chassis power status: " + out)
}

// StartConsoleVM starts, in a namespace of its own named after name, a
// VM behind ipmi_sim with serial-over-LAN: a machine to watch and type
// to through its BMC. Powered on over IPMI, it boots the installer
// directly (Kernel and InstallerInitrd, no network boot) with its
// console on the serial port, which echoes what is typed on it. The
// serial console also goes to the file serial. Dial the simulator from
// inside ns (Netns.DialContext).
func StartConsoleVM(t T, imgs Images, name string) (ns *Netns, sim *IPMISim, serial string) {
	t.Helper()
	ns = NewNetns(t, name)
	ns.Bridge("br0", "")
	ns.Tap("tap0", "br0")
	args, serial := VMCommand(t, VMConfig{Tap: "tap0", Kernel: imgs.Kernel, Initrd: imgs.InstallerInitrd,
		Append: "console=ttyS0,115200 panic=-1 " + GuestKernelArgs})
	sim = StartIPMISim(t, IPMISimConfig{Name: name, Netns: ns, StartArgs: args})
	return ns, sim, serial
}

// ProbeEcho types the lines base-1, base-2, ... on a console that echoes
// what is typed (StartConsoleVM's) until one comes back whole, and
// returns it: the guest's own output may fall between the echoed keys.
// typeLine types a line and Enter; echoed waits until the console has
// shown s, and reports false if its context ends first. Each line has a
// while to come back; ProbeEcho gives up when ctx ends.
func ProbeEcho(ctx context.Context, typeLine func(string) error, echoed func(ctx context.Context, s string) bool, base string) (string, error) {
	for i := 1; ; i++ {
		line := fmt.Sprintf("%s-%d", base, i)
		if err := typeLine(line); err != nil {
			return "", fmt.Errorf("lab: type %q: %w", line, err)
		}
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ok := echoed(lctx, line+"\r")
		cancel()
		if ok {
			return line, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("lab: no line %s-N came back whole: %w", base, ctx.Err())
		}
	}
}

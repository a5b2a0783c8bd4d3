package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// The DHCP benchmarks' load: perfdhcp in a client namespace, and the
// search for the highest rate a server keeps up with.

// dhcpServer is a DHCP server under test: one process, or a site of
// several.
type dhcpServer interface {
	exited() bool
	stop()
	logTail() string // where its log is and how it ends, for an error
}

// dhcpLoad is perfdhcp on the client end of a benchmark's network.
type dhcpLoad struct {
	ns       *lab.Netns
	iface    string // the client's interface in ns
	perfdhcp string
}

// probe offers rate exchanges per second for d, from dhcpClients MACs,
// and waits dhcpProbeWait for late answers.
func (l dhcpLoad) probe(ctx context.Context, rate int, d time.Duration) (perfResult, error) {
	res, err := l.run(ctx, d+30*time.Second,
		"-r", strconv.Itoa(rate), "-R", strconv.Itoa(dhcpClients),
		"-p", strconv.Itoa(int(d/time.Second)),
		"-W", strconv.Itoa(int(dhcpProbeWait/time.Microsecond)))
	res.seconds = d.Seconds()
	return res, err
}

// exchanges begins n exchanges at rate per second, from dhcpClients MACs,
// and counts an answer that comes within wait (a server under valgrind
// is slow).
func (l dhcpLoad) exchanges(ctx context.Context, n, rate int, wait time.Duration) (perfResult, error) {
	timeout := time.Duration(n/rate)*time.Second + 2*wait + time.Minute
	return l.run(ctx, timeout,
		"-r", strconv.Itoa(rate), "-R", strconv.Itoa(dhcpClients), "-n", strconv.Itoa(n),
		"-d", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64),
		"-W", strconv.Itoa(int(wait/time.Microsecond)))
}

// run runs perfdhcp -4 on the client's interface with args, for at most
// timeout, and reads its report.
func (l dhcpLoad) run(ctx context.Context, timeout time.Duration, args ...string) (perfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := l.ns.CommandContext(ctx, l.perfdhcp, append([]string{"-4", "-l", l.iface}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	what := "perfdhcp " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return perfResult{}, fmt.Errorf("%s: %w", what, ctx.Err())
	}
	// perfdhcp exits 3 when it saw drops; its report is still complete.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return perfResult{}, fmt.Errorf("%s: %v\n%s", what, err, out)
	}
	res, err := parsePerfdhcp(string(out))
	if err != nil {
		return perfResult{}, fmt.Errorf("%s: %w\n%s", what, err, out)
	}
	return res, nil
}

// waitDHCP waits until srv completes exchanges, for up to timeout.
func waitDHCP(ctx context.Context, load dhcpLoad, srv dhcpServer, timeout time.Duration) error {
	return waitAnswers(ctx, srv, timeout, func(ctx context.Context) (perfResult, error) {
		return load.probe(ctx, 20, time.Second)
	})
}

// waitAnswers runs try until an exchange of its completes, for up to
// timeout, or until srv exits.
func waitAnswers(ctx context.Context, srv dhcpServer, timeout time.Duration, try func(context.Context) (perfResult, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := try(ctx)
		if err != nil {
			return err
		}
		if res.acks > 0 {
			return nil
		}
		if srv.exited() {
			return fmt.Errorf("exited; %s", srv.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no DHCP answer after %v; %s", timeout, srv.logTail())
		}
	}
}

// rateSearch is where searchRate starts and how far it steps.
type rateSearch struct {
	from   int     // the first rate offered
	factor float64 // up or down by this much until one passes and one fails
	budget time.Duration
}

// firstSearch is a server's first search: from dhcpStartRate, doubling
// or halving.
var firstSearch = rateSearch{from: dhcpStartRate, factor: 2, budget: dhcpBudget}

// nextSearch is a later run's: from the rate that passed last time, in
// steps of a quarter, since the last run was near.
func nextSearch(passed int) rateSearch {
	if passed <= 0 {
		return firstSearch
	}
	return rateSearch{from: passed, factor: 1.25, budget: dhcpBudget}
}

// probeFunc offers a rate and reports what came of it.
type probeFunc func(ctx context.Context, rate int) (perfResult, error)

// searchRate finds the highest offered rate with drops within
// dhcpMaxDrops: it steps by s.factor from s.from until one rate passes and
// one fails, then bisects (dhcpBisections times at most, or until the two
// are within 5 %), within s.budget of probes. It returns the rate of
// completed exchanges achieved at the best passing rate, and that offered
// rate. The criterion is the same for every server; only where the search
// starts differs.
func searchRate(ctx context.Context, s rateSearch, name string, probe probeFunc) (best float64, passed int, err error) {
	deadline := time.Now().Add(s.budget)
	var fail, bisected, tried int
	rate := s.from
	for ctx.Err() == nil && time.Now().Add(dhcpProbe).Before(deadline) && rate >= 10 {
		tried = rate
		res, err := probe(ctx, rate)
		if err != nil {
			return 0, 0, err
		}
		ok := res.drops() <= dhcpMaxDrops
		fmt.Fprintf(os.Stderr, "dhcp: %-8s offered %5d/s: %6.0f/s completed, %5.2f %% dropped%s\n",
			name, rate, res.achieved(), 100*res.drops(), map[bool]string{true: "", false: " (too many)"}[ok])
		if ok {
			passed = max(passed, rate)
			best = max(best, res.achieved())
		} else {
			fail = rate
		}
		switch {
		case passed > 0 && fail > 0:
			if bisected == dhcpBisections || fail-passed <= passed/20 {
				return best, passed, ctx.Err()
			}
			bisected++
			rate = (passed + fail) / 2
		case fail == 0:
			rate = int(float64(rate) * s.factor)
		default:
			rate = int(float64(rate) / s.factor)
		}
	}
	if best == 0 && ctx.Err() == nil {
		return 0, 0, fmt.Errorf("no rate down to %d/s had drops within %.1f %%", tried, 100*dhcpMaxDrops)
	}
	return best, passed, ctx.Err()
}

// perfResult is what one perfdhcp run reports.
type perfResult struct {
	seconds   float64
	discovers int // DISCOVERs sent
	offers    int
	requests  int
	acks      int // ACKs received: completed exchanges
}

// drops is the share of exchanges begun that did not complete.
func (r perfResult) drops() float64 {
	if r.discovers == 0 {
		return 1
	}
	return 1 - float64(r.acks)/float64(r.discovers)
}

// achieved is completed exchanges per second of load.
func (r perfResult) achieved() float64 { return float64(r.acks) / r.seconds }

// parsePerfdhcp reads perfdhcp -4's final report: the sent and received
// counts of its DISCOVER-OFFER and REQUEST-ACK sections.
func parsePerfdhcp(out string) (perfResult, error) {
	var r perfResult
	var section string
	found := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if s, ok := strings.CutPrefix(line, "***Statistics for: "); ok {
			section = strings.TrimSuffix(s, "***")
			continue
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok || (key != "sent packets" && key != "received packets") {
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil {
			return r, fmt.Errorf("%q: %w", line, err)
		}
		found[section+"/"+key] = true
		switch section + "/" + key {
		case "DISCOVER-OFFER/sent packets":
			r.discovers = n
		case "DISCOVER-OFFER/received packets":
			r.offers = n
		case "REQUEST-ACK/sent packets":
			r.requests = n
		case "REQUEST-ACK/received packets":
			r.acks = n
		}
	}
	if !found["DISCOVER-OFFER/sent packets"] || !found["REQUEST-ACK/received packets"] {
		return r, errors.New("no DISCOVER-OFFER and REQUEST-ACK statistics in perfdhcp's output")
	}
	return r, nil
}

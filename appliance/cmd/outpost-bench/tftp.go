package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/tftp"
)

const (
	tftpBenchFile    = "/usr/lib/ipxe/ipxe.efi" // Debian's ipxe package
	tftpBenchFetches = 50
	tftpBenchRounds  = 3
)

// benchTFTP serves one directory holding Debian's ipxe.efi with Outpost's
// TFTP server and with tftpd-hpa's in.tftpd, side by side on loopback, and
// times the wall clock of 50 parallel tftp-hpa fetches from each: three
// rounds, alternating servers, the median of each. It prints one line:
// "BENCH tftp.concurrent50 outpost=<s> tftpd_hpa=<s> ratio=<outpost/tftpd>".
// The duration flag does not apply: the work is fixed.
func benchTFTP(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	client, err := lookTFTP("tftp", "tftp-hpa")
	if err != nil {
		return err
	}
	tftpd, err := lookTFTP("in.tftpd", "tftpd-hpa")
	if err != nil {
		return err
	}
	want, err := os.ReadFile(tftpBenchFile)
	if err != nil {
		return fmt.Errorf("%w (Debian package ipxe)", err)
	}
	dir, err := os.MkdirTemp("", "outpost-bench-tftp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "root")
	if err := writeTFTPRoot(dir, root, want); err != nil {
		return err
	}

	ours, stopOurs, err := startOutpostTFTP(ctx, log, root)
	if err != nil {
		return err
	}
	defer stopOurs()
	theirs, stopTheirs, err := startTFTPDHPA(tftpd, root)
	if err != nil {
		return err
	}
	defer stopTheirs()

	servers := []string{ours, theirs}
	times := make([][]float64, len(servers))
	for i, port := range servers { // warm up, and wait for in.tftpd
		if err := waitTFTP(ctx, client, port, dir, want); err != nil {
			return fmt.Errorf("server %d: %w", i, err)
		}
	}
	for round := range tftpBenchRounds {
		for k := range servers {
			i := (k + round) % len(servers) // alternate who goes first
			secs, err := fetchParallel(ctx, client, servers[i], dir, want, tftpBenchFetches)
			if err != nil {
				return err
			}
			times[i] = append(times[i], secs)
		}
	}
	o, h := median(times[0]), median(times[1])
	fmt.Printf("BENCH tftp.concurrent%d outpost=%.3f tftpd_hpa=%.3f ratio=%.3f\n",
		tftpBenchFetches, o, h, o/h)
	return benchTFTPWindow(ctx, ours, dir, want)
}

// tftpWindowFetches is how many fetches one run of tftp.window times.
const tftpWindowFetches = 20

// benchTFTPWindow times atftp fetching ipxe.efi from Outpost's server in
// lock-step (windowsize 1) and with windowsize 16 (RFC 7440), 512-byte
// blocks: three runs of each, interleaved, each run 20 fetches one after
// another, after one of each to warm up. It prints "BENCH tftp.window window1=<s> window16=<s>
// speedup=<median ratio> speedup_min=<n> spread_pct=<n> runs=3": the
// medians of the runs' seconds, the smallest of the three paired ratios
// (run i against run i), and the larger of the two runs' spreads.
func benchTFTPWindow(ctx context.Context, port, dir string, want []byte) error {
	atftp, err := lookTFTP("atftp", "atftp")
	if err != nil {
		return err
	}
	windows := []int{1, 16}
	for _, w := range windows { // warm up
		if err := fetchATFTP(ctx, atftp, port, dir, want, w); err != nil {
			return err
		}
	}
	secs := make([][]float64, len(windows))
	for range tftpBenchRounds {
		for i, w := range windows {
			start := time.Now()
			for range tftpWindowFetches {
				if err := fetchATFTP(ctx, atftp, port, dir, want, w); err != nil {
					return err
				}
			}
			secs[i] = append(secs[i], time.Since(start).Seconds())
		}
	}
	ratios := make([]float64, tftpBenchRounds)
	for r := range ratios {
		ratios[r] = secs[0][r] / secs[1][r]
	}
	one, sixteen, speedup := summarize(secs[0]), summarize(secs[1]), summarize(ratios)
	fmt.Printf("BENCH tftp.window file=ipxe.efi fetches=%d window1=%.3f window16=%.3f speedup=%.2f speedup_min=%.2f spread_pct=%.1f runs=%d\n",
		tftpWindowFetches, one.median, sixteen.median, speedup.median, slices.Min(ratios),
		max(one.spreadPct, sixteen.spreadPct), tftpBenchRounds)
	return nil
}

// fetchATFTP fetches ipxe.efi once with atftp asking for window blocks a
// window, and checks the copy against want.
func fetchATFTP(ctx context.Context, atftp, port, dir string, want []byte, window int) error {
	local := filepath.Join(dir, "window.efi")
	defer os.Remove(local)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, atftp, "--option", fmt.Sprintf("windowsize %d", window),
		"-g", "-r", "ipxe.efi", "-l", local, "127.0.0.1", port)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("atftp windowsize %d: %v %s", window, err, msg)
	}
	return sameContent(local, want)
}

// writeTFTPRoot makes root below dir holding ipxe.efi. in.tftpd chroots
// into root and drops to user nobody, so both must be readable by all.
func writeTFTPRoot(dir, root string, ipxe []byte) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "ipxe.efi"), ipxe, 0o644)
}

func lookTFTP(bin, pkg string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(d, bin); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install the Debian package %s", bin, pkg)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startOutpostTFTP serves root on a free loopback port.
func startOutpostTFTP(ctx context.Context, log *slog.Logger, root string) (port string, stop func(), err error) {
	srv, err := tftp.New(tftp.Config{Root: root, Log: log})
	if err != nil {
		return "", nil, err
	}
	conn, err := tftp.Listen("127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	_, port, _ = net.SplitHostPort(conn.LocalAddr().String())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	return port, func() {
		cancel()
		if err := <-done; err != nil {
			log.Error("outpost tftp", "err", err)
		}
		srv.Close()
	}, nil
}

// startTFTPDHPA runs in.tftpd in the foreground on a free loopback port,
// in its own process group so that stop ends it and its transfer children.
func startTFTPDHPA(bin, root string) (port string, stop func(), err error) {
	port, err = freeUDPPort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-L", "-s", root, "-a", "127.0.0.1:"+port)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("in.tftpd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
		return "", nil, fmt.Errorf("in.tftpd exited at once (it needs root for -s): %s", stderr.Bytes())
	case <-time.After(100 * time.Millisecond):
	}
	return port, func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}, nil
}

func freeUDPPort() (string, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	_, port, err := net.SplitHostPort(c.LocalAddr().String())
	return port, err
}

// waitTFTP fetches once, retrying for a few seconds while the server
// starts.
func waitTFTP(ctx context.Context, client, port, dir string, want []byte) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := fetchParallel(ctx, client, port, dir, want, 1)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetchParallel runs n tftp-hpa clients at once, each fetching ipxe.efi,
// checks every copy against want and returns the wall clock of the n in
// seconds.
func fetchParallel(ctx context.Context, client, port, dir string, want []byte, n int) (float64, error) {
	out, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(out)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			local := filepath.Join(out, strconv.Itoa(i))
			cmd := exec.CommandContext(ctx, client, "127.0.0.1", port, "-m", "binary", "-c", "get", "ipxe.efi", local)
			if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
				errs[i] = fmt.Errorf("tftp get from port %s: %v %s", port, err, msg)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	for i := range n {
		if errs[i] == nil {
			errs[i] = sameContent(filepath.Join(out, strconv.Itoa(i)), want)
		}
	}
	return secs, errors.Join(errs...)
}

func sameContent(name string, want []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: %d bytes differ from the %d served", name, len(got), len(want))
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

package e2e

import (
	"bufio"
	"context"
	binenc "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/syncproto"
)

// fdLimit is the open-file limit the flooded appliance runs under: room
// for its default TFTP cap (1024 transfers, a socket and a file each)
// and everything else, less than a flood without a cap takes.
const fdLimit = 3072

// A flood of TFTP read requests that are never acknowledged does not
// stop the API from accepting connections, nor take the descriptors of
// anything else in the appliance. Each such request used to
// hold a socket and a file for the transfer's whole retry time, so that
// 12,000 of them took 20,000 descriptors and the API could not accept;
// now at most tftp_max_transfers run at once and the rest are refused
// as soon as they arrive.
func TestTFTPFloodKeepsTheAPI(t *testing.T) {
	c := newCluster(t)
	n := c.addNode("n1", "")
	artifacts := t.TempDir()
	if err := os.WriteFile(filepath.Join(artifacts, "undionly.kpxe"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	tftpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n.args = append(n.args, "-tftp-addr", tftpAddr, "-artifact-dir", artifacts, "-log-level", "info")
	c.start(n)
	c.token = c.waitAdminToken(n)
	c.waitFormed(n)
	pid := n.proc.cmd.Process.Pid
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: fdLimit, Max: fdLimit}, nil); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	flooded := make(chan int, 1)
	go func() { flooded <- floodTFTP(t, tftpAddr, stop) }()
	defer func() {
		close(stop)
		t.Logf("sent %d read requests", <-flooded)
	}()
	// The flood bites: the appliance holds at least a cap's worth of
	// transfers open (on the code before the cap, it holds all it can).
	c.waitFor(time.Minute, "the flood to hold 1500 descriptors", func() error {
		if k := openFiles(pid); k < 1500 {
			return fmt.Errorf("%d open", k)
		}
		return nil
	})

	// The API is asked, each time on a new connection (so that each
	// needs an accept), for as long as two lifetimes of an
	// unacknowledged transfer (Timeout × (Retries+1) = 6 s): the flood is
	// at its height.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	peak := 0
	for start := time.Now(); time.Since(start) < 12*time.Second; {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", n.apiURL+"/v1/machines", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("an API request during the flood (%d files open): %v", openFiles(pid), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("an API request during the flood: %d", resp.StatusCode)
		}
		peak = max(peak, openFiles(pid))
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("at most %d files open seen", peak)
	if !n.running() {
		t.Fatalf("the appliance died under the flood: %v", n.proc.err)
	}
	// Nothing of the appliance ran out of descriptors: the API's accept
	// did not fail and retry (net/http logs each), nor did anything else.
	checkNoEMFILE(t, n)
	if busy := metric(t, c, n, "outpost_tftp_busy_total"); busy < 1 {
		t.Errorf("outpost_tftp_busy_total = %v: the flood never reached the cap", busy)
	}
	if k := openFiles(pid); k >= fdLimit-100 {
		t.Errorf("%d files open under a limit of %d", k, fdLimit)
	}
}

// checkNoEMFILE fails the test if n's logs say it ran out of file
// descriptors: the API's accept (net/http logs each failure) or anything
// else.
func checkNoEMFILE(t *testing.T, n *node) {
	t.Helper()
	for _, f := range []string{n.proc.stdout, n.proc.stderr} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var accept, other []string
		for _, line := range strings.Split(string(raw), "\n") {
			switch {
			case strings.Contains(line, "Accept error"):
				accept = append(accept, line)
			case strings.Contains(line, "too many open files"):
				other = append(other, line)
			}
		}
		if len(accept) > 0 {
			t.Errorf("the API failed to accept %d times under the flood; the first: %s", len(accept), accept[0])
		}
		if len(other) > 0 {
			t.Errorf("the appliance ran out of descriptors %d times under the flood; the first: %s", len(other), other[0])
		}
	}
}

// floodTFTP sends read requests to addr from one socket, never acking,
// as fast as it can until stop is closed, and returns how many it sent.
func floodTFTP(t *testing.T, addr string, stop <-chan struct{}) int {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	to, _ := net.ResolveUDPAddr("udp4", addr)
	rrq := binenc.BigEndian.AppendUint16(nil, 1)
	rrq = append(rrq, "undionly.kpxe\x00octet\x00"...)
	sent := 0
	for {
		select {
		case <-stop:
			return sent
		default:
		}
		for range 100 {
			if _, err := conn.WriteTo(rrq, to); err == nil {
				sent++
			}
		}
		time.Sleep(time.Millisecond) // about 50,000 a second: more than it serves
	}
}

// openFiles is the number of file descriptors pid has open.
func openFiles(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

// metric reads a metric without labels from n's /metrics.
func metric(t *testing.T, c *cluster, n *node, name string) float64 {
	t.Helper()
	resp, err := c.http.Get(n.apiURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// Central's memory stays bounded under 200 strangers that each open the
// sync websocket and send a 4 MiB frame as their hello. Central used to
// read such frames whole (the protocol's limit) before looking at the
// hello: 200 connections took 1.9 GB. Now it reads at most
// hub.HelloLimit (8 KiB) of a frame before the hello is verified, and
// takes at most max_pending_handshakes (128) connections into their
// handshake at once.
//
// The bound: the growth of the process's peak resident memory (VmHWM) is
// under 64 MiB. What the flood may cost is, per connection, a goroutine,
// the HTTP server's and the websocket's buffers (a few KiB each) and at
// most 8 KiB of frame: under 100 KiB, 20 MiB for 200, which the garbage
// collector lets grow to twice that before it collects; against 200 × 4
// MiB = 800 MiB if the frames were read.
func TestCentralHelloFloodMemory(t *testing.T) {
	bin := centrald(t)
	central := labsite.StartCentral(t, bin, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	credFile := central.NewSite("fra-1")
	pid := central.Proc.Pid()
	before := peakRSS(t, pid)

	payload := make([]byte, syncproto.MaxFrameSize) // shared: the clients cost the test little
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := bigHello(central.Addr, payload)
			mu.Lock()
			outcomes[o]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	after := peakRSS(t, pid)
	t.Logf("peak RSS %d KiB before, %d KiB after; outcomes %v", before>>10, after>>10, outcomes)
	if outcomes["refused"]+outcomes["closed"] != 200 {
		t.Errorf("outcomes %v: every stranger must be refused or closed", outcomes)
	}
	if growth := after - before; growth > 64<<20 {
		t.Errorf("peak RSS grew by %d MiB under 200 unauthenticated 4 MiB hellos, more than 64 MiB", growth>>20)
	}

	// Central still welcomes its sites.
	cred, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := welcome(t.Context(), central.Addr, "fra-1", strings.TrimSpace(string(cred))); err != nil {
		t.Fatalf("a site after the flood: %v", err)
	}
}

// bigHello opens the sync websocket by hand on addr and sends a text
// frame of len(payload) bytes, then reads until central closes the
// connection. It returns "refused" (no websocket: 503), "closed" (central
// closed it) or what went wrong.
func bigHello(addr string, payload []byte) string {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", syncproto.Path, addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "upgrade: " + err.Error()
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return "refused"
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return "upgrade: " + resp.Status
	}
	// A masked text frame with a 64-bit length; a zero mask leaves the
	// payload as it is.
	header := []byte{0x81, 0x80 | 127}
	header = binenc.BigEndian.AppendUint64(header, uint64(len(payload)))
	header = append(header, 0, 0, 0, 0)
	c.Write(header)
	c.Write(payload) // fails once central has closed the connection
	_, err = io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "still open"
	}
	return "closed"
}

// welcome connects as site with cred and returns nil once welcomed.
func welcome(ctx context.Context, addr, site, cred string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+syncproto.Path, nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	frame, err := syncproto.Encode(&syncproto.Hello{Site: site, Credential: syncproto.Credential(cred), Versions: syncproto.Supported})
	if err != nil {
		return err
	}
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return err
	}
	_, raw, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	m, err := syncproto.Decode(raw)
	if err != nil {
		return err
	}
	if _, ok := m.(*syncproto.Welcome); !ok {
		b, _ := json.Marshal(m)
		return fmt.Errorf("answered %s", b)
	}
	return nil
}

// peakRSS is pid's peak resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// A central whose disk is full answers writes 503 with Retry-After, not
// 500, and stores nothing; once space is freed, the same write succeeds.
// Central runs in a mount namespace of its own with its data directory
// on a small tmpfs; the test fills the tmpfs through /proc/<pid>/root.
func TestCentralDiskFull(t *testing.T) {
	lab.Require(t, "root", "unshare", "mount")
	bin := centrald(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	script := `mount -t tmpfs -o size=8m,mode=0700 outpost-full "$0" && exec "$@"`
	proc := lab.StartProcess(t, lab.ProcessConfig{Name: "centrald", Args: []string{
		"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, data,
		bin, "-data-dir", data, "-addr", addr}})
	inside := filepath.Join(fmt.Sprintf("/proc/%d/root", proc.Pid()), data) // the tmpfs, from here
	central := &labsite.Central{Addr: addr, URL: "http://" + addr, DataDir: inside, Proc: proc}
	token := waitFile(t, proc, filepath.Join(inside, "admin.token"))
	central.Token = token
	do := func(method, path, body string) (int, http.Header, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, central.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(raw)
	}
	if code, _, body := do("POST", "/v1/sites", `{"id":"fra-1","name":"Frankfurt 1"}`); code != http.StatusCreated {
		t.Fatalf("create a site: %d %s", code, body)
	}
	filler := filepath.Join(inside, "filler")
	fill(t, filler)

	// A machine of about a mebibyte: more pages than the store has free.
	machine := `{"id":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"note":"` + strings.Repeat("x", 900<<10) + `"}`
	code, header, body := do("PUT", "/v1/sites/fra-1/machines/m1", machine)
	if code != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || !strings.Contains(body, "disk is full") {
		t.Fatalf("a write on a full disk: %d (Retry-After %q) %s, want 503 with Retry-After saying the disk is full",
			code, header.Get("Retry-After"), body)
	}
	if code, _, _ := do("GET", "/v1/sites/fra-1/machines/m1", ""); code != http.StatusNotFound {
		t.Errorf("the refused machine: GET %d, want 404", code)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if code, _, body := do("PUT", "/v1/sites/fra-1/machines/m1", machine); code != http.StatusOK {
		t.Fatalf("the same write once space is freed: %d %s", code, body)
	}
	if !proc.Running() {
		t.Fatal("central stopped")
	}
}

// waitFile waits for a file that ends with a newline and returns its
// content, trimmed.
func waitFile(t *testing.T, proc *lab.Process, path string) string {
	t.Helper()
	var got string
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		if !proc.Running() {
			return fmt.Errorf("centrald exited: %v", proc.Err())
		}
		raw, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return fmt.Errorf("%s not written yet (%v)", path, err)
		}
		got = strings.TrimSpace(string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// fill writes path until its file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	if _, err := lab.FillFS(path); err != nil {
		t.Fatal(err)
	}
}

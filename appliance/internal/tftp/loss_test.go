package tftp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// serveEnv makes the test binary a TFTP server for the loss tests
// instead (see TestMain): it serves the directory it names on
// 127.0.0.1:69 of the namespace it runs in, until killed.
const serveEnv = "OUTPOST_TFTP_TEST_SERVE"

func TestMain(m *testing.M) {
	if root := os.Getenv(serveEnv); root != "" {
		os.Exit(serveForLossTest(root))
	}
	os.Exit(m.Run())
}

// serveForLossTest is the server of TestLoss, run inside its namespace:
// the server's transfer sockets must be made there too, which a
// goroutine of the test process cannot promise.
func serveForLossTest(root string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := New(Config{Root: root, Log: log, Timeout: 100 * time.Millisecond, Retries: 50})
	if err != nil {
		log.Error("new", "err", err)
		return 1
	}
	conn, err := Listen("127.0.0.1:69")
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	fmt.Println("tftp: serving")
	if err := s.Serve(context.Background(), conn); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// Packets lost at random do not change what arrives. nftables inside
// the test's namespace drops 5 % of DATA packets, then also 5 % of ACKs:
// windowed (atftp) and lock-step (atftp without options, and tftp-hpa,
// which has no windowsize) fetches are byte-exact. OACKs and their ACK
// are spared: atftp 0.8's client aborts on an OACK sent again. ACKs are
// lost only under tftp-hpa: atftp's client sends one ACK again for a
// block it gets twice, then ignores it for good, so a second lost ACK
// stalls it whatever the server does.
func TestLoss(t *testing.T) {
	parallel(t)
	lab.Require(t, "root", "ip", "nft", "atftp", "tftp")
	ns := lab.NewNetns(t, "tftploss")
	root := t.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	data := make([]byte, 150*1024+99)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	mustWrite(t, filepath.Join(root, "lossy.bin"), data)
	srv := lab.StartProcess(t, lab.ProcessConfig{Name: "tftp-server", Netns: ns, Args: []string{os.Args[0]}, Env: []string{serveEnv + "=" + root}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := srv.WaitForLine(ctx, regexp.MustCompile(`^tftp: serving`)); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "add", "table", "inet", "loss")
	nft(t, ns, "add", "chain", "inet", "loss", "in", "{ type filter hook input priority 0; }")
	// The payload's first 16 bits are the opcode, the next the block.
	nft(t, ns, "add", "rule", "inet", "loss", "in", "udp", "dport", "!=", "69", "@th,64,16", "==", "3",
		"numgen", "random", "mod", "100", "<", "5", "counter", "drop")
	fetchAll(t, "DATA lost", ns, data, map[string][]string{
		"atftp windowsize 8":       {"atftp", "--option", "windowsize 8"},
		"atftp windowsize 16 1468": {"atftp", "--option", "windowsize 16", "--option", "blksize 1468"},
		"atftp windowsize 64":      {"atftp", "--option", "windowsize 64"},
		"atftp lock-step":          {"atftp"},
		"tftp-hpa lock-step":       {"tftp"},
	})
	nft(t, ns, "add", "rule", "inet", "loss", "in", "udp", "dport", "!=", "69", "@th,64,16", "==", "4", "@th,80,16", "!=", "0",
		"numgen", "random", "mod", "100", "<", "5", "counter", "drop")
	fetchAll(t, "ACKs lost too", ns, data, map[string][]string{
		"tftp-hpa lock-step": {"tftp"},
	})
	if n := dropped(t, ns); n[0] == 0 || n[1] == 0 {
		t.Errorf("nftables dropped %d DATA and %d ACK packets: the transfers were not lossy", n[0], n[1])
	} else {
		t.Logf("dropped %d DATA and %d ACK packets", n[0], n[1])
	}
}

// fetchAll fetches lossy.bin with each client command at once, in a
// subtest group that ends when they all have, and checks each copy is
// data.
func fetchAll(t *testing.T, group string, ns *lab.Netns, data []byte, clients map[string][]string) {
	t.Helper()
	t.Run(group, func(t *testing.T) {
		for name, args := range clients {
			fetch(t, name, ns, data, args)
		}
	})
}

// fetch runs one client command in a parallel subtest.
func fetch(t *testing.T, name string, ns *lab.Netns, data []byte, args []string) {
	t.Run(name, func(t *testing.T) {
		parallel(t)
		local := filepath.Join(t.TempDir(), "got")
		if args[0] == "tftp" {
			args = append(args, "127.0.0.1", "69", "-m", "binary", "-c", "get", "lossy.bin", local)
		} else {
			args = append(args, "-g", "-r", "lossy.bin", "-l", local, "127.0.0.1", "69")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
		defer cancel()
		out, err := ns.Run(ctx, args[0], args[1:]...)
		got, _ := os.ReadFile(local)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v; got %d bytes, want %d identical\n%s", err, len(got), len(data), tail(out))
		}
	})
}

func nft(t *testing.T, ns *lab.Netns, args ...string) {
	t.Helper()
	if _, err := ns.Run(t.Context(), "nft", args...); err != nil {
		t.Fatal(err)
	}
}

// dropped reads the loss rules' counters, in the order they were added.
func dropped(t *testing.T, ns *lab.Netns) [2]int {
	t.Helper()
	out, err := ns.Run(t.Context(), "nft", "list", "table", "inet", "loss")
	if err != nil {
		t.Fatal(err)
	}
	var n [2]int
	ms := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(out, -1)
	if len(ms) != 2 {
		t.Fatalf("want 2 counters in\n%s", out)
	}
	for i, m := range ms {
		n[i], _ = strconv.Atoi(m[1])
	}
	return n
}

package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// parallel runs t in parallel locally and serially when CI is set.
func parallel(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Parallel()
	}
}

// need returns the path of a peer binary. Missing, it fails the test under
// CI, where the lab packages must be installed, and skips it otherwise.
func need(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: install the Debian package %s", bin, pkg)
		}
		t.Skipf("%s not found (Debian package %s)", bin, pkg)
	}
	return p
}

// fixture is a served directory with a server on 127.0.0.1.
type fixture struct {
	dir   string // holds root and the files outside it
	root  string // served
	port  string
	files map[string][]byte // name below root: content
	logs  *recorder
}

// newFixture fills a root directory and serves it with cfg (Root and Log
// are set here).
func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{dir: dir, root: filepath.Join(dir, "root"), files: map[string][]byte{}}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	ipxe, err := os.ReadFile("/usr/lib/ipxe/ipxe.efi") // Debian's ipxe package
	if err != nil {
		ipxe = random(850528)
	}
	fx.files["ipxe.efi"] = ipxe
	fx.files["random.bin"] = random(1<<20 + 777)
	fx.files["blocks512.bin"] = random(8 * 512)   // ends with an empty DATA packet
	fx.files["blocks1468.bin"] = random(3 * 1468) // the same with blksize 1468
	fx.files["empty.bin"] = nil
	fx.files["efi/x86_64/snponly.efi"] = random(173792)
	for name, data := range fx.files {
		mustWrite(t, filepath.Join(fx.root, name), data)
	}
	mustWrite(t, filepath.Join(dir, "secret"), []byte("secret outside the root\n"))
	for link, target := range map[string]string{
		"passwd":     "/etc/passwd",
		"sysconf":    "/etc",
		"secretlink": "../secret",
		"up":         "..",
		"inlink":     "ipxe.efi", // inside the root: allowed
	} {
		if err := os.Symlink(target, filepath.Join(fx.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(fx.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	fx.logs = newRecorder(t)
	cfg.Root, cfg.Log = fx.root, slog.New(fx.logs)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx.port = serve(t, s, conn)
	return fx
}

// serve runs s on conn until the test ends, then closes s, and returns
// conn's port.
func serve(t *testing.T, s *Server, conn net.PacketConn) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(t.Context(), conn) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	return port
}

// tftpGet fetches name with tftp-hpa into a new local file and returns the
// client's output and the local file's content (nil if it is missing).
func (fx *fixture) tftpGet(t *testing.T, name string) (string, []byte) {
	t.Helper()
	out, got, err := fx.runTFTP(t, need(t, "tftp", "tftp-hpa"), name)
	if err != nil {
		t.Fatal(err)
	}
	return out, got
}

// runTFTP is tftpGet for any goroutine: it reports errors instead of
// failing the test.
func (fx *fixture) runTFTP(t *testing.T, tftp, name string) (string, []byte, error) {
	local := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tftp, "127.0.0.1", fx.port, "-m", "binary", "-c", "get", name, local).CombinedOutput()
	if err != nil {
		return string(out), nil, fmt.Errorf("tftp get %q: %v\n%s", name, err, out)
	}
	got, err := os.ReadFile(local)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return string(out), nil, err
	}
	return string(out), got, nil
}

// atftpGet fetches name with atftp and the given RFC 2347 options; it
// returns the client's trace, the local file's content and the client's
// error.
func (fx *fixture) atftpGet(t *testing.T, name string, opts ...string) (string, []byte, error) {
	t.Helper()
	atftp := need(t, "atftp", "atftp")
	local := filepath.Join(t.TempDir(), "got")
	args := []string{"--trace", "--verbose"}
	for _, o := range opts {
		args = append(args, "--option", o)
	}
	args = append(args, "-g", "-r", name, "-l", local, "127.0.0.1", fx.port)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, runErr := exec.CommandContext(ctx, atftp, args...).CombinedOutput()
	got, err := os.ReadFile(local)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(out), got, runErr
}

func TestGetTFTPHPA(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	tests := map[string]struct{ name, file string }{
		"ipxe.efi":         {"ipxe.efi", "ipxe.efi"},
		"leading slash":    {"/ipxe.efi", "ipxe.efi"},
		"1 MiB + 777":      {"random.bin", "random.bin"},
		"whole blocks":     {"blocks512.bin", "blocks512.bin"},
		"empty":            {"empty.bin", "empty.bin"},
		"subdirectory":     {"/efi/x86_64/snponly.efi", "efi/x86_64/snponly.efi"},
		"symlink in root":  {"inlink", "ipxe.efi"},
		"dots and slashes": {"./efi//x86_64/./snponly.efi", "efi/x86_64/snponly.efi"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			out, got := fx.tftpGet(t, tt.name)
			if want := fx.files[tt.file]; !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d identical to %s\n%s", len(got), len(want), tt.file, out)
			}
		})
	}
	t.Run("logged", func(t *testing.T) {
		parallel(t)
		fx.tftpGet(t, "random.bin")
		rec := fx.logs.find(t, "tftp: sent", "random.bin")
		if rec["bytes"] != fmt.Sprint(len(fx.files["random.bin"])) ||
			!strings.HasPrefix(rec["client"], "127.0.0.1:") || rec["duration"] == "" {
			t.Errorf("log record %v", rec)
		}
	})
}

func TestOptionsATFTP(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	tests := map[string]struct {
		file    string
		opts    []string
		blksize int // DATA size the server must use
	}{
		"blksize 1468 and tsize":   {"random.bin", []string{"blksize 1468", "tsize 0"}, 1468},
		"blksize whole blocks":     {"blocks1468.bin", []string{"blksize 1468", "tsize 0"}, 1468},
		"blksize 8192 on loopback": {"ipxe.efi", []string{"blksize 8192", "tsize 0"}, 8192},
		"tsize only":               {"ipxe.efi", []string{"tsize 0"}, 512},
		"no options":               {"ipxe.efi", nil, 512},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			out, got, err := fx.atftpGet(t, tt.file, tt.opts...)
			want := fx.files[tt.file]
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("atftp: %v; got %d bytes, want %d identical\n%s", err, len(got), len(want), tail(out))
			}
			oack := line(out, "received OACK")
			if len(tt.opts) == 0 {
				if oack != "" {
					t.Errorf("OACK to a request without options: %s", oack)
				}
			} else {
				for _, o := range tt.opts {
					k, v, _ := strings.Cut(o, " ")
					if k == "tsize" {
						v = fmt.Sprint(len(want))
					}
					if !strings.Contains(oack, k+": "+v) {
						t.Errorf("OACK %q does not grant %s: %s", oack, k, v)
					}
				}
			}
			if first := fmt.Sprintf("DATA <block: 1, size %d>", tt.blksize); !strings.Contains(out, first) {
				t.Errorf("no %q in the trace:\n%s", first, head(out))
			}
		})
	}
}

func TestMaxBlockSize(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{MaxBlockSize: 1024})
	out, got, err := fx.atftpGet(t, "random.bin", "blksize 1468")
	if err != nil || !bytes.Equal(got, fx.files["random.bin"]) {
		t.Fatalf("atftp: %v, %d bytes\n%s", err, len(got), tail(out))
	}
	if oack := line(out, "received OACK"); !strings.Contains(oack, "blksize: 1024") {
		t.Errorf("OACK %q, want blksize 1024", oack)
	}
}

func TestRefusedTFTPHPA(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	abs := filepath.Join(fx.dir, "secret")
	tests := map[string]struct {
		name string
		code int    // TFTP error code the client reports
		log  string // message logged
	}{
		"dotdot":                    {"../secret", 2, "tftp: read refused"},
		"absolute dotdot":           {"/../secret", 2, "tftp: read refused"},
		"dotdot deep":               {"efi/../../secret", 2, "tftp: read refused"},
		"dotdot staying inside":     {"efi/../ipxe.efi", 2, "tftp: read refused"},
		"backslash dotdot":          {`..\secret`, 2, "tftp: read refused"},
		"absolute outside root":     {"/etc/passwd", 1, "tftp: file not found"},
		"absolute path of a file":   {abs, 1, "tftp: file not found"},
		"symlink to /etc/passwd":    {"passwd", 2, "tftp: read refused"},
		"through symlink to /etc":   {"sysconf/passwd", 2, "tftp: read refused"},
		"symlink to ../secret":      {"secretlink", 2, "tftp: read refused"},
		"through symlink to parent": {"up/secret", 2, "tftp: read refused"},
		"directory":                 {"efi", 2, "tftp: read refused"},
		"fifo":                      {"fifo", 2, "tftp: read refused"},
		"missing":                   {"undionly.kpxe", 1, "tftp: file not found"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			out, got := fx.tftpGet(t, tt.name)
			if want := fmt.Sprintf("Error code %d:", tt.code); !strings.Contains(out, want) {
				t.Errorf("client output %q, want %q", out, want)
			}
			if len(got) != 0 {
				// tftp-hpa creates the local file before it asks; it must
				// stay empty.
				t.Errorf("client received %d bytes: %q", len(got), got)
			}
			rec := fx.logs.find(t, tt.log, sanitize(tt.name))
			if !strings.HasPrefix(rec["client"], "127.0.0.1:") {
				t.Errorf("log record %v has no client address", rec)
			}
		})
	}
}

func TestRefusedATFTP(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	out, got, err := fx.atftpGet(t, "../secret", "blksize 1468", "tsize 0")
	if err == nil || len(got) != 0 || !strings.Contains(out, "<access violation>") {
		t.Errorf("atftp: %v, %d bytes\n%s", err, len(got), out)
	}
}

func TestWriteRefused(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	before := tree(t, fx.root)
	local := filepath.Join(t.TempDir(), "upload")
	mustWrite(t, local, []byte("not an iPXE binary\n"))
	for _, remote := range []string{"upload.bin", "ipxe.efi", "../uploaded", "/efi/new.efi"} {
		t.Run("tftp-hpa "+remote, func(t *testing.T) {
			tftp := need(t, "tftp", "tftp-hpa")
			out, err := exec.CommandContext(t.Context(), tftp, "127.0.0.1", fx.port, "-m", "binary", "-c", "put", local, remote).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Error code 2: access violation") {
				t.Errorf("tftp put %s: %v\n%s", remote, err, out)
			}
			fx.logs.find(t, "tftp: write refused", remote)
		})
	}
	t.Run("atftp", func(t *testing.T) {
		atftp := need(t, "atftp", "atftp")
		out, err := exec.CommandContext(t.Context(), atftp, "--option", "tsize 19", "-p", "-l", local, "-r", "upload.bin", "127.0.0.1", fx.port).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "access violation") {
			t.Errorf("atftp put: %v\n%s", err, out)
		}
	})
	if diff := diffTrees(before, tree(t, fx.root)); diff != "" {
		t.Errorf("root changed:\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(fx.dir, "uploaded")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload outside root: %v", err)
	}
}

func TestConcurrent50(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	const n = 50
	tftp := need(t, "tftp", "tftp-hpa")
	var wg sync.WaitGroup
	for i := range n {
		name := []string{"ipxe.efi", "random.bin"}[i%2]
		wg.Go(func() {
			out, got, err := fx.runTFTP(t, tftp, name)
			if err != nil {
				t.Error(err)
			} else if !bytes.Equal(got, fx.files[name]) {
				t.Errorf("fetch %d of %s: %d bytes, want %d identical\n%s", i, name, len(got), len(fx.files[name]), out)
			}
		})
	}
	wg.Wait()
	// The server logs once it has the last ACK, which may be just after
	// the client has exited.
	for deadline := time.Now().Add(5 * time.Second); fx.logs.count("tftp: sent") < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if sent := fx.logs.count("tftp: sent"); sent != n {
		t.Errorf("%d transfers logged, want %d", sent, n)
	}
}

// TestErrorPackets checks the error codes on the wire with a raw socket:
// the first reply to a refused request is the coded error.
func TestErrorPackets(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{})
	tests := map[string]struct {
		op   uint16
		name string
		code uint16
		msg  string
	}{
		"write":            {2, "x.bin", 2, "access violation: read-only server"},
		"read dotdot":      {1, "../secret", 2, "access violation"},
		"read escape link": {1, "passwd", 2, "access violation"},
		"read missing":     {1, "missing", 1, "file not found"},
		"read empty name":  {1, "", 2, "access violation"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := binary.BigEndian.AppendUint16(nil, tt.op)
			req = append(append(req, tt.name...), 0)
			req = append(req, "octet\x00"...)
			srv, _ := net.ResolveUDPAddr("udp4", "127.0.0.1:"+fx.port)
			if _, err := c.WriteTo(req, srv); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 600)
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			p := buf[:n]
			if n < 5 || binary.BigEndian.Uint16(p) != opError || p[n-1] != 0 {
				t.Fatalf("reply %q is not an ERROR packet", p)
			}
			if code, msg := binary.BigEndian.Uint16(p[2:]), string(p[4:n-1]); code != tt.code || msg != tt.msg {
				t.Errorf("ERROR %d %q, want %d %q", code, msg, tt.code, tt.msg)
			}
		})
	}
}

func TestServeStops(t *testing.T) {
	parallel(t)
	s, err := New(Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := conn.WriteTo([]byte{0}, conn.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("conn not closed after Serve: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestListenAndServe(t *testing.T) {
	parallel(t)
	s, err := New(Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ListenAndServe(t.Context(), "127.0.0.1:notaport"); err == nil {
		t.Error("ListenAndServe on a bad address: no error")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.ListenAndServe(ctx, "127.0.0.1:0"); err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
}

func TestNew(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	mustWrite(t, file, nil)
	tests := map[string]Config{
		"no root":            {},
		"missing root":       {Root: filepath.Join(dir, "missing")},
		"root is a file":     {Root: file},
		"negative timeout":   {Root: dir, Timeout: -time.Second},
		"negative retries":   {Root: dir, Retries: -1},
		"block size 512":     {Root: dir, MaxBlockSize: 512},
		"block size too big": {Root: dir, MaxBlockSize: 65465},
		"negative window":    {Root: dir, MaxWindow: -1},
		"window too big":     {Root: dir, MaxWindow: 65536},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if s, err := New(cfg); err == nil {
				s.Close()
				t.Errorf("New(%+v): no error", cfg)
			}
		})
	}
	s, err := New(Config{Root: dir, MaxBlockSize: 1468, MaxWindow: 65535})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// recorder is a slog.Handler that keeps every record (with the attributes
// of With) for assertions and also writes it to the test's output.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]map[string]string
	attrs []slog.Attr
	next  slog.Handler
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{
		mu:   new(sync.Mutex),
		recs: new([]map[string]string),
		next: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}),
	}
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
	for _, a := range r.attrs {
		m[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, m)
	r.mu.Unlock()
	return r.next.Handle(ctx, rec)
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clip(r.attrs), as...)
	c.next = r.next.WithAttrs(as)
	return &c
}

func (r *recorder) WithGroup(name string) slog.Handler {
	c := *r
	c.next = r.next.WithGroup(name)
	return &c
}

// find returns the record with message msg about file, waiting briefly:
// the server may log just after the client has finished.
func (r *recorder) find(t *testing.T, msg, file string) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.mu.Lock()
		for _, m := range *r.recs {
			if m["msg"] == msg && m["file"] == file {
				r.mu.Unlock()
				return m
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q with file=%q", msg, file)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range *r.recs {
		if m["msg"] == msg {
			n++
		}
	}
	return n
}

// tree lists every entry below dir with its size and mode.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %s %s", p, fi.Size(), fi.Mode(), fi.ModTime()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(a, b []string) string {
	var d []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			d = append(d, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			d = append(d, "+ "+x)
		}
	}
	return strings.Join(d, "\n")
}

// line returns the first line of out containing s.
func line(out, s string) string {
	for l := range strings.Lines(out) {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func head(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "\n..."
	}
	return s
}

func tail(s string) string {
	if len(s) > 2000 {
		return "...\n" + s[len(s)-2000:]
	}
	return s
}

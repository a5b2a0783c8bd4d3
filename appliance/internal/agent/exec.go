package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// outputTail is how much of a failed command's output its message keeps.
const outputTail = 1024

// execCommand runs command with /bin/sh -c; a non-zero exit fails with
// the tail of its output.
func execCommand(ctx context.Context, s *step) (string, error) {
	command := s.arg("command")
	if command == "" {
		return "", errors.New("empty command")
	}
	var timeout time.Duration
	if t := s.arg("timeout"); t != "" {
		d, err := parseTimeout(t)
		if err != nil {
			return "", err
		}
		timeout = d
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // its children too
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(),
		"OUTPOST_URL="+s.r.c.app.url().String(),
		"OUTPOST_MACHINE="+s.r.params.Machine,
		"OUTPOST_MAC="+s.r.params.MAC,
		"OUTPOST_ACTION="+s.act.Name,
		"OUTPOST_ATTEMPT="+strconv.Itoa(s.attempt))
	out := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if err == nil {
		return "exited 0", nil
	}
	if timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if tail := strings.TrimSpace(out.String()); tail != "" {
		return "", fmt.Errorf("%w: %s", err, tail)
	}
	return "", fmt.Errorf("%w (no output)", err)
}

// parseTimeout reads a duration ("90s", "5m") or a number of seconds.
func parseTimeout(t string) (time.Duration, error) {
	d, err := time.ParseDuration(t)
	if err != nil {
		f, ferr := strconv.ParseFloat(t, 64)
		if ferr != nil {
			return 0, fmt.Errorf("timeout %q: want seconds or a duration such as 90s", t)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("timeout %q: must be positive", t)
	}
	return d, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if t.total > int64(len(t.buf)) {
		// Cut to a line (or at least a rune) boundary.
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)/2 {
			s = s[i+1:]
		}
		s = "..." + strings.ToValidUTF8(s, "")
	}
	return s
}

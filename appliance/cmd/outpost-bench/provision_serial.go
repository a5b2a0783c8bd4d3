package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// serialClock stamps each line of a VM's serial console with the time it
// appeared in the file (read every 20 ms), to split a provision into the
// guest's own steps.
type serialClock struct {
	path  string
	start time.Time

	mu    sync.Mutex
	lines []stampedLine
	stop  func()
}

// stampedLine is a line of the console and when it appeared, from the
// VM's start.
type stampedLine struct {
	at   time.Duration
	text string
}

// watchSerial stamps path's lines from now until the returned clock's
// stop is called.
func watchSerial(ctx context.Context, path string, start time.Time) *serialClock {
	c := &serialClock{path: path, start: start}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.follow(ctx) })
	c.stop = func() {
		cancel()
		wg.Wait()
	}
	return c
}

func (c *serialClock) follow(ctx context.Context) {
	var off int64
	var partial string
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if f, err := os.Open(c.path); err == nil {
			f.Seek(off, io.SeekStart)
			b, _ := io.ReadAll(bufio.NewReader(f))
			f.Close()
			off += int64(len(b))
			at := time.Since(c.start)
			text := partial + string(b)
			lines := strings.Split(text, "\n")
			partial = lines[len(lines)-1]
			c.mu.Lock()
			for _, l := range lines[:len(lines)-1] {
				c.lines = append(c.lines, stampedLine{at, strings.TrimRight(l, "\r")})
			}
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serialSteps are the console lines that mark the guest's steps, in the
// order they come: the installer's kernel and /init, its agent, the
// kexec, the installed OS's kernel and /init.
var serialSteps = []struct{ name, re string }{
	{"installer kernel", `Linux version`},
	{"installer init", `outpost-installer: starting on`},
	{"installer modules", `outpost-installer: interface`},
	{"installer network", `outpost-installer: network up`},
	{"agent start", `outpost-installer: starting agent`},
	{"image write start", `action=write|action.*write.*start|image\.write`},
	{"kexec", `kexec`},
	{"os kernel", `Linux version`},
	{"os init", `OUTPOST-TESTOS-BOOTED`},
	{"os metadata", `OUTPOST-TESTOS hostname=`},
}

// save writes every line, stamped, to path.
func (c *serialClock) save(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.lines {
		fmt.Fprintf(&b, "%7.2f %s\n", l.at.Seconds(), l.text)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// report prints on w when each step's first line appeared (after the
// previous step's) and the time since the step before.
func (c *serialClock) report(w io.Writer, label string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, prev := 0, time.Duration(0)
	for _, s := range serialSteps {
		re := regexp.MustCompile(s.re)
		for ; i < len(c.lines); i++ {
			if re.MatchString(c.lines[i].text) {
				at := c.lines[i].at
				fmt.Fprintf(w, "provision.e2e %s: %6.1f s (+%5.1f) %-18s %s\n", label, at.Seconds(), (at - prev).Seconds(), s.name, trim(c.lines[i].text, 100))
				prev = at
				i++
				break
			}
		}
	}
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

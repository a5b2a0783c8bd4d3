package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
)

// Artifacts. Central's catalogue of content-addressed artifacts (OS
// images, installers' kernels and initrds, files): pushed from a file,
// or registered as an upstream URL central fetches once; every site
// pulls those its images name from central.

// artifactClient is central's client, refusing a site's target: artifacts
// are published at central.
func (e *env) artifactClient() (*cclient.Client, error) {
	return e.centralOnlyClient("artifacts are published at central")
}

// centralOnlyClient is central's client, refusing a site's target with
// why (what is central's alone).
func (e *env) centralOnlyClient(why string) (*cclient.Client, error) {
	t, err := e.resolveTarget()
	if err != nil {
		return nil, err
	}
	if !t.central {
		return nil, fmt.Errorf("%s: %s: use --central URL or a central context (the server is a site's, from %s)", e.cmd, why, t.from)
	}
	return e.centralClient()
}

// runArtifactPush uploads a file as an artifact: its sha256 is computed
// first (so that central checks the bytes it gets), then the file is
// streamed, never read whole, with progress on stderr. The digest is
// printed on stdout.
func runArtifactPush(e *env, args []string) error {
	fs := e.flagSet("artifact push")
	name := fs.String("name", "", "")
	typ := fs.String("type", "", "")
	desc := fs.String("description", "", "")
	c, pos, err := e.artifactArgs(fs, args, 1)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", pos[0])
	}
	sum, err := e.hashFile(f, fi.Size())
	if err != nil {
		return fmt.Errorf("read %s: %w", pos[0], err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p := newProgress(e.stderr, "push", fi.Size())
	a, err := c.PushArtifact(e.ctx, f, fi.Size(), cclient.PushOptions{SHA256: sum, Name: *name, Type: *typ, Description: *desc, Progress: p.update})
	p.end()
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(a)
	}
	fmt.Fprintf(e.stderr, "pushed %s: %s, held by %s\n", pos[0], sizeCell(uint64(a.Size)), strings.Join(a.Nodes, ", "))
	fmt.Fprintln(e.stdout, "sha256:"+a.SHA256)
	return nil
}

// hashFile computes f's sha256, reading it once, with progress.
func (e *env) hashFile(f io.Reader, size int64) (string, error) {
	p := newProgress(e.stderr, "sha256", size)
	h := sha256.New()
	_, err := io.Copy(h, cclient.NewProgressReader(f, p.update))
	p.end()
	return hex.EncodeToString(h.Sum(nil)), err
}

// progress shows a transfer on stderr: on a terminal one line rewritten
// in place; otherwise a line each time it passes a multiple of 5
// percent.
type progress struct {
	w       io.Writer
	what    string
	total   int64
	tty     bool
	start   time.Time
	shown   int64 // the 5 percent step last shown (not a terminal)
	written bool
}

func newProgress(w io.Writer, what string, total int64) *progress {
	return &progress{w: w, what: what, total: total, tty: isTerminal(w), start: time.Now()}
}

// update shows done bytes of the total.
func (p *progress) update(done int64) {
	pct := int64(100)
	if p.total > 0 {
		pct = min(done*100/p.total, 100)
	}
	secs := max(time.Since(p.start).Seconds(), 0.001)
	line := fmt.Sprintf("%s: %3d%% %s of %s, %.1f MiB/s", p.what, pct, sizeCell(uint64(done)), sizeCell(uint64(p.total)), float64(done)/secs/(1<<20))
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r%s\033[K", line)
		p.written = true
	case pct/5 > p.shown:
		fmt.Fprintln(p.w, line)
		p.shown = pct / 5
	}
}

// end ends a terminal's progress line.
func (p *progress) end() {
	if p.tty && p.written {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runArtifactRegister registers an upstream URL: central's leader fetches
// it once and checks it against --sha256 and --size.
func runArtifactRegister(e *env, args []string) error {
	fs := e.flagSet("artifact register")
	sum := fs.String("sha256", "", "")
	size := fs.String("size", "", "")
	name := fs.String("name", "", "")
	typ := fs.String("type", "", "")
	desc := fs.String("description", "", "")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *sum == "" || *size == "" {
		return usagef("artifact register: --sha256 and --size are required: central checks the bytes it fetches against them")
	}
	n, err := strconv.ParseInt(*size, 10, 64)
	if err != nil || n <= 0 {
		return usagef("artifact register: --size %q: want the artifact's size in bytes", *size)
	}
	c, err := e.artifactClient()
	if err != nil {
		return err
	}
	a, err := c.RegisterArtifact(e.ctx, cclient.RegisterArtifactRequest{URL: pos[0], SHA256: strings.TrimPrefix(*sum, "sha256:"),
		Size: n, Name: *name, Type: *typ, Description: *desc})
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(a)
	}
	fmt.Fprintf(e.stderr, "registered %s: central fetches it once (%s); see outpost artifact get\n", a.Source.URL, a.State)
	fmt.Fprintln(e.stdout, "sha256:"+a.SHA256)
	return nil
}

// centralArtifactHeader and centralArtifactRow make the table of artifacts.
var centralArtifactHeader = []string{"SHA256", "NAME", "TYPE", "SIZE", "STATE", "NODES", "SITES", "SENT", "CREATED"}

func centralArtifactRow(a *cclient.Artifact) []string {
	var sites []string
	var sent int64
	for _, s := range a.Sites {
		sites = append(sites, s.Site)
		sent += s.SentBytes
	}
	state := a.State
	if p := a.Progress; p != nil && p.SizeBytes > 0 {
		state += fmt.Sprintf(" %d%%", p.HeldBytes*100/p.SizeBytes)
	}
	return []string{short(a.SHA256, 12), a.Name, a.Type, sizeCell(uint64(a.Size)), state, strings.Join(a.Nodes, ","),
		strings.Join(sites, ","), sizeCell(uint64(sent)), timeCell(a.CreatedAt)}
}

// artifactArgs parses an artifact command's arguments (n positional
// ones) with fs and returns central's client and them.
func (e *env) artifactArgs(fs *flag.FlagSet, args []string, n int) (*cclient.Client, []string, error) {
	pos, err := e.parse(fs, args, n, n)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.artifactClient()
	return c, pos, err
}

// runArtifactList lists central's artifacts.
func runArtifactList(e *env, args []string) error {
	c, _, err := e.artifactArgs(e.flagSet("artifact list"), args, 0)
	if err != nil {
		return err
	}
	list, err := c.Artifacts(e.ctx)
	if err != nil {
		return err
	}
	return e.showArtifacts(list)
}

// runArtifactGet shows one artifact.
func runArtifactGet(e *env, args []string) error {
	c, pos, err := e.artifactArgs(e.flagSet("artifact get"), args, 1)
	if err != nil {
		return err
	}
	a, err := c.Artifact(e.ctx, pos[0])
	if err != nil {
		return err
	}
	if !e.opts.tabular() {
		return e.printValue(a)
	}
	return e.showArtifacts([]cclient.Artifact{a})
}

func (e *env) showArtifacts(list []cclient.Artifact) error {
	if !e.opts.tabular() {
		if list == nil {
			list = []cclient.Artifact{}
		}
		return e.printValue(list)
	}
	rows := make([][]string, len(list))
	for i := range list {
		rows[i] = centralArtifactRow(&list[i])
	}
	return writeTable(e.stdout, centralArtifactHeader, rows)
}

// runArtifactDelete deletes an artifact from central: refused while a
// site's image names it.
func runArtifactDelete(e *env, args []string) error {
	c, pos, err := e.artifactArgs(e.flagSet("artifact delete"), args, 1)
	if err != nil {
		return err
	}
	if err := c.DeleteArtifact(e.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "artifact %s deleted\n", pos[0])
	return nil
}

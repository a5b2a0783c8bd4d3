package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/browsertest"
)

// The console test's machine: its MAC is how the technician finds it.
const (
	consoleMachine = "vm1"
	consoleMAC     = "52:54:00:c0:5e:01"
)

// TestConsoleBrowser: the web console of a real applianced, over HTTPS
// by default with the site's API CA (its api-ca.pem) trusted, in
// headless chromium, driving a QEMU VM behind ipmi_sim. An operator
// signs in, finds the machine by MAC, powers it through a confirmation
// and sees the BMC job and the power event come into the machine page
// without a reload, reads the VM's boot messages in the serial
// terminal and types a line the VM echoes; a POST without the CSRF
// token is refused. A viewer sees no button and gets 403 for a forged
// POST made with a valid session and CSRF token. When applianced stops
// the page says "disconnected"; when it is back on the same data
// directory the page catches up with the events made meanwhile, with
// no gap in their numbers. The page asked nothing of any host but the
// appliance. With -browsertest.screenshots, every page is captured.
func TestConsoleBrowser(t *testing.T) {
	s := startConsoleSite(t)
	m := newMachine(consoleMachine, consoleMAC)
	m.BMC = &store.BMC{Address: s.BMC.Addr, Driver: "ipmi", Username: s.BMC.Username, Password: s.BMC.Password}
	other := newMachine("vm2", "52:54:00:c0:5e:02")
	for _, o := range []*store.Machine{&m, &other} {
		if err := s.API.Put(t.Context(), "machines", o.ID, o, nil); err != nil {
			t.Fatal(err)
		}
	}
	operator := s.NewToken("technician", access.Operator)
	viewer := s.NewToken("auditor", access.Viewer)
	b := s.Browser()
	recordStream(t, b)

	signIn(t, b, s.URL, operator)
	b.WaitText("technician (operator)")
	waitJS(t, b, 30*time.Second, "the overview's members", `document.querySelector('[data-test=members]') !== null`)
	// The site has no central: no leader has reported a link, and the
	// card says so rather than showing a last sync.
	if c := b.TextOf("central"); !strings.Contains(c, "no leader has reported a link to central") || strings.Contains(c, "ago") {
		t.Errorf("the overview's central card reads %q, want no link reported and no last sync", c)
	}
	b.Capture("site-overview")

	findByMAC(t, b)
	clickToPage(t, b, "machine-link")
	waitJS(t, b, 30*time.Second, "the machine page", `location.pathname === "/machines/vm1"`)
	if n := evalJS[int](t, b, "count buttons", `document.querySelectorAll('main button').length`); n == 0 {
		t.Fatal("the operator sees no button on the machine page")
	}
	powerCycle(t, b)
	readAndType(t, b)
	b.Capture("machine")
	refuseWithoutCSRF(t, b, s)

	clickToPage(t, b, "sign-out")
	waitJS(t, b, 30*time.Second, "the sign-in page", `document.querySelector('[data-test=signin-form]') !== null`)
	b.Capture("signin")
	signIn(t, b, s.URL, viewer)
	b.WaitText("auditor (viewer)")
	viewerSeesNoButtons(t, b, s)

	for _, p := range []struct{ nav, name, path string }{
		{"nav-subnets", "subnets", "/subnets"},
		{"nav-discovered", "discovered", "/discovered"},
		{"nav-events", "events", "/events"},
	} {
		clickToPage(t, b, p.nav)
		waitJS(t, b, 30*time.Second, "the "+p.name+" page", fmt.Sprintf(`location.pathname === %q && document.readyState === "complete"`, p.path))
		b.Capture(p.name)
	}
	catchUpAfterRestart(t, b, s)

	if f := b.Foreign(s.URL); len(f) > 0 {
		t.Errorf("the console's pages asked other hosts: %+v", f)
	}
	kinds := map[string]bool{}
	for _, r := range b.Requests() {
		kinds[r.Type] = true
	}
	for _, k := range []string{"Document", "Script", "WebSocket", "EventSource"} {
		if !kinds[k] {
			t.Errorf("no %s request was recorded: the recorder saw %v", k, kinds)
		}
	}
}

// signIn signs in at the console with token.
func signIn(t *testing.T, b *browsertest.Browser, url, token string) {
	t.Helper()
	b.Navigate(url + "/")
	b.Fill("signin-token", token)
	clickToPage(t, b, "signin-submit")
	waitJS(t, b, 30*time.Second, "the site overview after signing in", `location.pathname === "/site"`)
}

// findByMAC filters the machines page by the machine's MAC: of the two
// machines, its row alone stays.
func findByMAC(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	clickToPage(t, b, "nav-machines")
	waitJS(t, b, 30*time.Second, "both machines listed",
		`location.pathname === "/machines" && document.querySelectorAll('[data-test=machine-row]').length === 2`)
	b.Fill("filter-q", "mac:"+consoleMAC)
	clickToPage(t, b, "filter-submit")
	waitJS(t, b, 30*time.Second, "the machine alone, found by its MAC",
		`(() => { const rows = document.querySelectorAll('[data-test=machine-row]');
		  return location.search.includes("q=mac") && rows.length === 1 && rows[0].getAttribute('data-machine') === "vm1" })()`)
	b.Capture("machines")
}

// powerCycle presses power cycle, confirms, and waits for the BMC job's
// end and the power event in the timeline of the page the confirmation
// led back to, which must not load again meanwhile.
func powerCycle(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	clickToPage(t, b, "power-cycle")
	waitJS(t, b, 30*time.Second, "the confirmation", `document.querySelector('[data-test=confirm-question]') !== null`)
	if q := b.TextOf("confirm-question"); !strings.Contains(q, "power cycle") || !strings.Contains(q, consoleMachine) {
		t.Errorf("the confirmation asks %q, want it to name power cycle and %s", q, consoleMachine)
	}
	b.Capture("confirm")
	clickToPage(t, b, "confirm-yes")
	waitJS(t, b, 30*time.Second, "the machine page after confirming",
		`location.pathname === "/machines/vm1" && document.querySelector('[data-test=timeline]') !== null`)
	// A mark in this document: it is gone if the page loads again.
	evalJS[bool](t, b, "mark the page", `window.outpostMark = true`)
	had := evalJS[bool](t, b, "read the timeline", timelineHas("bmc.job.succeeded"))
	if had {
		t.Fatal("the BMC job had ended before the page loaded: nothing left to show live")
	}
	waitJS(t, b, 3*time.Minute, "the BMC job's end and the power event, live",
		`(`+timelineHas("bmc.job.succeeded")+`) && (`+timelineHas("power.on")+`)`)
	if !evalJS[bool](t, b, "read the mark", `window.outpostMark === true`) {
		t.Error("the machine page loaded again to show the events")
	}
	if st := b.TextOf("power-state"); st != "on" {
		t.Errorf("power state %q after the cycle, want on", st)
	}
}

// timelineHas is a script true when a timeline row has the kind.
func timelineHas(kind string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-test=event-row]')].some(r => r.cells[2] && r.cells[2].textContent === %q)`, kind)
}

// terminalText is a script returning what the serial terminal holds.
const terminalText = `document.querySelector('[data-test=console-terminal]').outpostText()`

// readAndType waits for the VM's boot messages in the terminal, takes
// the keyboard and types lines until the VM echoes one whole.
func readAndType(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	waitJS(t, b, 5*time.Minute, "the VM's boot messages in the terminal",
		terminalText+`.includes("outpost-installer:")`)
	b.Click("take-keyboard")
	waitJS(t, b, time.Minute, "the keyboard", `document.querySelector('[data-test=console-status]').textContent.includes("You have the keyboard")`)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	base := fmt.Sprintf("browser-probe-%d", os.Getpid())
	typeLine := func(line string) error {
		tctx, cancel := context.WithTimeout(b.Context(), time.Minute)
		defer cancel()
		return chromedp.Do(tctx, chromedp.Focus(chromedp.CSS("#terminal .xterm-helper-textarea")), typeKeys(line+"\r"))
	}
	echoed := func(ctx context.Context, s string) bool {
		line := strings.TrimSuffix(s, "\r")
		tctx, cancel := context.WithTimeout(b.Context(), time.Minute)
		defer cancel()
		d, ok := ctx.Deadline()
		if !ok {
			d = time.Now().Add(20 * time.Second)
		}
		_, err := chromedp.Run(tctx, chromedp.Poll[bool](fmt.Sprintf(`%s.includes(%q)`, terminalText, line),
			chromedp.WithPollingTimeout(time.Until(d))))
		return err == nil
	}
	line, err := lab.ProbeEcho(ctx, typeLine, echoed, base)
	if err != nil {
		t.Fatalf("%v; the terminal holds:\n%s", err, evalJS[string](t, b, "read the terminal", terminalText))
	}
	t.Logf("the VM echoed %q", line)
}

// typeKeys types text on the focused element as a keyboard does: for
// each key a keydown that carries its text (which makes the keypress and
// the input event) and a keyup. (chromedp's SendKeys sends the text
// again in a separate char event, which xterm.js takes as a second
// keystroke.)
func typeKeys(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range text {
			key, code, vk := string(r), "", int64(0)
			if r == '\r' {
				key, code, vk = "Enter", "Enter", 13
			}
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: key, Code: code, Text: string(r),
				UnmodifiedText: string(r), WindowsVirtualKeyCode: vk}
			up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: key, Code: code, WindowsVirtualKeyCode: vk}
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// postForm is a script POSTing a power order for the machine from the
// page, with the page's CSRF token or none, and answering the status.
func postForm(withCSRF bool, action string) string {
	csrf := `""`
	if withCSRF {
		csrf = `document.querySelector('input[name=csrf]').value`
	}
	return fmt.Sprintf(`(async () => {
		const body = new URLSearchParams({action: %q, confirm: "yes"});
		const csrf = %s;
		if (csrf) body.set("csrf", csrf);
		const r = await fetch("/machines/vm1/power", {method: "POST", body});
		return r.status;
	})()`, action, csrf)
}

// orders counts the site's orders.
func orders(t *testing.T, s *consoleSite) int {
	t.Helper()
	var list []store.Order
	if err := s.API.List(t.Context(), "orders", &list); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// refuseWithoutCSRF: the operator's POST without the CSRF token is
// refused and places nothing; the same POST with it places an order.
func refuseWithoutCSRF(t *testing.T, b *browsertest.Browser, s *consoleSite) {
	t.Helper()
	before := orders(t, s)
	if code := evalJS[int](t, b, "POST without the CSRF token", postForm(false, "on")); code != 403 {
		t.Errorf("a POST without the CSRF token: %d, want 403", code)
	}
	if n := orders(t, s); n != before {
		t.Errorf("a POST without the CSRF token placed %d orders", n-before)
	}
	if code := evalJS[int](t, b, "POST with the CSRF token", postForm(true, "on")); code != 200 {
		t.Errorf("the same POST with the CSRF token: %d, want 200 (the machine page it leads to)", code)
	}
	if n := orders(t, s); n != before+1 {
		t.Errorf("the POST with the CSRF token placed %d orders, want 1", n-before)
	}
}

// viewerSeesNoButtons: a viewer's machines and machine pages hold no
// button, and a POST with the viewer's valid session and CSRF token is
// refused with 403.
func viewerSeesNoButtons(t *testing.T, b *browsertest.Browser, s *consoleSite) {
	t.Helper()
	b.Navigate(s.URL + "/machines")
	waitJS(t, b, 30*time.Second, "the machines", `document.querySelectorAll('[data-test=machine-row]').length === 2`)
	if n := evalJS[int](t, b, "count the buttons", `document.querySelectorAll('[data-test=bulk-form], [data-test^=choose-]').length`); n != 0 {
		t.Errorf("the viewer sees %d bulk controls on the machines page", n)
	}
	b.Navigate(s.URL + "/machines/vm1")
	waitJS(t, b, time.Minute, "the scrollback in the viewer's terminal", terminalText+`.includes("browser-probe-")`)
	if n := evalJS[int](t, b, "count the buttons", `document.querySelectorAll('main button').length`); n != 0 {
		t.Errorf("the viewer sees %d buttons on the machine page", n)
	}
	before := orders(t, s)
	if code := evalJS[int](t, b, "a forged POST", postForm(true, "cycle")); code != 403 {
		t.Errorf("the viewer's POST with a valid session and CSRF token: %d, want 403", code)
	}
	if n := orders(t, s); n != before {
		t.Errorf("the viewer's POST placed %d orders", n-before)
	}
}

// catchUpAfterRestart: on the events page, applianced stops (the page
// says it is disconnected), starts again on the same data directory and
// records events at once, before the page has reconnected, and more
// after; the page shows them all without loading again, numbered with
// no gap up to the log's last.
func catchUpAfterRestart(t *testing.T, b *browsertest.Browser, s *consoleSite) {
	t.Helper()
	evalJS[bool](t, b, "mark the page", `window.outpostMark = true`)
	s.Stop()
	waitJS(t, b, time.Minute, "the disconnected banner", `!document.querySelector('[data-test=disconnected]').hidden`)
	b.WaitText("Disconnected from the appliance")
	b.Capture("disconnected")
	s.Start()
	s.NewToken("after-restart-1", access.Viewer)
	waitJS(t, b, time.Minute, "the banner to go", `document.querySelector('[data-test=disconnected]').hidden`)
	s.NewToken("after-restart-2", access.Viewer)
	all, _, err := s.API.Events(t.Context(), 0, 10000)
	if err != nil || len(all) == 0 {
		t.Fatalf("events: %v", err)
	}
	last := all[len(all)-1].Seq
	waitJS(t, b, time.Minute, "the events made after the restart, through the page's stream",
		fmt.Sprintf(`document.body.getAttribute('data-last') === "%d" && [...document.querySelectorAll('[data-test=event-row]')].some(r => r.getAttribute('data-seq') === "%d")`, last, last))
	if !evalJS[bool](t, b, "read the mark", `window.outpostMark === true`) {
		t.Error("the events page loaded again")
	}
	// The stream delivered every event after the page's, once, in order,
	// across the restart: it resumed where it stopped (Last-Event-ID).
	first, err := strconv.ParseUint(evalJS[string](t, b, "read the page's first number", `window.outpostFirst`), 10, 64)
	if err != nil {
		t.Fatalf("the page's event number: %v", err)
	}
	var streamed []uint64
	for _, v := range evalJS[[]string](t, b, "read what the stream delivered", `window.outpostStream`) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("the stream delivered event id %q", v)
		}
		streamed = append(streamed, n)
	}
	var wantStreamed []uint64
	for n := first + 1; n <= last; n++ {
		wantStreamed = append(wantStreamed, n)
	}
	if !slices.Equal(streamed, wantStreamed) {
		t.Errorf("the page's stream delivered events %v, want %v: each after #%d once, in order", streamed, wantStreamed, first)
	}
	raw := evalJS[[]string](t, b, "read the event numbers",
		`[...document.querySelectorAll('[data-test=event-row]')].map(r => r.getAttribute('data-seq'))`)
	var got []uint64
	for _, v := range raw {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("event row numbered %q", v)
		}
		got = append(got, n)
	}
	var want []uint64
	for _, e := range all {
		want = append(want, e.Seq)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the page shows events %v, the log holds %v", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Errorf("a gap in the page's events: #%d, then #%d", got[i-1], got[i])
		}
	}
}

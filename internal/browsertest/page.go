package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chromedp/chromedp"
)

// Sel is the selector of the element whose data-test attribute is name.
func Sel(name string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("[data-test=%q]", name)) }

// Context returns the tab's context, for chromedp actions the helpers
// lack.
func (b *Browser) Context() context.Context { return b.ctx }

// do runs steps on the tab within ActionTimeout, failing the test with
// what was being done.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browsertest: %s: %v", what, err)
	}
}

// run runs one action that returns a value on the tab within
// ActionTimeout.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browsertest: %s: %v", what, err)
	}
	return v
}

// Navigate loads url and waits for it to load.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.do("navigate to "+url, chromedp.Navigate(url))
}

// Fill types value into the field data-test=name, replacing what it held.
func (b *Browser) Fill(name, value string) {
	b.t.Helper()
	sel := Sel(name)
	b.do("fill "+string(sel), chromedp.WaitVisible(sel), chromedp.Clear(sel), chromedp.SendKeys(sel, value))
}

// Click clicks the element data-test=name once it is visible.
func (b *Browser) Click(name string) {
	b.t.Helper()
	sel := Sel(name)
	b.do("click "+string(sel), ClickAction(sel))
}

// ClickAction clicks the visible element sel, finding it again if the
// page replaced it between finding and clicking (a live region the page
// swapped in: the browser then answers that the node is gone, and
// nothing was clicked).
func ClickAction(sel chromedp.CSS) chromedp.Action[chromedp.Void] {
	click := chromedp.Click(sel, chromedp.NodeVisible)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for {
			v, err := click(ctx, t)
			if err == nil || !strings.Contains(err.Error(), "Could not find node with given id") || ctx.Err() != nil {
				return v, err
			}
		}
	}
}

// TextOf returns the visible text of the element data-test=name.
func (b *Browser) TextOf(name string) string {
	b.t.Helper()
	sel := Sel(name)
	return run(b, "read "+string(sel), chromedp.Text(sel, chromedp.NodeVisible))
}

// WaitText waits until the page's visible text contains text.
func (b *Browser) WaitText(text string) {
	b.t.Helper()
	expr := fmt.Sprintf(`document.body !== null && document.body.innerText.includes(%q)`, text)
	run(b, fmt.Sprintf("wait for the text %q", text), chromedp.Poll[bool](expr))
}

// Screenshot returns a PNG of the whole page.
func (b *Browser) Screenshot() []byte {
	b.t.Helper()
	png, err := b.screenshot()
	if err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	return png
}

// SaveScreenshot writes a PNG of the whole page to path, making its
// directory.
func (b *Browser) SaveScreenshot(path string) {
	b.t.Helper()
	png := b.Screenshot()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("browsertest: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browsertest: %v", err)
	}
}

func (b *Browser) screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.FullScreenshot(100))
}

// WaitJS waits until the JavaScript expression expr is true in the page;
// what says what is awaited when it times out.
func (b *Browser) WaitJS(what, expr string) {
	b.t.Helper()
	run(b, "wait for "+what, chromedp.Poll[bool](expr))
}

// Eval evaluates the JavaScript expression expr in the page, awaiting
// it if it is a promise, and returns its value.
func Eval[T any](b *Browser, what, expr string) T {
	b.t.Helper()
	return run(b, what, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// ClickToPage clicks the element data-test=name, which loads another
// page, and waits until that page has loaded; it fails the test unless
// the page came with status 200.
func (b *Browser) ClickToPage(name string) {
	b.t.Helper()
	if code := b.ClickForPage(name); code != 200 {
		b.t.Fatalf("browsertest: click %s: the page came with %d", name, code)
	}
}

// ClickForPage clicks the element data-test=name, which loads another
// page, waits until that page has loaded and returns its status.
func (b *Browser) ClickForPage(name string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, ActionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, ClickAction(Sel(name)))
	if err != nil {
		b.t.Fatalf("browsertest: click %s: %v", name, err)
	}
	return int(resp.Status)
}

// SetValue sets the value of the field (or select) data-test=name.
func (b *Browser) SetValue(name, value string) {
	b.t.Helper()
	sel := Sel(name)
	b.do("set "+string(sel), chromedp.WaitVisible(sel), chromedp.SetValue(sel, value))
}

// SetFiles chooses files in the file input data-test=name.
func (b *Browser) SetFiles(name string, paths ...string) {
	b.t.Helper()
	sel := Sel(name)
	b.do("choose files in "+string(sel), chromedp.SetUploadFiles(sel, paths))
}

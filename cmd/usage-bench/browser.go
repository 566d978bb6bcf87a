//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/claude-usage/widget/scraper/browser"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// benchChromiumPath is $CHROME_PATH or Debian's /usr/bin/chromium, as in e2e/widget.
func benchChromiumPath() (string, error) {
	p := os.Getenv("CHROME_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("bench: Chromium not found at %s (run `make deps` or set CHROME_PATH): %w", p, err)
	}
	return p, nil
}

// startBenchChromium starts one headless Chromium with a fresh profile under dir.
// stop ends it and every tab; call it once the section is done.
func startBenchChromium(ctx context.Context, dir string) (tab context.Context, stop func(), err error) {
	exe, err := benchChromiumPath()
	if err != nil {
		return nil, nil, err
	}
	// The scraper's own options: headless, background networking off,
	// no sandbox as root.
	opts := append(browser.AllocatorOptions(exe, filepath.Join(dir, "chromium-profile"), true), chromedp.WindowSize(480, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	stop = func() {
		cancelBrowser()
		cancelAlloc()
	}
	if err := chromedp.Do(bctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("bench: starting Chromium %s: %w", exe, err)
	}
	return bctx, stop, nil
}

// firstVisibleJS runs in every new document before the page's own scripts.
// It resolves window.__benchFirstVisible with performance.now() (ms since
// navigation start) at the first moment an element matching the selector
// exists and has a non-zero box. A MutationObserver catches the render
// that inserts it; requestAnimationFrame catches a box that only gets a
// size once the stylesheet applies.
const firstVisibleJS = `(() => {
  const sel = %q;
  let done;
  window.__benchFirstVisible = new Promise((resolve) => { done = resolve; });
  let found = false;
  const check = () => {
    if (found) return true;
    const el = document.querySelector(sel);
    if (!el) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    found = true;
    done(performance.now());
    return true;
  };
  const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
  obs.observe(document, { childList: true, subtree: true, attributes: true });
  const tick = () => { if (!check()) requestAnimationFrame(tick); else obs.disconnect(); };
  requestAnimationFrame(tick);
})();`

// loadTiming is one cold load, in ms since navigation start.
type loadTiming struct {
	Meter    float64 `json:"meter"`    // first meter visible
	WasmEnd  float64 `json:"wasmEnd"`  // app.wasm downloaded
	APIStart float64 `json:"apiStart"` // the widget asked for data (0: never)
	APIEnd   float64 `json:"apiEnd"`   // and got it
}

// resourceTimingJS reads the Resource Timing entries that explain a load.
const resourceTimingJS = `(() => {
  const out = {wasmEnd: 0, apiStart: 0, apiEnd: 0};
  for (const e of performance.getEntriesByType('resource')) {
    if (e.name.endsWith('/app.wasm') && !out.wasmEnd) out.wasmEnd = e.responseEnd;
    if (e.name.includes('/api/claude/console-usage') && !out.apiStart) { out.apiStart = e.startTime; out.apiEnd = e.responseEnd; }
  }
  // Compiled in the worker, app.wasm has no entry on the page; the
  // loader marks its response's end instead (server/widgetmount).
  const m = performance.getEntriesByName('app.wasm responseEnd')[0];
  if (!out.wasmEnd && m) out.wasmEnd = m.startTime;
  return out;
})()`

// coldFirstVisible opens url in a new BrowserContext of browser (like an
// incognito window: no HTTP cache, storage or service worker from earlier
// runs) and returns the ms from navigation start until selector is visible,
// with the resource timings that explain them.
func coldFirstVisible(browser context.Context, url, selector string, timeout time.Duration) (loadTiming, error) {
	tctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	tctx, cancelTimeout := context.WithTimeout(tctx, timeout)
	defer cancelTimeout()
	if _, err := chromedp.Call(tctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(firstVisibleJS, selector)}); err != nil {
		return loadTiming{}, fmt.Errorf("bench: installing the timing script: %w", err)
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		return loadTiming{}, fmt.Errorf("bench: opening %s: %w", url, err)
	}
	ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`window.__benchFirstVisible`, chromedp.EvalAwaitPromise))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return loadTiming{}, fmt.Errorf("bench: %s never showed %s within %v", url, selector, timeout)
		}
		return loadTiming{}, fmt.Errorf("bench: waiting for %s on %s: %w", selector, url, err)
	}
	lt, err := chromedp.Run(tctx, chromedp.Evaluate[loadTiming](resourceTimingJS))
	if err != nil {
		return loadTiming{}, fmt.Errorf("bench: reading resource timings of %s: %w", url, err)
	}
	lt.Meter = ms
	return lt, nil
}

//go:build !js

package widget_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/server/widgetmount"
)

// The texts are the widget states of the README, spelled out here on purpose:
// the test checks what a user reads, not the constants of the code.
const (
	textRetrying    = "Connection error - retrying"
	textUnavailable = "Data unavailable"
	textOpenPrefix  = "Service temporarily unavailable - retrying in "
	textNoData      = "No data available"
	textNoDataHint  = "Waiting for data — start the scraper on your laptop"
	textUnauth      = "Access token missing or invalid"
)

const firstLoad = 45 * time.Second // compiling app.wasm in a busy headless tab

func openWithData(t *testing.T, s *server) *tab {
	t.Helper()
	tb := newTab(t, s.url())
	tb.open("/#token=" + readToken)
	tb.waitMeters(3, firstLoad)
	return tb
}

func openCount(s string) (int, bool) {
	if !strings.HasPrefix(s, textOpenPrefix) || !strings.HasSuffix(s, "s") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(s, textOpenPrefix), "s"))
	return n, err == nil
}

func TestDataAppears(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := newTab(t, s.url())
	start := time.Now()
	tb.open("/#token=" + readToken)
	tb.waitMeters(3, firstLoad)
	t.Logf("time to first data: %v", time.Since(start).Round(time.Millisecond))
	tb.waitStatus("", 5*time.Second)

	page := tb.text()
	for _, want := range []string{"Current session", "42% used", "All models", "78% used", "Opus only", "93% used",
		"Resets in 2 h", "Extra usage: $12.50 of $50.00"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"Loading...", "Cached", "min old"} {
		if strings.Contains(page, bad) {
			t.Errorf("page shows %q:\n%s", bad, page)
		}
	}
	if got, want := tb.eval(`Array.from(document.querySelectorAll(".meter-bar")).map(e => e.className).join("|")`),
		"meter-bar level-ok|meter-bar level-warn|meter-bar level-critical"; got != want {
		t.Errorf("bar classes = %q, want %q", got, want)
	}
	if got := tb.eval(`location.hash`); got != "" {
		t.Errorf("the token stays in the address bar: hash %q", got)
	}
	if got := tb.eval(`localStorage.getItem("usage-widget.token") || ""`); got != readToken {
		t.Errorf("stored token = %q, want the read token", got)
	}
	tb.mu.Lock()
	logged := strings.Join(tb.logs, "\n")
	tb.mu.Unlock()
	if !strings.Contains(logged, `"msg":"fetch ok"`) || !strings.Contains(logged, `"component":"widget"`) {
		t.Errorf("no JSON fetch log line in the console:\n%s", logged)
	}
	tb.shot("data")

	// web/prefetch.js asked for the data while app.wasm was still loading,
	// and the widget used that answer: one request, not two.
	if got := tb.apiRequests(); got != 1 {
		t.Errorf("%d requests for usage on the first load, want 1 (the prefetched one)", got)
	}
	// app.wasm was fetched and compiled by the worker, which marks the
	// end of its response on the page's timeline.
	if got := tb.eval(`(() => {
		const api = performance.getEntriesByType("resource").find(x => x.name.includes("/api/claude/console-usage"));
		const wasm = performance.getEntriesByName("` + widgetmount.WasmResponseEndMark + `")[0];
		if (!wasm) return "no mark: app.wasm did not compile in the worker";
		return api && api.startTime < wasm.startTime ? "before" : "after";
	})()`); got != "before" {
		t.Errorf("the data request started %s app.wasm arrived, want before (prefetch)", got)
	}

	// 320 px wide and dark: nothing overflows sideways.
	tb.emulate(320, true)
	tb.waitFor("dark scheme", `getComputedStyle(document.body).backgroundColor`, 5*time.Second,
		func(s string) bool { return s == "rgb(22, 22, 21)" })
	if got := tb.eval(`String(document.documentElement.scrollWidth)`); got != "320" {
		t.Errorf("page is %s px wide at a 320 px viewport", got)
	}
	tb.shot("data-320-dark")

	// The manifest makes it installable with local icons.
	manifest, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](
		`fetch("/manifest.webmanifest").then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"display":"standalone"`, `"/web/icon-512.png"`, `"/web/icon-192.png"`, `"purpose":"maskable"`} {
		if !strings.Contains(manifest, want) {
			t.Errorf("manifest lacks %s: %s", want, manifest)
		}
	}
}

// TestWasmBudget holds app.wasm to 1.6 MB brotli (the budget) and
// checks that the browser gets it brotli-encoded.
func TestWasmBudget(t *testing.T) {
	t.Parallel()
	sizes := map[string]int64{}
	for _, n := range []string{"app.wasm", "app.wasm.gz", "app.wasm.br"} {
		info, err := os.Stat(filepath.Join(webDir, n))
		if err != nil {
			t.Fatal(err)
		}
		sizes[n] = info.Size()
	}
	t.Logf("app.wasm: raw %d, gzip %d, brotli %d bytes", sizes["app.wasm"], sizes["app.wasm.gz"], sizes["app.wasm.br"])
	if got, max := sizes["app.wasm.br"], int64(1_600_000); got > max {
		t.Errorf("app.wasm.br is %d bytes, budget %d", got, max)
	}

	s := startServer(t)
	tb := newTab(t, s.url())
	tb.open("/")
	got, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](
		`fetch("/web/app.wasm").then(r => [r.status, r.headers.get("content-encoding"), r.headers.get("content-type")].join(" "))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if want := "200 br application/wasm"; got != want {
		t.Errorf("app.wasm as the browser gets it: %q, want %q", got, want)
	}
	tb.waitStatus(textUnauth, firstLoad) // no token: the page still loads cleanly
}

func TestServerStoppedBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := openWithData(t, s)

	s.stop()
	tb.waitStatus(textRetrying, 10*time.Second)
	tb.shot("connection-error")
	tb.waitStatus(textUnavailable, 5*time.Second)
	if page := tb.text(); !strings.Contains(page, "Cached 0 min ago") || !strings.Contains(page, "42% used") {
		t.Errorf("the last data is not shown as cached:\n%s", page)
	}
	tb.shot("data-unavailable")

	// Three failed cycles open the breaker: its countdown starts at the
	// cooldown (5 s here) and goes down each second.
	first := tb.waitFor("open breaker", statusJS, 15*time.Second, func(s string) bool { _, ok := openCount(s); return ok })
	n1, _ := openCount(first)
	if n1 > 5 || n1 < 3 {
		t.Errorf("countdown starts at %d s, want about 5 s", n1)
	}
	tb.waitFor("countdown", statusJS, 3*time.Second, func(s string) bool { n, ok := openCount(s); return ok && n < n1 })
	tb.shot("breaker-open")

	// The server comes back on the same port: the widget recovers by
	// itself, without a reload.
	s.start()
	tb.waitStatus("", 15*time.Second)
	tb.waitMeters(3, 5*time.Second)
	if page := tb.text(); strings.Contains(page, "Cached") {
		t.Errorf("still marked cached after recovery:\n%s", page)
	}
	tb.mu.Lock()
	logged := strings.Join(tb.logs, "\n")
	tb.mu.Unlock()
	for _, want := range []string{`"msg":"fetch retry"`, `"msg":"breaker transition"`, `"to":"OPEN"`, `"to":"CLOSED"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("console log lacks %s", want)
		}
	}
	tb.shot("recovered")
}

func TestNoData(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	tb := newTab(t, s.url())
	tb.open("/#token=" + readToken)
	tb.waitStatus(textNoData, firstLoad)
	if page := tb.text(); !strings.Contains(page, textNoDataHint) {
		t.Errorf("page lacks the hint %q:\n%s", textNoDataHint, page)
	}
	tb.shot("no-data")

	// The first snapshot arrives: the next auto-refresh shows it.
	s.post(0)
	tb.waitMeters(3, 10*time.Second)
	tb.waitStatus("", 2*time.Second)
}

func TestStaleDataAndScraperProblem(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(20 * time.Minute)
	at := time.Now().UTC().Format(time.RFC3339)
	s.postJSON("/api/claude/scraper-status",
		[]byte(`{"account":"default","at":"`+at+`","ok":false,"category":"NOT_LOGGED_IN","message":"redirected to /login"}`), 204)
	tb := openWithData(t, s)
	page := tb.text()
	for _, want := range []string{"Data is 20 min old", "Scraper signed out — run usage-scraper login"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	tb.shot("stale")
}

func TestOfflineReloadShowsCachedData(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := openWithData(t, s)
	// The service worker must control the page (and hold the shell) first.
	tb.waitFor("service worker", `String(!!navigator.serviceWorker.controller)`, 30*time.Second,
		func(s string) bool { return s == "true" })
	// go-app's worker fills its cache in an install handler without
	// waitUntil, so it can control the page before the shell is cached (a
	// flake on a busy machine): wait for the page and app.wasm in the cache.
	tb.waitFor("the shell in the service worker's cache", `(() => {
		caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c =>
			Promise.all(["/", "/web/app.wasm"].map(u => c.match(u)))))))
			.then(rs => { window.__shellCached = rs.some(r => r.every(Boolean)); });
		return String(window.__shellCached === true);
	})()`, 30*time.Second, func(s string) bool { return s == "true" })

	s.stop()
	tb.do(chromedp.Reload())
	tb.waitMeters(3, firstLoad)
	page := tb.text()
	if !strings.Contains(page, "Cached 0 min ago") && !strings.Contains(page, "Cached 1 min ago") {
		t.Errorf("offline reload does not mark the data cached:\n%s", page)
	}
	tb.waitFor("a failure status", statusJS, 15*time.Second, func(s string) bool {
		_, open := openCount(s)
		return s == textRetrying || s == textUnavailable || open
	})
	tb.shot("offline-reload")
}

func TestRefreshButtonTriesWhileOpen(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--widget-breaker-cooldown", "60s")
	s.post(time.Minute)
	tb := openWithData(t, s)

	s.stop()
	tb.waitFor("open breaker", statusJS, 20*time.Second, func(s string) bool { _, ok := openCount(s); return ok })
	s.start()
	before := tb.status()
	n, ok := openCount(before)
	if !ok || n < 45 {
		t.Fatalf("before the click: status %q, want the open breaker with most of 60 s left", before)
	}
	clicked := time.Now()
	tb.do(chromedp.Click(chromedp.ID("refresh")))
	tb.waitStatus("", 5*time.Second)
	t.Logf("recovered %v after the click, %d s before the probe was due", time.Since(clicked).Round(time.Millisecond), n)
	tb.waitMeters(3, 2*time.Second)
	tb.shot("refresh-while-open")
}

func TestTokenForm(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := newTab(t, s.url())
	tb.open("/")
	tb.waitStatus(textUnauth, firstLoad)
	tb.shot("token-missing")
	tb.do(
		chromedp.SendKeys(chromedp.ID("token-input"), readToken),
		chromedp.Click(chromedp.ID("token-save")),
	)
	tb.waitMeters(3, 10*time.Second)
	tb.waitStatus("", 2*time.Second)
	if got := tb.eval(`location.search + location.hash`); got != "" {
		t.Errorf("the token leaked into the URL: %q", got)
	}
}

func TestAccountSwitcher(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	s.postAccount("work", time.Minute, meter{"session", "Current session", 7, nil})
	tb := openWithData(t, s)
	tb.waitFor("account switcher", `String(document.querySelectorAll("#account-select option").length)`, 5*time.Second,
		func(s string) bool { return s == "2" })
	tb.eval(`(() => { const s = document.getElementById("account-select"); s.value = "work";
		s.dispatchEvent(new Event("change", {bubbles: true})); return ""; })()`)
	tb.waitMeters(1, 5*time.Second)
	if page := tb.text(); !strings.Contains(page, "7% used") {
		t.Errorf("the work account is not shown:\n%s", page)
	}
	if got := tb.eval(`localStorage.getItem("usage-widget.account") || ""`); got != "work" {
		t.Errorf("stored account = %q, want work", got)
	}
	tb.shot("account-work")
	// The choice survives a reload.
	tb.do(chromedp.Reload())
	tb.waitMeters(1, firstLoad)
	tb.waitFor("work selected", `document.getElementById("account-select") ? document.getElementById("account-select").value : ""`,
		10*time.Second, func(s string) bool { return s == "work" })
}

func TestHiddenPagePausesRefresh(t *testing.T) {
	t.Parallel()
	s := startServer(t) // refresh every 2 s
	s.post(time.Minute)
	tb := openWithData(t, s)
	tb.eval(`(() => { Object.defineProperty(document, "visibilityState", {configurable: true,
		get: () => window.__visibility || "visible"}); return ""; })()`)
	setVisibility := func(v string) {
		tb.eval(`(() => { window.__visibility = "` + v + `"; document.dispatchEvent(new Event("visibilitychange")); return ""; })()`)
	}

	setVisibility("hidden")
	time.Sleep(200 * time.Millisecond) // let a request already on its way land
	before := tb.apiRequests()
	time.Sleep(5 * time.Second) // two and a half refresh periods
	if got := tb.apiRequests(); got != before {
		t.Errorf("%d requests while hidden, want none", got-before)
	}
	shown := time.Now()
	setVisibility("visible")
	tb.waitFor("a refresh on showing", `String(1)`, 2*time.Second, func(string) bool { return tb.apiRequests() > before })
	t.Logf("refreshed %v after the page was shown", time.Since(shown).Round(time.Millisecond))
}

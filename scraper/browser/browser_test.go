package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// One browser for the whole test binary, as the scraper keeps one; tests
// that use it run one after another because they share its tab.
var (
	shared1 *Browser
	site    *httptest.Server
	logBuf  = &testutil.LogBuffer{}
)

// fixedNow is Saturday 2026-11-28 13:50 UTC; the fixture renders its texts
// relative to it and the browser parses them relative to it.
var fixedNow = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

func testOptions() Options {
	return Options{
		Headless:    true,
		PageTimeout: 15 * time.Second,
		MeterWait:   3 * time.Second,
		Now:         clock,
		Logger:      slog.New(slog.NewJSONHandler(logBuf, nil)),
	}
}

func TestMain(m *testing.M) {
	site = httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{Now: clock}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b, err := New(ctx, testOptions())
	cancel()
	if err != nil {
		// No skip: the browser tests are the point of this package.
		fmt.Fprintf(os.Stderr, "browser tests need Chromium (run scripts/ensure-chromium.sh): %v\n", err)
		site.Close()
		os.Exit(1)
	}
	shared1 = b
	code := m.Run()
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	site.Close()
	// Close must leave nothing running: no chromedp reader, no timer.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left after Close: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func scrape(t *testing.T, b *Browser, url string) (shared.Snapshot, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return b.Scrape(ctx, url)
}

// scrapeOwnTab scrapes url in a tab of its own in the shared browser, so
// that tests which do not test the reused tab can run side by side; the
// tab is closed when the test ends.
func scrapeOwnTab(t *testing.T, url string) (shared.Snapshot, error) {
	t.Helper()
	shared1.mu.Lock()
	bctx := shared1.browserCtx
	shared1.mu.Unlock()
	tabCtx, cancel, err := newTab(bctx)
	if err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = chromedp.Cancel(tabCtx) // waits until the tab is gone
	})
	ctx, stop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stop()
	return shared1.scrapeIn(ctx, tabCtx, url)
}

type wantMeter struct {
	id       string
	label    string
	pct      float64
	resetsAt time.Time // zero: not checked
}

func TestScrapeVariants(t *testing.T) {
	session := fixedNow.Add(2*time.Hour + 10*time.Minute)
	weekly := fakeclaude.NextWeekly(fixedNow)
	all := []wantMeter{
		{"session", "Current session", 42, session},
		{"weekly_all", "All models", 18, weekly},
		{"weekly_sonnet", "Sonnet only", 3, weekly},
		{"weekly_opus", "Opus only", 0, weekly},
	}
	tests := []struct {
		variant     string
		wantClass   scrapeerr.Class
		wantCapture string
		wantMeters  []wantMeter
		wantErrs    []string
		wantExtra   bool
	}{
		{variant: fakeclaude.VariantLegacy, wantCapture: "api", wantMeters: all, wantExtra: true},
		{variant: fakeclaude.VariantLimits, wantCapture: "api", wantMeters: all},
		{variant: fakeclaude.VariantAPIFail, wantCapture: "dom", wantMeters: all},
		{variant: fakeclaude.VariantMissing, wantCapture: "api", wantMeters: []wantMeter{all[0], all[1], all[3]}, wantErrs: []string{"weekly_sonnet"}, wantExtra: true},
		{variant: fakeclaude.VariantNoMeters, wantClass: scrapeerr.LayoutChanged},
		{variant: fakeclaude.VariantLogin, wantClass: scrapeerr.NotLoggedIn},
		{variant: fakeclaude.VariantChallenge, wantClass: scrapeerr.Challenge},
		{variant: fakeclaude.VariantChallengeDE, wantClass: scrapeerr.Challenge},
		// The JSON answered 429 and the page shows no meters: RATE_LIMITED
		// with the server's wait, not LAYOUT_CHANGED.
		{variant: fakeclaude.VariantRateLimited, wantClass: scrapeerr.RateLimited},
		// The check passes by itself within the meter wait: no failure.
		{variant: fakeclaude.VariantChallengePass, wantCapture: "api", wantMeters: all, wantExtra: true},
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			t.Parallel()
			snap, err := scrapeOwnTab(t, fakeclaude.UsageURL(site.URL, tt.variant))
			if tt.wantClass != "" {
				if got, want := scrapeerr.ClassOf(err), tt.wantClass; got != want {
					t.Fatalf("class = %q, want %q (err %v)", got, want, err)
				}
				if tt.wantClass == scrapeerr.RateLimited {
					if got, want := scrapeerr.WaitOf(err), 15*time.Minute; got != want {
						t.Errorf("wait = %s, want the Retry-After %s", got, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Scrape: %v", err)
			}
			if got, want := snap.Capture, tt.wantCapture; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
			if got, want := snap.Source, "claude.ai/settings/usage"; got != want {
				t.Errorf("source = %q, want %q", got, want)
			}
			if got, want := snap.ScrapedAt, fixedNow; !got.Equal(want) {
				t.Errorf("scrapedAt = %s, want %s", got, want)
			}
			if got, want := len(snap.Meters), len(tt.wantMeters); got != want {
				t.Fatalf("meters = %+v, want %d", snap.Meters, want)
			}
			for i, w := range tt.wantMeters {
				m := snap.Meters[i]
				if m.ID != w.id || m.Label != w.label || m.PercentUsed != w.pct {
					t.Errorf("meters[%d] = %s %q %g, want %s %q %g", i, m.ID, m.Label, m.PercentUsed, w.id, w.label, w.pct)
				}
				if m.ResetsAt == nil || !m.ResetsAt.Equal(w.resetsAt) {
					t.Errorf("meters[%d].resetsAt = %v, want %s", i, m.ResetsAt, w.resetsAt)
				}
			}
			if got, want := snap.Meters[0].ResetsText, "Resets in 2 hr 10 min"; got != want {
				t.Errorf("session resetsText = %q, want %q", got, want)
			}
			var errIDs []string
			for id := range snap.ExtractionErrors {
				errIDs = append(errIDs, id)
			}
			slices.Sort(errIDs)
			if got, want := errIDs, tt.wantErrs; !slices.Equal(got, want) {
				t.Errorf("extraction errors = %v, want ids %v", snap.ExtractionErrors, want)
			}
			if got, want := snap.Partial, len(tt.wantErrs) > 0; got != want {
				t.Errorf("partial = %v, want %v", got, want)
			}
			if tt.wantExtra {
				if e := snap.ExtraUsage; e == nil || !e.Enabled || e.UsedCents != 1250 || e.LimitCents != 5000 {
					t.Errorf("extraUsage = %+v, want enabled 1250/5000", e)
				}
			}
			s := snap
			s.Normalize()
			if err := s.Validate(fixedNow); err != nil {
				t.Errorf("snapshot fails shared validation: %v", err)
			}
		})
	}
}

func TestScrapeConnectionRefusedIsNetwork(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = scrapeOwnTab(t, "http://"+addr+"/settings/usage")
	if got, want := scrapeerr.ClassOf(err), scrapeerr.Network; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
	if !strings.Contains(err.Error(), "ERR_CONNECTION_REFUSED") {
		t.Errorf("error %q does not name the refused connection", err)
	}
}

func TestScrapeReusesTab(t *testing.T) {
	before := shared1.TargetID()
	if before == "" {
		t.Fatal("no tab")
	}
	pagesBefore := pageTargets(t)
	if !slices.Contains(pagesBefore, before) {
		t.Fatalf("tab %s not among the page targets %v", before, pagesBefore)
	}
	for range 2 {
		if _, err := scrape(t, shared1, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy)); err != nil {
			t.Fatal(err)
		}
		if got := shared1.TargetID(); got != before {
			t.Fatalf("target id = %s after a scrape, want the same tab %s", got, before)
		}
	}
	if got, want := pageTargets(t), pagesBefore; !slices.Equal(got, want) {
		t.Errorf("page targets after two scrapes = %v, want the same as before %v", got, want)
	}
}

// pageTargets lists the ids of the shared browser's open tabs.
func pageTargets(t *testing.T) []string {
	t.Helper()
	shared1.mu.Lock()
	bctx := shared1.browserCtx
	shared1.mu.Unlock()
	res, err := chromedp.CallBrowser(bctx, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		t.Fatalf("list targets: %v", err)
	}
	var ids []string
	for _, info := range res.TargetInfos {
		if info.Type == "page" {
			ids = append(ids, string(info.TargetID))
		}
	}
	slices.Sort(ids)
	return ids
}

func TestScrapeAgreeingCapturesLogNoDisagreement(t *testing.T) {
	// The page renders what its JSON says, so the two captures agree and
	// no disagreement may be logged (TestBuildComparesCaptures covers one
	// that is); every line carries the component.
	logBuf.Reset()
	if _, err := scrape(t, shared1, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logBuf.String(), "captures disagree") {
		t.Errorf("agreeing captures logged a disagreement:\n%s", logBuf.String())
	}
	if !strings.Contains(logBuf.String(), `"component":"browser"`) {
		t.Errorf("log lines lack the component:\n%s", logBuf.String())
	}
}

func TestScrapeCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := shared1.Scrape(ctx, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLoginWaitsForMeters(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	// The auth variant redirects to /login; with signin=auto the fixture's
	// login page sets the session cookie and returns, as a person would.
	url := fakeclaude.UsageURL(site.URL, fakeclaude.VariantAuth) + "&signin=auto"
	if err := shared1.Login(ctx, url); err != nil {
		t.Fatalf("Login: %v", err)
	}
	snap, err := scrape(t, shared1, fakeclaude.UsageURL(site.URL, fakeclaude.VariantAuth))
	if err != nil {
		t.Fatalf("scrape after login: %v", err)
	}
	if got, want := len(snap.Meters), 4; got != want {
		t.Errorf("meters after login = %d, want %d", got, want)
	}
}

func TestLoginGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	err := shared1.Login(ctx, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLogin))
	if got, want := scrapeerr.ClassOf(err), scrapeerr.NotLoggedIn; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
}

// TestScrapeRecreatesClosedTab closes the tab behind the scraper's back, as
// a renderer crash would; the next scrape opens a new tab and succeeds.
func TestScrapeRecreatesClosedTab(t *testing.T) {
	old := shared1.TargetID()
	shared1.mu.Lock()
	bctx := shared1.browserCtx
	shared1.mu.Unlock()
	if _, err := chromedp.CallBrowser(bctx, target.CloseTarget, target.CloseTargetParams{TargetID: target.ID(old)}); err != nil {
		t.Fatalf("close tab: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		shared1.mu.Lock()
		ch, err := chromedp.Detached(shared1.tabCtx)
		shared1.mu.Unlock()
		if err != nil {
			break
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("tab not detached 5 s after closing it")
		}
		break
	}
	snap, err := scrape(t, shared1, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy))
	if err != nil {
		t.Fatalf("scrape after the tab closed: %v", err)
	}
	if got, want := len(snap.Meters), 4; got != want {
		t.Errorf("meters = %d, want %d", got, want)
	}
	if got := shared1.TargetID(); got == old || got == "" {
		t.Errorf("target id = %q, want a new tab (old %s)", got, old)
	}
}

func TestBadChromePathIsBrowser(t *testing.T) {
	opts := testOptions()
	opts.ChromePath = t.TempDir() + "/no-such-chromium"
	b, err := New(t.Context(), opts)
	if err == nil {
		b.Close()
		t.Fatal("New succeeded with a missing browser")
	}
	if got, want := scrapeerr.ClassOf(err), scrapeerr.Browser; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
	if !strings.Contains(err.Error(), "no-such-chromium") {
		t.Errorf("error %q does not name the path", err)
	}
}

func TestVisibleWindowWithoutDisplayIsNoDisplay(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	opts := testOptions()
	opts.Headless = false
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		b, err := New(ctx, opts)
		if err == nil {
			b.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("New without a display has not returned after 15 s")
	}
	if err == nil {
		t.Fatal("New opened a visible window without a display")
	}
	if got, want := scrapeerr.ClassOf(err), scrapeerr.NoDisplay; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
	if !strings.Contains(err.Error(), "usage-scraper login") || !strings.Contains(err.Error(), "display") {
		t.Errorf("error %q does not say that login needs a display", err)
	}
}

func TestStartCanceledLeavesNothing(t *testing.T) {
	opts := testOptions()
	opts.ProfileDir = t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan error, 1)
	go func() {
		b, err := New(ctx, opts)
		if err == nil {
			b.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if got, want := scrapeerr.ClassOf(err), scrapeerr.Browser; got != want {
			t.Fatalf("class = %q, want %q (err %v)", got, want, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("New with a canceled context has not returned after 15 s")
	}
	if left := processesUsing(opts.ProfileDir); len(left) > 0 {
		t.Errorf("processes still using the profile after a canceled start: %v", left)
	}
}

func TestBrokenChromeIsBrowser(t *testing.T) {
	// An executable that is not a browser: it exits at once.
	path := t.TempDir() + "/chromium"
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.ChromePath = path
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, opts)
	if err == nil {
		b.Close()
		t.Fatal("New succeeded with a broken browser")
	}
	if got, want := scrapeerr.ClassOf(err), scrapeerr.Browser; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
}

// TestCrashAndClose uses a browser of its own: it kills Chromium, expects a
// Browser failure, expects the next scrape to start Chromium again, and
// expects Close to leave no process behind.
func TestCrashAndClose(t *testing.T) {
	opts := testOptions()
	opts.ProfileDir = t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := b.Process()
	if p == nil {
		t.Fatal("no browser process")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	bctx := b.browserCtx
	b.mu.Unlock()
	select {
	case <-bctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("browser context still alive 10 s after the kill")
	}
	_, err = b.Scrape(ctx, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy))
	if err != nil {
		// The first scrape after a crash may either restart at once or
		// report the crash; it must never report anything but Browser.
		if got, want := scrapeerr.ClassOf(err), scrapeerr.Browser; got != want {
			t.Fatalf("class after crash = %q, want %q (err %v)", got, want, err)
		}
	}
	snap, err := b.Scrape(ctx, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy))
	if err != nil {
		t.Fatalf("scrape after restart: %v", err)
	}
	if got, want := len(snap.Meters), 4; got != want {
		t.Errorf("meters = %d, want %d", got, want)
	}
	p2 := b.Process()
	if p2 == nil || p2.Pid == p.Pid {
		t.Fatalf("process after restart = %v, want a new one (old pid %d)", p2, p.Pid)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The process is reaped by Close; signal 0 to its pid must fail.
	if err := syscall.Kill(p2.Pid, 0); err == nil {
		t.Errorf("chromium pid %d still exists after Close", p2.Pid)
	}
	// Renderer and helper processes carry the profile dir too.
	if left := processesUsing(opts.ProfileDir); len(left) > 0 {
		t.Errorf("processes still using the profile after Close: %v", left)
	}
	if _, err := b.Scrape(ctx, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy)); scrapeerr.ClassOf(err) != scrapeerr.Browser {
		t.Errorf("scrape after Close: err = %v, want class BROWSER", err)
	}
}

func TestIsUsageURL(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://claude.ai/api/organizations/5b1f/usage", true},
		{"https://claude.ai/api/organizations/5b1f/usage?x=1", true},
		{"http://127.0.0.1:3/api/organizations/a-b/usage#f", true},
		{"https://claude.ai/api/organizations/5b1f/usage/extra", false},
		{"https://claude.ai/api/organizations//usage", false},
		{"https://claude.ai/api/organizations/5b1f/members", false},
		{"not a url", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			if got := isUsageURL(tt.url); got != tt.want {
				t.Errorf("isUsageURL = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLooksLikeOrdinaryChrome checks what Cloudflare looks at first: no
// "HeadlessChrome" in the user agent and navigator.webdriver not set.
func TestLooksLikeOrdinaryChrome(t *testing.T) {
	if _, err := scrape(t, shared1, fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy)); err != nil {
		t.Fatal(err)
	}
	shared1.mu.Lock()
	tabCtx := shared1.tabCtx
	shared1.mu.Unlock()
	type nav struct {
		UA        string `json:"ua"`
		Webdriver bool   `json:"webdriver"`
	}
	got, err := chromedp.Run(tabCtx, chromedp.Evaluate[nav](`({ua: navigator.userAgent, webdriver: !!navigator.webdriver})`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.UA, "Headless") || !strings.Contains(got.UA, "Chrome/") {
		t.Errorf("user agent = %q, want an ordinary Chrome agent", got.UA)
	}
	if got.Webdriver {
		t.Error("navigator.webdriver = true, want false")
	}
}

// TestProfileInUse starts a second browser on the profile of a running one:
// Chromium hands over to the first process and exits, and the error says
// which profile is busy.
func TestProfileInUse(t *testing.T) {
	opts := testOptions()
	opts.ProfileDir = t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := New(ctx, opts)
	if err == nil {
		second.Close()
		t.Fatal("a second browser started on a profile that is in use")
	}
	if got, want := scrapeerr.ClassOf(err), scrapeerr.ProfileInUse; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), opts.ProfileDir) {
		t.Errorf("error %q does not say which profile is in use", err)
	}
	if pid, ok := LockHolder(opts.ProfileDir); !ok || pid != first.Process().Pid {
		t.Errorf("LockHolder = %d, %v, want the first browser's pid %d", pid, ok, first.Process().Pid)
	}
}

// Package browser drives a real Chromium through chromedp to read the Claude
// usage page. It keeps one browser and one tab for the life of the scraper
// (this file: start, restart after a crash, close), and captures what the
// page shows — the usage JSON from Chromium's network events and the
// rendered text (scrape.go). Turning a capture into a snapshot is
// scraper/parse's job; every failure is named with a scrapeerr class.
package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the page's time zone must load on any laptop

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

// DefaultPageTimeout bounds one scrape when Options.PageTimeout is zero.
const DefaultPageTimeout = 30 * time.Second

// DefaultMeterWait bounds how long a loaded page may take to render its
// meters when Options.MeterWait is zero.
const DefaultMeterWait = 10 * time.Second

// Options configure a Browser.
type Options struct {
	// ChromePath is the browser binary; found on the system when empty.
	ChromePath string
	// ProfileDir is Chromium's user-data-dir, which holds the login. When
	// empty a temporary profile is used and removed by Close.
	ProfileDir string
	// Headless runs without a window; Login needs it false.
	Headless bool
	Logger   *slog.Logger
	// PageTimeout bounds one Scrape (navigation, capture, reading).
	PageTimeout time.Duration
	// MeterWait bounds the wait for the meters to render after the load.
	MeterWait time.Duration
	// Location is the time zone for "Resets Thu 9:00 AM"; the page's own
	// time zone (as Chromium reports it) when nil.
	Location *time.Location
	// Now is the clock for ScrapedAt and relative reset texts.
	Now func() time.Time
}

// Browser is one running Chromium with one reused tab. Its methods are
// safe to call from several goroutines; scrapes run one at a time.
type Browser struct {
	opts   Options
	log    *slog.Logger
	path   string
	tmpDir string // profile created by New, removed by Close

	scrapeMu sync.Mutex // one page load at a time: they share the tab

	mu          sync.Mutex
	closed      bool
	allocCtx    context.Context
	allocCancel context.CancelFunc
	browserCtx  context.Context
	browserStop context.CancelFunc
	tabCtx      context.Context
	tabCancel   context.CancelFunc
}

// FindChrome returns the browser binary: explicit, then $CHROME_PATH, then
// the usual Linux and macOS locations, then the PATH.
func FindChrome(explicit string) (string, error) {
	var tried []string
	try := func(p string) (string, bool) {
		if p == "" {
			return "", false
		}
		tried = append(tried, p)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
		return "", false
	}
	if explicit != "" {
		if p, ok := try(explicit); ok {
			return p, nil
		}
		return "", scrapeerr.New(scrapeerr.Browser, nil, "browser: chrome path %q is not an executable file", explicit)
	}
	if env := os.Getenv("CHROME_PATH"); env != "" {
		if p, ok := try(env); ok {
			return p, nil
		}
		return "", scrapeerr.New(scrapeerr.Browser, nil, "browser: $CHROME_PATH %q is not an executable file", env)
	}
	for _, p := range []string{
		"/usr/bin/chromium",
		"/usr/lib/chromium/chromium",
		"/usr/bin/chromium-browser",
		"/usr/bin/google-chrome",
		"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
		"/Applications/Chromium.app/Contents/MacOS/Chromium",
	} {
		if p, ok := try(p); ok {
			return p, nil
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", scrapeerr.New(scrapeerr.Browser, nil, "browser: no Chromium or Chrome found (tried %s and the PATH); install one or set --chrome-path", strings.Join(tried, ", "))
}

// New starts Chromium on the profile. A missing or broken browser is a
// *scrapeerr.Error of class Browser.
func New(ctx context.Context, opts Options) (*Browser, error) {
	if opts.PageTimeout <= 0 {
		opts.PageTimeout = DefaultPageTimeout
	}
	if opts.MeterWait <= 0 {
		opts.MeterWait = DefaultMeterWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	path, err := FindChrome(opts.ChromePath)
	if err != nil {
		return nil, err
	}
	b := &Browser{opts: opts, path: path, log: opts.Logger.With("component", "browser")}
	if opts.ProfileDir == "" {
		if b.tmpDir, err = os.MkdirTemp("", "usage-scraper-profile-"); err != nil {
			return nil, scrapeerr.New(scrapeerr.Browser, err, "browser: create a temporary profile")
		}
		opts.ProfileDir = b.tmpDir
		b.opts.ProfileDir = b.tmpDir
	} else if err := os.MkdirAll(opts.ProfileDir, 0o700); err != nil {
		return nil, scrapeerr.New(scrapeerr.Browser, err, "browser: create profile dir %s", opts.ProfileDir)
	}
	if err := profileFree(opts.ProfileDir); err != nil {
		if b.tmpDir != "" {
			_ = os.RemoveAll(b.tmpDir)
		}
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startLocked(ctx); err != nil {
		b.stopLocked()
		if b.tmpDir != "" {
			_ = os.RemoveAll(b.tmpDir)
		}
		return nil, err
	}
	return b, nil
}

// AllocatorOptions are the options the scraper starts Chromium with: the
// binary execPath on the profile profileDir, quiet (no background
// networking, component updates or sync), not announcing automation, and
// without the sandbox where it cannot work (root, or
// USAGE_CHROME_NO_SANDBOX=1 in a container). Other code that drives
// Chromium (the benchmark, end-to-end tests) starts it the same way with
// these.
func AllocatorOptions(execPath, profileDir string, headless bool) []chromedp.ExecAllocatorOption {
	o := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	o = append(o,
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(profileDir),
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		// claude.ai sits behind Cloudflare, which challenges browsers that
		// announce automation; the scraper reads one page every few
		// minutes on the user's own login, so it looks like the browser it is.
		chromedp.Flag("enable-automation", false),
		chromedp.Flag("disable-blink-features", "AutomationControlled"),
	)
	// The sandbox needs kernel features that containers and root lack; a
	// laptop keeps it.
	if runtime.GOOS == "linux" && (os.Geteuid() == 0 || os.Getenv("USAGE_CHROME_NO_SANDBOX") == "1") {
		o = append(o, chromedp.NoSandbox)
	}
	if !headless {
		o = append(o, chromedp.VisibleWindow)
	}
	return o
}

// startLocked starts the browser and opens the tab.
func (b *Browser) startLocked(ctx context.Context) error {
	// The browser must outlive the ctx of New (which may be a short
	// start-up timeout), so it hangs off a context of its own; ctx only
	// bounds the start.
	b.allocCtx, b.allocCancel = chromedp.NewExecAllocator(context.WithoutCancel(ctx), AllocatorOptions(b.path, b.opts.ProfileDir, b.opts.Headless)...)
	b.browserCtx, b.browserStop = chromedp.NewContext(b.allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(b.browserCtx) }()
	select {
	case err := <-started:
		if err != nil {
			if errors.Is(err, chromedp.ErrNoDisplay) {
				return scrapeerr.New(scrapeerr.NoDisplay, nil, "browser: a visible window needs a display and this session has none (DISPLAY and WAYLAND_DISPLAY are unset); run `usage-scraper login` in the desktop session")
			}
			if perr := profileFree(b.opts.ProfileDir); perr != nil {
				return perr
			}
			return scrapeerr.New(scrapeerr.Browser, err, "browser: start %s", b.path)
		}
	case <-ctx.Done():
		// Stop the half-started browser and wait for the start to give
		// up, so that stopLocked never runs beside it.
		b.allocCancel()
		<-started
		return scrapeerr.New(scrapeerr.Browser, ctx.Err(), "browser: start %s", b.path)
	}
	b.log.Info("browser started", "path", b.path, "profile", b.opts.ProfileDir, "headless", b.opts.Headless)
	return b.openTabLocked()
}

func (b *Browser) openTabLocked() error {
	tabCtx, cancel, err := newTab(b.browserCtx)
	if err != nil {
		return err
	}
	b.tabCtx, b.tabCancel = tabCtx, cancel
	return nil
}

// newTab opens a tab in the browser of browserCtx, made ready to scrape.
func newTab(browserCtx context.Context) (context.Context, context.CancelFunc, error) {
	tabCtx, cancel := chromedp.NewContext(browserCtx)
	if err := chromedp.Do(tabCtx); err != nil {
		cancel()
		return nil, nil, scrapeerr.New(scrapeerr.Browser, err, "browser: open a tab")
	}
	// Headless Chromium says "HeadlessChrome" in its user agent, which
	// Cloudflare answers with a challenge; the same browser's ordinary
	// agent is sent instead.
	v, err := chromedp.CallBrowser(tabCtx, cdpbrowser.GetVersion, cdp.Empty{})
	if err != nil {
		cancel()
		return nil, nil, scrapeerr.New(scrapeerr.Browser, err, "browser: read the browser version")
	}
	if ua := strings.Replace(v.UserAgent, "HeadlessChrome/", "Chrome/", 1); ua != v.UserAgent {
		if _, err := chromedp.Call(tabCtx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
			cancel()
			return nil, nil, scrapeerr.New(scrapeerr.Browser, err, "browser: set the user agent")
		}
	}
	return tabCtx, cancel, nil
}

func (b *Browser) stopLocked() {
	if b.tabCancel != nil {
		b.tabCancel()
	}
	// A graceful close only for a browser that started: chromedp.Cancel
	// and the context's own cancel func would each wait for the same
	// start token, and a start that failed early (no display) leaves only
	// one, so the second wait would never end.
	if c := chromedp.FromContext(b.browserCtx); b.browserCtx != nil && c != nil && c.Browser != nil {
		cctx, cancel := context.WithTimeout(b.browserCtx, 5*time.Second)
		_ = chromedp.Cancel(cctx)
		cancel()
	}
	if b.browserStop != nil {
		b.browserStop()
	}
	if b.allocCancel != nil {
		b.allocCancel()
	}
	b.tabCtx, b.tabCancel, b.browserCtx, b.browserStop, b.allocCtx, b.allocCancel = nil, nil, nil, nil, nil, nil
}

// tab returns a live tab, restarting the tab or the whole browser when it
// died since the last scrape.
func (b *Browser) tab(ctx context.Context) (context.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, scrapeerr.New(scrapeerr.Browser, nil, "browser: closed")
	}
	if b.browserCtx == nil || b.browserCtx.Err() != nil {
		b.log.Warn("browser is gone; starting it again")
		b.stopLocked()
		if err := b.startLocked(ctx); err != nil {
			b.stopLocked()
			return nil, err
		}
		return b.tabCtx, nil
	}
	dead := b.tabCtx == nil || b.tabCtx.Err() != nil
	if !dead {
		if ch, err := chromedp.Detached(b.tabCtx); err != nil {
			dead = true
		} else {
			select {
			case <-ch:
				dead = true
			default:
			}
		}
	}
	if dead {
		b.log.Warn("tab is gone; opening a new one")
		if b.tabCancel != nil {
			b.tabCancel()
		}
		if err := b.openTabLocked(); err != nil {
			return nil, err
		}
	}
	return b.tabCtx, nil
}

// TargetID is the id of the current tab, so tests and logs can see that
// scrapes reuse it.
func (b *Browser) TargetID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tabCtx == nil {
		return ""
	}
	if c := chromedp.FromContext(b.tabCtx); c != nil && c.Target != nil {
		return string(c.Target.TargetID)
	}
	return ""
}

// Process is the Chromium process, or nil.
func (b *Browser) Process() *os.Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.browserCtx == nil {
		return nil
	}
	if c := chromedp.FromContext(b.browserCtx); c != nil && c.Browser != nil {
		return c.Browser.Process()
	}
	return nil
}

// Close stops Chromium and waits for it to exit; it removes a temporary
// profile. It is safe to call more than once.
func (b *Browser) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.stopLocked()
	if b.tmpDir != "" {
		if err := os.RemoveAll(b.tmpDir); err != nil {
			return fmt.Errorf("browser: remove temporary profile: %w", err)
		}
	}
	return nil
}

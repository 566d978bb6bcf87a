// Package browser reads the Claude usage page in a real Chromium through
// chromedp. It keeps one browser and one tab for the life of the scraper,
// captures the usage JSON the page loads from Chromium's network events and
// the rendered text as a fallback, and names every failure with a
// scrapeerr class.
package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the page's time zone must load on any laptop

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/scraper/parse"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// DefaultPageTimeout bounds one scrape when Options.PageTimeout is zero.
const DefaultPageTimeout = 30 * time.Second

// DefaultMeterWait bounds how long a loaded page may take to render its
// meters when Options.MeterWait is zero.
const DefaultMeterWait = 10 * time.Second

// usagePathRe matches the JSON the usage page loads.
var usagePathRe = regexp.MustCompile(`^/api/organizations/[^/]+/usage$`)

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

func (b *Browser) allocatorOptions() []chromedp.ExecAllocatorOption {
	o := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	o = append(o,
		chromedp.ExecPath(b.path),
		chromedp.UserDataDir(b.opts.ProfileDir),
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
	if !b.opts.Headless {
		o = append(o, chromedp.VisibleWindow)
	}
	return o
}

// startLocked starts the browser and opens the tab.
func (b *Browser) startLocked(ctx context.Context) error {
	// The browser must outlive the ctx of New (which may be a short
	// start-up timeout), so it hangs off a context of its own; ctx only
	// bounds the start.
	b.allocCtx, b.allocCancel = chromedp.NewExecAllocator(context.WithoutCancel(ctx), b.allocatorOptions()...)
	b.browserCtx, b.browserStop = chromedp.NewContext(b.allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(b.browserCtx) }()
	select {
	case err := <-started:
		if err != nil {
			if errors.Is(err, chromedp.ErrNoDisplay) {
				return scrapeerr.New(scrapeerr.Browser, nil, "browser: a visible window needs a display and this session has none (DISPLAY and WAYLAND_DISPLAY are unset); run `usage-scraper login` in the desktop session")
			}
			if _, lerr := os.Lstat(filepath.Join(b.opts.ProfileDir, "SingletonLock")); lerr == nil {
				return scrapeerr.New(scrapeerr.Browser, err, "browser: start %s: the profile %s may be in use by another Chromium (is `usage-scraper run` or `login` running?)", b.path, b.opts.ProfileDir)
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

// capture collects the usage JSON the page loads.
type capture struct {
	mu       sync.Mutex
	pending  map[network.RequestID]int64 // request id → HTTP status
	finished chan network.RequestID
	failed   []string
}

func (c *capture) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Response == nil || !isUsageURL(ev.Response.URL) {
			return
		}
		c.mu.Lock()
		c.pending[ev.RequestID] = ev.Response.Status
		if ev.Response.Status >= 400 {
			// Chromium may never finish loading an error body the page
			// does not read, so the status alone ends the wait.
			c.failed = append(c.failed, fmt.Sprintf("HTTP %d", ev.Response.Status))
		}
		c.mu.Unlock()
	case *network.EventLoadingFinished:
		c.mu.Lock()
		_, ok := c.pending[ev.RequestID]
		c.mu.Unlock()
		if ok {
			select {
			case c.finished <- ev.RequestID:
			default: // a page that refetches endlessly must not block the reader
			}
		}
	case *network.EventLoadingFailed:
		c.mu.Lock()
		if _, ok := c.pending[ev.RequestID]; ok {
			c.failed = append(c.failed, ev.ErrorText)
		}
		c.mu.Unlock()
	}
}

func (c *capture) status(id network.RequestID) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[id]
}

func isUsageURL(raw string) bool {
	i := strings.Index(raw, "://")
	if i < 0 {
		return false
	}
	rest := raw[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return false
	}
	path := rest[j:]
	if k := strings.IndexAny(path, "?#"); k >= 0 {
		path = path[:k]
	}
	return usagePathRe.MatchString(path)
}

// pageState is what the tab shows.
type pageState struct {
	URL   string `json:"url"`
	Title string `json:"title"`
	Text  string `json:"text"`
	TZ    string `json:"tz"`
	// CF is set when the page carries Cloudflare's challenge markup,
	// which stays the same in every language the interstitial speaks.
	CF bool `json:"cf"`
}

const readPageJS = `({url: location.href, title: document.title,
  text: document.body ? document.body.innerText : "",
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "",
  cf: typeof window._cf_chl_opt !== "undefined" ||
      !!document.querySelector('#challenge-form, #challenge-stage, #challenge-running, #cf-challenge-running, .cf-browser-verification, script[src*="/cdn-cgi/challenge-platform/"]')})`

// detect classifies the page the tab shows, "" for one that may hold meters.
func detect(st pageState) scrapeerr.Class {
	if st.CF {
		return scrapeerr.Challenge
	}
	return parse.DetectPage(st.URL, st.Title, st.Text)
}

// Scrape loads the usage page and returns its snapshot. Partial snapshots
// are returned without error; every failure is a *scrapeerr.Error.
func (b *Browser) Scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	start := time.Now()
	snap, err := b.scrape(ctx, usageURL)
	attrs := []any{"url", usageURL, "durationMs", time.Since(start).Milliseconds()}
	if err != nil {
		b.log.Warn("scrape failed", append(attrs, "category", string(scrapeerr.ClassOf(err)), "error", err.Error())...)
		return snap, err
	}
	b.log.Info("scrape done", append(attrs, "capture", snap.Capture, "meters", len(snap.Meters), "partial", snap.Partial)...)
	return snap, nil
}

func (b *Browser) scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	b.scrapeMu.Lock()
	defer b.scrapeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, err, "browser: scrape canceled")
	}
	tabCtx, err := b.tab(ctx)
	if err != nil {
		return shared.Snapshot{}, err
	}
	return b.scrapeIn(ctx, tabCtx, usageURL)
}

// scrapeIn loads the usage page in the tab of tabCtx and reads it. It
// touches no state of b but its options, so tabs of one browser can scrape
// side by side.
func (b *Browser) scrapeIn(ctx, tabCtx context.Context, usageURL string) (shared.Snapshot, error) {
	// Actions run on a child of the tab's context so that the caller's ctx
	// and the page timeout end this scrape and never the tab.
	runCtx, cancel := context.WithTimeout(tabCtx, b.opts.PageTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	c := &capture{pending: map[network.RequestID]int64{}, finished: make(chan network.RequestID, 16)}
	if err := chromedp.Listen(runCtx, c.listen); err != nil {
		return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "listen to network events")
	}
	if err := chromedp.Do(runCtx, chromedp.Navigate(usageURL)); err != nil {
		return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "load "+usageURL)
	}

	var (
		apiBody     []byte
		apiStatus   int64
		state       pageState
		deadline    = time.Now().Add(b.opts.MeterWait)
		metersSince time.Time
		tick        = time.NewTicker(100 * time.Millisecond)
	)
	defer tick.Stop()
	for {
		// Drain the finished usage requests; the last one is the freshest.
		for drained := false; !drained; {
			select {
			case id := <-c.finished:
				res, err := chromedp.Call(runCtx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
				if err != nil {
					b.log.Warn("usage JSON body unavailable", "error", err.Error())
					continue
				}
				apiBody, apiStatus = res.Body, c.status(id)
			default:
				drained = true
			}
		}
		st, err := chromedp.Run(runCtx, chromedp.Evaluate[pageState](readPageJS))
		if err != nil {
			return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "read the page")
		}
		state = st
		// A sign-in page stays one; a challenge often passes by itself
		// after a few seconds, so it gets until the deadline.
		if class := detect(st); class == scrapeerr.NotLoggedIn {
			break
		}
		meters := strings.Contains(st.Text, "% used")
		if meters && metersSince.IsZero() {
			metersSince = time.Now()
		}
		// The page renders after its JSON arrives, so meters on the page
		// with the JSON captured (or failed) is the normal end. Meters
		// without any JSON for a second mean the page got its data another
		// way and the text is all there is.
		if meters && (apiBody != nil || c.hasFailed() || time.Since(metersSince) > time.Second) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-tick.C:
		case <-runCtx.Done():
			return shared.Snapshot{}, b.classify(ctx, tabCtx, runCtx.Err(), "wait for the meters")
		}
	}
	return b.build(state, apiBody, apiStatus, c.failures())
}

func (c *capture) hasFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.failed) > 0
}

func (c *capture) failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.failed)
}

// build turns what the tab showed into a snapshot.
func (b *Browser) build(st pageState, apiBody []byte, apiStatus int64, failures []string) (shared.Snapshot, error) {
	if class := detect(st); class != "" {
		msg := "the usage page redirected to a sign-in page"
		if class == scrapeerr.Challenge {
			msg = "the usage page showed a browser check"
		}
		return shared.Snapshot{}, scrapeerr.New(class, nil, "browser: %s (%s, title %q)", msg, st.URL, st.Title)
	}
	now := b.opts.Now()
	loc := b.opts.Location
	if loc == nil && st.TZ != "" {
		if l, err := time.LoadLocation(st.TZ); err == nil {
			loc = l
		}
	}
	if loc == nil {
		loc = time.Local
	}
	dom, domErr := parse.ParseDOM(st.Text, now, loc)

	var api shared.Snapshot
	apiErr := errors.New("browser: no usage JSON captured")
	if len(failures) > 0 {
		apiErr = fmt.Errorf("browser: usage JSON failed: %s", strings.Join(failures, ", "))
	}
	if apiBody != nil {
		if apiStatus >= 400 {
			apiErr = fmt.Errorf("browser: usage JSON answered HTTP %d", apiStatus)
		} else {
			api, apiErr = parse.ParseAPI(apiBody, now)
		}
	}
	switch {
	case apiErr == nil && domErr == nil:
		for _, d := range parse.Compare(api, dom) {
			b.log.Warn("captures disagree", "detail", d)
		}
	case apiErr == nil:
		// Nothing is lost now, but the fallback would fail the day the
		// JSON goes missing; saying so early gives time to fix the parser.
		b.log.Warn("page text gave no meter; the fallback capture would fail", "reason", domErr.Error())
	case domErr == nil:
		b.log.Info("using the page text", "reason", apiErr.Error())
	}
	out, err := parse.Merge(api, apiErr, dom, domErr)
	if err != nil {
		var se *scrapeerr.Error
		if errors.As(err, &se) {
			err = scrapeerr.New(se.Class, se.Err, "browser: %s, on %s (title %q)", strings.TrimPrefix(se.Msg, "parse: "), st.URL, st.Title)
		}
		return out, err
	}
	out.Source = parse.Source
	out.ScrapedAt = now.UTC()
	out.Account = ""
	return out, nil
}

// classify names an error from chromedp.
func (b *Browser) classify(ctx, tabCtx context.Context, err error, what string) error {
	var le *chromedp.LoadError
	switch {
	case ctx.Err() != nil:
		return scrapeerr.New(scrapeerr.Unknown, ctx.Err(), "browser: %s: canceled", what)
	case errors.As(err, &le):
		if strings.HasPrefix(le.ErrorText, "net::") {
			return scrapeerr.New(scrapeerr.Network, err, "browser: %s", what)
		}
		return scrapeerr.New(scrapeerr.Browser, err, "browser: %s", what)
	case tabCtx.Err() != nil, errors.Is(err, chromedp.ErrTargetDetached), errors.Is(err, chromedp.ErrChannelClosed):
		return scrapeerr.New(scrapeerr.Browser, err, "browser: %s: Chromium or its tab went away", what)
	case errors.Is(err, context.DeadlineExceeded):
		return scrapeerr.New(scrapeerr.Network, err, "browser: %s: no answer within %s", what, b.opts.PageTimeout)
	}
	return scrapeerr.New(scrapeerr.Browser, err, "browser: %s", what)
}

// Login opens the usage page in the browser's window and waits until it
// shows meters, i.e. until the user has signed in (and passed any browser
// check). ctx bounds the wait.
func (b *Browser) Login(ctx context.Context, usageURL string) error {
	b.scrapeMu.Lock()
	defer b.scrapeMu.Unlock()
	tabCtx, err := b.tab(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(tabCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if err := chromedp.Do(runCtx, chromedp.Navigate(usageURL)); err != nil {
		return b.classify(ctx, tabCtx, err, "load "+usageURL)
	}
	b.log.Info("waiting for sign-in in the browser window", "url", usageURL)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := scrapeerr.NotLoggedIn
	for {
		st, err := chromedp.Run(runCtx, chromedp.Evaluate[pageState](readPageJS))
		if err == nil {
			class := detect(st)
			if class == "" && strings.Contains(st.Text, "% used") {
				b.log.Info("signed in", "url", st.URL)
				return nil
			}
			if class != "" {
				last = class
			}
		} else if tabCtx.Err() != nil {
			return b.classify(ctx, tabCtx, err, "wait for sign-in")
		}
		// Errors while the user clicks through pages (navigation in
		// progress) are expected; the loop simply looks again.
		select {
		case <-tick.C:
		case <-runCtx.Done():
			if ctx.Err() != nil {
				return scrapeerr.New(last, ctx.Err(), "browser: not signed in before the wait ended")
			}
			return scrapeerr.New(scrapeerr.Browser, runCtx.Err(), "browser: the window went away before sign-in")
		}
	}
}

// DefaultProfileDir is the per-user profile directory for the scraper.
func DefaultProfileDir() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "usage-scraper", "chromium-profile")
	}
	return filepath.Join(os.TempDir(), "usage-scraper-profile")
}

package cli

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// Browser is what the commands need from the Chromium side.
type Browser interface {
	runner.Scraper
	Login(ctx context.Context, usageURL string) error
	Close() error
}

// BrowserOptions configures a Browser.
type BrowserOptions struct {
	ChromePath  string
	ProfileDir  string
	Headless    bool
	PageTimeout time.Duration
	Logger      *slog.Logger
}

func newRealBrowser(ctx context.Context, o BrowserOptions) (Browser, error) {
	b, err := browser.New(ctx, browser.Options{ChromePath: o.ChromePath, ProfileDir: o.ProfileDir,
		Headless: o.Headless, Logger: o.Logger, PageTimeout: o.PageTimeout})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// startRealDemo serves the bundled sample usage page until ctx ends and
// returns its usage URL.
func startRealDemo(ctx context.Context, addr string) (string, error) {
	base, err := fakeclaude.Start(ctx, addr, time.Now)
	if err != nil {
		return "", err
	}
	return fakeclaude.UsageURL(base, ""), nil
}

// lazyBrowser starts Chromium at the first scrape rather than at start-up,
// so that `run` with Chromium missing keeps running, reports BROWSER to the
// server (the widget says why data stopped) and picks Chromium up once it
// is installed.
//
// By default it closes Chromium after every scrape: a headless Chromium
// left running costs hundreds of MB for a page read once every few
// minutes, and the profile on disk keeps the login and Cloudflare's
// cookies. With keep set (--keep-browser) Chromium stays up between
// scrapes, restarts itself after a crash and reuses its tab.
type lazyBrowser struct {
	d    deps
	opts BrowserOptions
	keep bool
	mu   sync.Mutex
	b    Browser
}

func (l *lazyBrowser) get(ctx context.Context) (Browser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b != nil {
		return l.b, nil
	}
	b, err := l.d.newBrowser(ctx, l.opts)
	if err != nil {
		if scrapeerr.ClassOf(err) == scrapeerr.Unknown && ctx.Err() == nil {
			err = scrapeerr.New(scrapeerr.Browser, err, "starting Chromium")
		}
		return nil, err
	}
	l.b = b
	return b, nil
}

func (l *lazyBrowser) Scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	b, err := l.get(ctx)
	if err != nil {
		return shared.Snapshot{}, err
	}
	snap, err := b.Scrape(ctx, usageURL)
	if !l.keep {
		if cerr := l.Close(); cerr != nil {
			if l.opts.Logger != nil {
				l.opts.Logger.Warn("closing Chromium after the scrape", "component", "browser", "error", cerr.Error())
			}
		}
	}
	return snap, err
}

func (l *lazyBrowser) Close() error {
	l.mu.Lock()
	b := l.b
	l.b = nil
	l.mu.Unlock()
	if b != nil {
		return b.Close()
	}
	return nil
}

func (e *cmdEnv) browser(headless bool) *lazyBrowser {
	return &lazyBrowser{d: e.d, keep: e.cfg.KeepBrowser, opts: BrowserOptions{ChromePath: e.cfg.ChromePath, ProfileDir: e.cfg.ProfileDir,
		Headless: headless, PageTimeout: e.cfg.PageTimeout, Logger: e.log}}
}

package cli

import (
	"context"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
)

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

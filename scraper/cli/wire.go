package cli

import (
	"context"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/demo"
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
	base, err := demo.Start(ctx, addr, time.Now)
	if err != nil {
		return "", err
	}
	return demo.UsageURL(base), nil
}

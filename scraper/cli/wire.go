package cli

import (
	"context"
	"errors"
)

// Placeholder until scraper/browser and scraper/demo land.
func newRealBrowser(ctx context.Context, o BrowserOptions) (Browser, error) {
	return nil, errors.New("browser not wired yet")
}

func startRealDemo(ctx context.Context, addr string) (string, error) {
	return "", errors.New("demo not wired yet")
}

package cli

import (
	"fmt"
	"os"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

func cmdLogin(e *cmdEnv) int {
	if err := os.MkdirAll(e.cfg.ProfileDir, 0o700); err != nil {
		return e.fail(fmt.Errorf("creating the profile directory: %w", err))
	}
	fmt.Fprintf(e.stdout, "A Chromium window opens on %s.\nSign in to claude.ai there; this ends when the usage page loads signed in.\n", e.cfg.UsageURL)
	br := e.browser(false)
	defer br.Close()
	b, err := br.get(e.ctx)
	if err != nil {
		return e.fail(err)
	}
	if err := b.Login(e.ctx, e.cfg.UsageURL); err != nil {
		return e.fail(err)
	}
	fmt.Fprintf(e.stdout, "Signed in. The profile in %s now holds the login; run `usage-scraper once --dry-run` to check.\n", e.cfg.ProfileDir)
	return scrapeerr.ExitOK
}

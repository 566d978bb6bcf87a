package cli

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/source"
	"github.com/claude-usage/widget/scraper/upload"
)

// locator finds Claude Code's login as this command's environment says.
func (e *cmdEnv) locator() oauth.Locator {
	return oauth.Locator{Getenv: e.d.getenv, Home: e.paths.home, GOOS: e.d.goos, Keychain: e.d.keychain}
}

// oauthStateFile keeps the OAuth pacing next to the sync statistics.
func oauthStateFile(outboxDir string) string {
	return filepath.Join(outboxDir, "state", "oauth.json")
}

// sources is the scraper of run and once: the --source chain over the
// OAuth client and the browser. The browser is returned to be closed.
func (e *cmdEnv) sources(tr *upload.Tracker) (*source.Chain, *lazyBrowser) {
	br := e.browser(e.cfg.Headless)
	loc := e.locator()
	oc := &oauth.Client{BaseURL: e.cfg.OAuthURL, Load: loc.Load, StatePath: oauthStateFile(e.cfg.OutboxDir), Logger: e.log,
		// One request per interval, less the runner's ±10% jitter, which
		// may start a cycle a little early.
		MinGap: e.cfg.Interval * 9 / 10}
	present := func(ctx context.Context) bool {
		_, err := loc.Load(ctx)
		return !errors.Is(err, oauth.ErrNoCredentials)
	}
	ob := source.Source{Name: source.OAuth, Scraper: oc}
	bs := source.Source{Name: source.Browser, Scraper: br}
	c := &source.Chain{Tracker: tr, Logger: e.log, CrossCheck: e.cfg.CrossCheck}
	switch e.cfg.Source {
	case source.OAuth:
		c.Sources = []source.Source{ob}
	case source.Browser:
		c.Sources = []source.Source{bs}
	default:
		ob.Present = present
		c.Sources = []source.Source{ob, bs}
	}
	return c, br
}

package shared

// ScrapeNextStep is the advice for a scrape failure category, shown in the
// scraper's logs (scrapeerr.Class.NextStep) and in the widget: one text for
// both, kept here because the widget must not import the scraper.
func ScrapeNextStep(category string) string {
	switch category {
	case ScrapeNotLoggedIn:
		return "Scraper signed out — run `usage-scraper login`"
	case ScrapeChallenge:
		return "Claude showed a browser check — run `usage-scraper login` once and pass it in the window"
	case ScrapeLayoutChanged:
		return "The usage page changed and no meter could be read — update the scraper"
	case ScrapeBrowser:
		return "Chromium is missing or crashed — install Chrome/Chromium or set --chrome-path"
	case ScrapeNetwork:
		return "The laptop could not reach claude.ai — check the connection"
	}
	return "The scrape failed — see the scraper log"
}
